"""Notices by e-mail (`NOTIFY_BY_EMAIL=on`): the notice, a reminder, and repeat notices.

What goes out, per notice the product notifies (docs/portal.md):

- **notice**: once the notice has a hoster (given by the hotline, or attributed) and no
  `notified_at`. Its `notified_at` becomes the moment our mail server accepted the e-mail, and
  `deadline_at` follows from it. A notice imported with `notified_at` was sent by the hotline and
  gets no e-mail at all (no reminders, no repeats either).
- **reminder**: when `NOTIFY_REMINDER_AT` of the deadline has passed (75 %: 6 h before a 24 h
  deadline), if the notice is still open and no offline streak is waiting for confirmation.
- **repeat** k: at `notified_at + k * deadline` while the content is online (`online` or
  `reappeared`). A notice that reappears after a takedown starts repeats again at once.

**At most once.** Each e-mail is a `NoticeEmail` row, unique per (notice, kind, period), written
before anything is sent; the row is the schedule (`due_at`) and the record of intent:

1. `scheduled`/`retry` rows that are due are *claimed* in a short transaction (a token and a
   lease in `due_at`); a process killed now loses nothing: the lease runs out, another claims.
2. Right before handing one e-mail to the mail server, its row is marked `sending` (committed).
3. The mail server's answer is recorded in a second short transaction: `sent` (with `sent_at`,
   and for the notice `notified_at`), `retry` (temporary failure, nothing was accepted), or
   `failed` (refused).
4. If the process dies between 2 and 3, the row stays `sending`. When its lease has run out it
   becomes `uncertain` and is **never sent again automatically**: the mail server may have
   accepted it, and a second copy of a notice is worse than a late one that an analyst can see.
   Analysts resolve uncertain e-mails in the admin (send again, or confirm accepted from the
   mail server's log). A connection that breaks after the message was handed over is treated
   the same way (the server may have accepted it). Only answers that prove nothing was accepted
   (connection refused, a 4xx/5xx reply) lead to a retry or a failure.

Logs carry notice ids and outcomes, never URLs; the e-mails carry the URL, which the hoster needs.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import smtplib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from compliance import services
from compliance.models import DeliveryEvent, Notice, NoticeEmail
from monitor import jobs

log = logging.getLogger("compliance.notifications")

Kind = NoticeEmail.Kind
State = NoticeEmail.State
Outcome = DeliveryEvent.Outcome

# Statuses in which the content was last seen online: repeats go out only then.
ONLINE_STATUSES = (Notice.Status.ONLINE, Notice.Status.REAPPEARED)
CLAIMABLE = (State.SCHEDULED, State.RETRY, State.CLAIMED)


# --- The drain ----------------------------------------------------------------------------------


def drain_notifications(*, now: datetime | None = None) -> bool:
    """One batch of notice e-mails. Returns whether more work is waiting (monitor/jobs.py).

    1. Queue a notice e-mail for new attributed notices without `notified_at`; re-queue refused
       notices whose hoster's address has changed since; start repeats for reappeared content.
    2. Declare e-mails whose sending lease ran out `uncertain` (a process died mid-send).
    3. Claim due e-mails and send them over one SMTP connection, recording each answer.
    """
    if not settings.NOTIFY_BY_EMAIL:
        return False
    now = now or timezone.now()
    batch = settings.NOTIFY_BATCH
    queued = enqueue_notices(now=now, limit=batch)
    requeue_changed_addresses(now=now)
    resume_reappeared(now=now, limit=batch)
    expire_sending(now=now, limit=batch)
    claimed = claim_due(now=now, limit=batch)
    if claimed:
        send_claimed(claimed)
    return queued >= batch or len(claimed) >= batch


def enqueue_notices(*, now: datetime, limit: int) -> int:
    """A `scheduled` notice e-mail for each attributed, open, un-notified notice that has none."""
    has_notice_email = NoticeEmail.objects.filter(notice=OuterRef("pk"), kind=Kind.NOTICE)
    ids = list(
        Notice.objects.filter(notified_at__isnull=True, hoster__isnull=False, status__in=Notice.OPEN_STATUSES)
        .exclude(Exists(has_notice_email))
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    if ids:
        NoticeEmail.objects.bulk_create(
            [
                NoticeEmail(notice_id=pk, kind=Kind.NOTICE, seq=0, state=State.SCHEDULED, due_at=now, created_at=now)
                for pk in ids
            ],
            ignore_conflicts=True,  # a concurrent drain queued it first: the unique row wins
        )
    return len(ids)


def requeue_changed_addresses(*, now: datetime) -> int:
    """A refused notice e-mail is tried again once the hoster's abuse address (or the notice's
    hoster) differs from the address that refused it."""
    return (
        NoticeEmail.objects.filter(state=State.FAILED, kind=Kind.NOTICE, notice__notified_at__isnull=True)
        .exclude(notice__hoster__abuse_email="")
        .exclude(to_address=F("notice__hoster__abuse_email"))
        .update(state=State.RETRY, due_at=now)
    )


def resume_reappeared(*, now: datetime, limit: int) -> int:
    """Content online again after a confirmed takedown gets a repeat notice now, then one per period."""
    notified_by_us = NoticeEmail.objects.filter(
        notice=OuterRef("pk"), kind=Kind.NOTICE, state__in=[State.SENT, State.BOUNCED]
    )
    repeat_pending = NoticeEmail.objects.filter(
        notice=OuterRef("pk"), kind=Kind.REPEAT, state__in=NoticeEmail.ACTIVE_STATES
    )
    notices = list(
        Notice.objects.filter(status=Notice.Status.REAPPEARED)
        .filter(Exists(notified_by_us))
        .exclude(Exists(repeat_pending))
        .values_list("id", flat=True)[:limit]
    )
    for notice_id in notices:
        last = NoticeEmail.objects.filter(notice_id=notice_id, kind=Kind.REPEAT).aggregate(m=Max("seq"))["m"] or 0
        NoticeEmail.objects.bulk_create(
            [
                NoticeEmail(
                    notice_id=notice_id,
                    kind=Kind.REPEAT,
                    seq=last + 1,
                    state=State.SCHEDULED,
                    due_at=now,
                    created_at=now,
                )
            ],
            ignore_conflicts=True,
        )
    return len(notices)


def expire_sending(*, now: datetime, limit: int) -> int:
    """E-mails still `sending` after their lease: the process died mid-send. Never resend them."""
    expired = 0
    for row in NoticeEmail.objects.filter(state=State.SENDING, due_at__lte=now).order_by("due_at")[:limit]:
        with transaction.atomic():
            if not NoticeEmail.objects.filter(pk=row.pk, state=State.SENDING, claim_token=row.claim_token).update(
                state=State.UNCERTAIN, due_at=None, last_error="interrupted while sending: acceptance unknown"
            ):
                continue
            DeliveryEvent.objects.create(
                email=row,
                hoster_id=row.hoster_id,
                at=now,
                outcome=Outcome.UNCERTAIN,
                to_address=row.to_address,
                detail="the sending process stopped before recording the mail server's answer",
            )
        log.error("notice e-mail %s (%s of notice %s) is uncertain: not resent", row.pk, row.kind, row.notice_id)
        expired += 1
    return expired


def claim_due(*, now: datetime, limit: int) -> list[NoticeEmail]:
    """Take up to `limit` due e-mails for this process: a token, and a lease in `due_at`."""
    token = uuid.uuid4()
    lease = timedelta(seconds=settings.NOTIFY_SENDING_LEASE_S)
    with transaction.atomic():
        due = NoticeEmail.objects.filter(state__in=CLAIMABLE, due_at__lte=now).order_by("due_at", "id")
        if db_connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("id", flat=True)[:limit])
        if not ids:
            return []
        # Compare-and-set: a row another process took in between no longer matches.
        NoticeEmail.objects.filter(pk__in=ids, state__in=CLAIMABLE, due_at__lte=now).update(
            state=State.CLAIMED, claim_token=token, due_at=now + lease
        )
    claimed = (
        NoticeEmail.objects.filter(claim_token=token, state=State.CLAIMED)
        .select_related("notice", "notice__hoster")
        .order_by("due_at", "id")
    )
    try:
        with transaction.atomic():  # a savepoint, should the caller hold a transaction
            return list(claimed)
    except services.UNREADABLE_ROW_ERRORS:
        log.warning("notice e-mails: a claimed e-mail's notice cannot be read; reading one by one", exc_info=True)
    rows = []
    for pk in ids:
        try:
            with transaction.atomic():
                rows.extend(claimed.filter(pk=pk))
        except services.UNREADABLE_ROW_ERRORS:
            # One unreadable notice never holds up the others' e-mails: this one waits, logged.
            log.exception("notice e-mail %s: its notice cannot be read; pushed forward", pk)
            NoticeEmail.objects.filter(pk=pk, claim_token=token, state=State.CLAIMED).update(
                state=State.RETRY,
                due_at=timezone.now() + services.BAD_ROW_DELAY,
                last_error="its notice cannot be read (see the monitor's log)",
            )
    return rows


# --- Deciding and sending -----------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: str = ""  # why not
    next_repeat: bool = False  # schedule the following repeat even though this one is skipped


def decide(row: NoticeEmail, notice: Notice, now: datetime) -> Decision:
    """Whether a due e-mail is still wanted (pure: the row, the notice, the time)."""
    is_open = notice.status in Notice.OPEN_STATUSES
    if row.kind == Kind.NOTICE:
        if notice.notified_at is not None:
            return Decision(False, "notified otherwise")
        if not is_open:
            return Decision(False, "closed before notification")
        if notice.hoster_id is None:
            return Decision(False, "no hoster")
        return Decision(True)
    if row.kind == Kind.REMINDER:
        if not is_open:
            return Decision(False, "closed")
        if notice.deadline_at is not None and now >= notice.deadline_at:
            return Decision(False, "deadline passed")
        if notice.offline_since is not None:
            return Decision(False, "removal being confirmed")
        return Decision(True)
    # Repeat.
    if not is_open:
        return Decision(False, "closed")
    if notice.status not in ONLINE_STATUSES or notice.offline_since is not None:
        return Decision(False, "not seen online", next_repeat=True)
    return Decision(True)


def retry_delay(attempts: int, deadline_s: int) -> timedelta:
    """1, 2, 4, ... minutes, capped at a 24th of the deadline (an hour for 24 h; 2.5 s for 60 s)."""
    cap = max(deadline_s / 24, 1.0)
    return timedelta(seconds=min(cap, 60.0 * 2 ** max(attempts - 1, 0)))


def send_claimed(rows: list[NoticeEmail]) -> None:
    """Send the claimed e-mails over one SMTP connection, recording each answer as it comes."""
    mail = get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT)
    opened = False
    try:
        for index, row in enumerate(rows):
            if jobs.stopping.is_set():
                # SIGTERM: finish the e-mail in flight (done), give the rest back untouched.
                for rest in rows[index:]:
                    _release(rest, error="", delay=timedelta(0))
                return
            if not opened:
                try:
                    mail.open()
                    opened = True
                except (smtplib.SMTPException, OSError) as exc:
                    # Our own mail server is unreachable: not the hoster's failure, and nothing
                    # was handed over. Give every remaining claim back for a later attempt.
                    log.error(
                        "mail server unreachable (%s); %d notice e-mails wait", type(exc).__name__, len(rows) - index
                    )
                    for rest in rows[index:]:
                        _release(rest, error=f"mail server unreachable: {exc}"[:500])
                    return
            try:
                connection_ok = _process(row, mail)
            except Exception:
                log.exception("notice e-mail %s of notice %s failed unexpectedly", row.pk, row.notice_id)
                _release(row, error="unexpected error (see the monitor's log)")
                connection_ok = False
            if not connection_ok:
                _close_quietly(mail)
                opened = False
    finally:
        if opened:
            _close_quietly(mail)


def _close_quietly(mail) -> None:
    try:
        mail.close()
    except Exception:  # noqa: BLE001 (a broken connection may fail to close; it is dropped anyway)
        log.debug("closing the SMTP connection failed", exc_info=True)


def _process(row: NoticeEmail, mail) -> bool:
    """Decide, send and record one e-mail. Returns False when the connection should be renewed."""
    now = timezone.now()
    notice = row.notice
    decision = decide(row, notice, now)
    if not decision.send:
        _record_skipped(row, notice, decision, now)
        return True
    hoster = notice.hoster
    if hoster is None or not hoster.abuse_email:
        _record_no_address(row, notice, now)
        return True

    message = build_message(row, notice)
    # 2. The intent, committed before the mail server sees anything.
    if not NoticeEmail.objects.filter(pk=row.pk, state=State.CLAIMED, claim_token=row.claim_token).update(
        state=State.SENDING,
        sending_at=now,
        due_at=now + timedelta(seconds=settings.NOTIFY_SENDING_LEASE_S),
        attempts=F("attempts") + 1,
        hoster=hoster,
        to_address=hoster.abuse_email,
        message_id=message.extra_headers["Message-ID"],
    ):
        log.info("notice e-mail %s was taken over by another process", row.pk)
        return True
    row.attempts += 1
    row.hoster, row.to_address, row.message_id = hoster, hoster.abuse_email, message.extra_headers["Message-ID"]

    try:
        mail.send_messages([message])
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        code, text = _smtp_error(exc)
        if code is not None and 400 <= code < 500:
            _record_attempt_failed(row, notice, Outcome.TEMPORARY_FAILURE, code, text, retry=True)
        else:
            _record_attempt_failed(row, notice, Outcome.REFUSED, code, text, retry=False)
        return True
    except (smtplib.SMTPConnectError, ConnectionRefusedError, smtplib.SMTPHeloError) as exc:
        # Nothing was handed over: safe to try again.
        _record_attempt_failed(row, notice, Outcome.TEMPORARY_FAILURE, None, str(exc)[:300], retry=True)
        return False
    except (smtplib.SMTPException, OSError) as exc:  # OSError includes timeouts
        # The connection broke mid-conversation: the server may have accepted the message.
        _record_uncertain(row, notice, str(exc)[:300] or type(exc).__name__)
        return False
    _record_sent(row, notice, accepted_at=timezone.now())
    return True


def _smtp_error(exc: smtplib.SMTPException) -> tuple[int | None, str]:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
    else:
        code, text = exc.smtp_code, exc.smtp_error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return code, str(text)[:300]


def build_message(row: NoticeEmail, notice: Notice) -> EmailMessage:
    """The e-mail, rendered in the site's language. Its Message-ID is kept on the row, so that
    bounces find their e-mail and reminders and repeats thread with the notice."""
    hoster = notice.hoster
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(">") or "localhost"
    message_id = row.message_id or make_msgid(idstring=f"notice-{notice.pk}-{row.kind}-{row.seq}", domain=domain)
    first = (
        NoticeEmail.objects.filter(notice=notice, kind=Kind.NOTICE).values_list("message_id", flat=True).first()
        if row.kind != Kind.NOTICE
        else None
    )
    context = {
        "notice": notice,
        "hoster": hoster,
        "email": row,
        "deadline_hours": round(notice.deadline_s / 3600, 2),
        "portal_url": settings.SITE_URL + reverse("portal:notice", args=[notice.pk]),
        "api_docs_url": settings.SITE_URL + reverse("api-docs"),
        "now": timezone.now(),
    }
    with translation.override(settings.LANGUAGE_CODE), timezone.override(settings.TIME_ZONE):
        subject = " ".join(render_to_string(f"notifications/{row.kind}_subject.txt", context).split())
        body = render_to_string(f"notifications/{row.kind}_body.txt", context)
    headers = {"Message-ID": message_id, "X-Takedown-Notice": str(notice.pk), "X-Takedown-Kind": row.kind}
    if first:
        headers["In-Reply-To"] = first
        headers["References"] = first
    return EmailMessage(
        subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[hoster.abuse_email], headers=headers
    )


# --- Recording answers (each a short transaction) -----------------------------------------------


def _record_sent(row: NoticeEmail, notice: Notice, *, accepted_at: datetime) -> None:
    """3. Accepted: the row, the delivery event, and for the notice e-mail `notified_at`."""
    with transaction.atomic():
        # `uncertain` too: a slow send may have outlived its lease; now we know it was accepted.
        NoticeEmail.objects.filter(pk=row.pk, state__in=[State.SENDING, State.UNCERTAIN]).update(
            state=State.SENT, sent_at=accepted_at, due_at=None, last_error=""
        )
        DeliveryEvent.objects.create(
            email=row, hoster_id=row.hoster_id, at=accepted_at, outcome=Outcome.ACCEPTED, to_address=row.to_address
        )
        if row.kind == Kind.NOTICE:
            _notice_notified(row, notice, accepted_at)
        elif row.kind == Kind.REPEAT:
            _schedule_next_repeat(notice, after_seq=row.seq, now=accepted_at)
    log.info("notice e-mail %s (%s of notice %s) accepted", row.pk, row.kind, notice.pk)


def _notice_notified(row: NoticeEmail, notice: Notice, accepted_at: datetime) -> None:
    deadline_at, settles_at = Notice.timeline(accepted_at, notice.deadline_s)
    # Only if still un-notified: an analyst's own notified_at is never overwritten.
    if Notice.objects.filter(pk=notice.pk, notified_at__isnull=True).update(
        notified_at=accepted_at, deadline_at=deadline_at, settles_at=settles_at
    ):
        notice.notified_at, notice.deadline_at, notice.settles_at = accepted_at, deadline_at, settles_at
        follow_ups = [
            NoticeEmail(
                notice=notice,
                kind=Kind.REPEAT,
                seq=1,
                state=State.SCHEDULED,
                due_at=deadline_at,
                created_at=accepted_at,
            )
        ]
        fraction = settings.NOTIFY_REMINDER_AT
        if 0 < fraction < 1:
            follow_ups.append(
                NoticeEmail(
                    notice=notice,
                    kind=Kind.REMINDER,
                    seq=0,
                    state=State.SCHEDULED,
                    due_at=accepted_at + timedelta(seconds=notice.deadline_s * fraction),
                    created_at=accepted_at,
                )
            )
        NoticeEmail.objects.bulk_create(follow_ups, ignore_conflicts=True)


def _schedule_next_repeat(notice: Notice, *, after_seq: int, now: datetime) -> None:
    """The next deadline period's repeat: period k is due at notified_at + k * deadline. If the
    drain fell behind, the next period boundary after `now` (no burst of overdue repeats)."""
    if notice.notified_at is None:
        return
    period = timedelta(seconds=notice.deadline_s)
    elapsed_periods = int((now - notice.notified_at) / period)
    seq = max(after_seq + 1, elapsed_periods + 1)
    NoticeEmail.objects.bulk_create(
        [
            NoticeEmail(
                notice=notice,
                kind=Kind.REPEAT,
                seq=seq,
                state=State.SCHEDULED,
                due_at=notice.notified_at + seq * period,
                created_at=now,
            )
        ],
        ignore_conflicts=True,
    )


def _record_skipped(row: NoticeEmail, notice: Notice, decision: Decision, now: datetime) -> None:
    with transaction.atomic():
        NoticeEmail.objects.filter(pk=row.pk, claim_token=row.claim_token, state=State.CLAIMED).update(
            state=State.SKIPPED, due_at=None, last_error=decision.reason
        )
        if decision.next_repeat:
            _schedule_next_repeat(notice, after_seq=row.seq, now=now)


def _record_no_address(row: NoticeEmail, notice: Notice, now: datetime) -> None:
    """No abuse address: a finding against the hoster, recorded (and logged as a warning) once per
    e-mail; it is tried again later without new findings (an analyst may add an address)."""
    with transaction.atomic():
        attempts = row.attempts + 1
        NoticeEmail.objects.filter(pk=row.pk, claim_token=row.claim_token, state=State.CLAIMED).update(
            state=State.RETRY,
            attempts=attempts,
            hoster_id=notice.hoster_id,
            due_at=now + retry_delay(attempts, notice.deadline_s),
            last_error="the hoster has no abuse address",
        )
        first = not DeliveryEvent.objects.filter(email=row, outcome=Outcome.NO_ADDRESS).exists()
        if first:
            DeliveryEvent.objects.create(email=row, hoster_id=notice.hoster_id, at=now, outcome=Outcome.NO_ADDRESS)
    log.log(
        logging.WARNING if first else logging.DEBUG,
        "notice e-mail %s of notice %s: the hoster has no abuse address (attempt %d)",
        row.pk,
        notice.pk,
        attempts,
    )


def _record_attempt_failed(
    row: NoticeEmail, notice: Notice, outcome: str, code: int | None, text: str, *, retry: bool
) -> None:
    now = timezone.now()
    with transaction.atomic():
        NoticeEmail.objects.filter(pk=row.pk, state=State.SENDING).update(
            state=State.RETRY if retry else State.FAILED,
            due_at=now + retry_delay(row.attempts, notice.deadline_s) if retry else None,
            last_error=(f"{code} " if code else "") + text,
        )
        DeliveryEvent.objects.create(
            email=row,
            hoster_id=row.hoster_id,
            at=now,
            outcome=outcome,
            to_address=row.to_address,
            smtp_code=code,
            detail=text,
        )
    log.warning("notice e-mail %s of notice %s: %s %s", row.pk, notice.pk, outcome, code or "")


def _record_uncertain(row: NoticeEmail, notice: Notice, text: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        NoticeEmail.objects.filter(pk=row.pk, state=State.SENDING).update(
            state=State.UNCERTAIN, due_at=None, last_error=f"connection lost while sending: {text}"
        )
        DeliveryEvent.objects.create(
            email=row,
            hoster_id=row.hoster_id,
            at=now,
            outcome=Outcome.UNCERTAIN,
            to_address=row.to_address,
            detail=text,
        )
    log.error("notice e-mail %s of notice %s: connection lost while sending; not resent", row.pk, notice.pk)


def _release(row: NoticeEmail, *, error: str, delay: timedelta | None = None) -> None:
    """Nothing was handed over (mail server down, an error before sending, or the monitor is
    stopping): give the claim back."""
    if delay is None:
        delay = retry_delay(row.attempts + 1, row.notice.deadline_s)
    NoticeEmail.objects.filter(pk=row.pk, state=State.CLAIMED, claim_token=row.claim_token).update(
        state=State.RETRY if error else State.SCHEDULED, due_at=timezone.now() + delay, last_error=error
    )


# --- Analysts' resolutions (admin actions) ------------------------------------------------------


def email_send_again(*, email: NoticeEmail, now: datetime) -> bool:
    """An analyst decides a failed or uncertain e-mail goes out (again). Same Message-ID, so a
    recipient that did get the first copy can recognise the second."""
    return bool(
        NoticeEmail.objects.filter(pk=email.pk, state__in=[State.FAILED, State.UNCERTAIN, State.BOUNCED]).update(
            state=State.RETRY, due_at=now, last_error=""
        )
    )


def email_confirm_accepted(*, email: NoticeEmail, accepted_at: datetime | None = None) -> bool:
    """An analyst found an uncertain e-mail in the mail server's log: it was accepted."""
    with transaction.atomic():
        row = NoticeEmail.objects.select_for_update().select_related("notice").get(pk=email.pk)
        if row.state != State.UNCERTAIN:
            return False
        accepted_at = accepted_at or row.sending_at
        NoticeEmail.objects.filter(pk=row.pk).update(state=State.SENDING)
        row.state = State.SENDING
    _record_sent(row, row.notice, accepted_at=accepted_at)
    return True


# --- Bounces ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BounceResult:
    email_id: int | None
    recipient: str = ""
    status: str = ""
    diagnostic: str = ""


def bounce_record(raw: bytes, *, now: datetime | None = None) -> BounceResult:
    """Record a delivery status notification (RFC 3464) about one of our e-mails.

    The returned headers (or message) carry the original Message-ID, which names the e-mail. Only
    `Action: failed` is a bounce; a `delayed` report changes nothing. The notice's `notified_at`
    stays: our mail server accepted the notice, and an unreachable hoster is a finding.
    """
    now = now or timezone.now()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    message_id, action, recipient, status, diagnostic = "", "", "", "", ""
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for block in part.get_payload():
                action = action or str(block.get("Action", "")).strip().lower()
                recipient = recipient or str(block.get("Final-Recipient", "")).split(";")[-1].strip()
                status = status or str(block.get("Status", "")).strip()
                diagnostic = diagnostic or " ".join(str(block.get("Diagnostic-Code", "")).split())
        elif ctype in ("text/rfc822-headers", "message/rfc822") and not message_id:
            if ctype == "message/rfc822":
                inner = part.get_payload()[0]
            else:
                inner = email.message_from_string(part.get_content(), policy=email.policy.default)
            message_id = str(inner.get("Message-ID", "")).strip()
    if not message_id:
        return BounceResult(None)
    row = NoticeEmail.objects.filter(message_id=message_id).first()
    if row is None:
        return BounceResult(None, recipient, status, diagnostic)
    if action != "failed":
        return BounceResult(row.pk, recipient, status, diagnostic)
    detail = f"{status} {diagnostic}".strip()[:500]
    with transaction.atomic():
        NoticeEmail.objects.filter(pk=row.pk, state=State.SENT).update(state=State.BOUNCED, last_error=detail[:500])
        DeliveryEvent.objects.create(
            email=row,
            hoster_id=row.hoster_id,
            at=now,
            outcome=Outcome.BOUNCED,
            to_address=recipient or row.to_address,
            smtp_code=_smtp_code_in(diagnostic),
            detail=detail,
        )
    log.warning("notice e-mail %s of notice %s bounced: %s", row.pk, row.notice_id, status)
    return BounceResult(row.pk, recipient, status, diagnostic)


def _smtp_code_in(diagnostic: str) -> int | None:
    """'smtp; 550 5.1.1 <x@y>: no such user' -> 550."""
    match = re.search(r"\b([245]\d\d)\b", diagnostic)
    return int(match.group(1)) if match else None
