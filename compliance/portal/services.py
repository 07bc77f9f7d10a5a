"""The hoster's responses to a notice, and the analyst's answer to a dispute.

Called by the portal pages and the hoster API alike, with an object the caller already got
through a selector (compliance/selectors.py decides who may touch which notice). Every write is a
narrow queryset update, so a hoster's click never overwrites what the monitor wrote meanwhile, and
every action leaves an audit event.

"Verify, don't trust": a hoster's claim that the content is removed changes no verdict and no
timing. It only asks the monitor for an immediate independent re-check (`next_check_at = now`);
the check drain records that check with trigger `hoster_claim`, and only checks decide.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from compliance.audit import audit_record
from compliance.models import NOTIFIED_AT_FLOOR, Dispute, Notice
from compliance.services import due_now_unless_leased

# Outcomes of a removal claim.
RECHECK_QUEUED = "queued"  # a re-check is due now
RECHECK_ALREADY_QUEUED = "already_queued"  # an earlier claim still waits for its check
CLAIM_CLOSED = "closed"  # the notice is no longer open: nothing to re-check


class ResponseError(Exception):
    """The action does not apply to this notice; `message` is for the hoster."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message = message
        self.code = code


def _refresh(notice: Notice) -> Notice:
    notice.refresh_from_db()
    return notice


def notice_acknowledge(*, notice: Notice, user, now: datetime, request=None) -> bool:
    """Record that the hoster has seen the notice. The first acknowledgement counts; returns
    whether this call set it."""
    changed = bool(Notice.objects.filter(pk=notice.pk, acknowledged_at__isnull=True).update(acknowledged_at=now))
    audit_record(actor=user, action="notice.acknowledge", notice=notice, detail={"first": changed}, request=request)
    _refresh(notice)
    return changed


def notice_report_removed(*, notice: Notice, user, now: datetime, request=None) -> str:
    """The hoster says the content is gone: ask for an immediate independent re-check.

    1. Only an open notice can be re-checked; a closed one returns CLAIM_CLOSED.
    2. If an earlier claim is still waiting for its check (no check started since), the claim is
       not renewed (RECHECK_ALREADY_QUEUED): repeated clicks cannot make the monitor hammer a URL.
    3. Otherwise `reported_removed_at = now` and, unless a check holds the notice's lease right
       now, `next_check_at = now`. A leased notice is being checked at this moment; moving its
       `next_check_at` would let a second monitor process claim it twice, so it is left to the
       check drain, which dates its next check from the claim (see docs/portal.md).
    """
    with transaction.atomic():
        current = Notice.objects.filter(pk=notice.pk).values("status", "reported_removed_at", "last_checked_at").get()
        if current["status"] not in Notice.OPEN_STATUSES:
            outcome = CLAIM_CLOSED
        elif current["reported_removed_at"] is not None and (
            current["last_checked_at"] is None or current["last_checked_at"] < current["reported_removed_at"]
        ):
            outcome = RECHECK_ALREADY_QUEUED
        else:
            updated = (
                Notice.objects.filter(pk=notice.pk, status__in=Notice.OPEN_STATUSES)
                .filter(Q(reported_removed_at__isnull=True) | Q(reported_removed_at=current["reported_removed_at"]))
                .update(
                    reported_removed_at=now,
                    next_check_at=due_now_unless_leased(now),
                )
            )
            # 0 rows: a concurrent claim or the monitor closed it in between; both leave a check due.
            outcome = RECHECK_QUEUED if updated else RECHECK_ALREADY_QUEUED
        audit_record(
            actor=user, action="notice.report_removed", notice=notice, detail={"outcome": outcome}, request=request
        )
    _refresh(notice)
    return outcome


def dispute_raise(
    *,
    notice: Notice,
    user,
    reason: str,
    text: str = "",
    removed_at: datetime | None = None,
    now: datetime,
    request=None,
) -> Dispute:
    """Open a dispute for the analysts' queue. One open dispute per notice at a time."""
    text = (text or "").strip()
    errors: dict[str, list[str]] = {}
    if reason not in Dispute.Reason.values:
        errors["reason"] = [_("Choose one of the reasons.")]
    if reason == Dispute.Reason.ALREADY_REMOVED:
        if removed_at is None:
            errors["removed_at"] = [_("Say when the content was removed.")]
        elif removed_at > now:
            errors["removed_at"] = [_("The removal time lies in the future.")]
        elif removed_at < NOTIFIED_AT_FLOOR:
            # Outside the product's domain, and years Python and the databases disagree about.
            errors["removed_at"] = [_("The removal time lies before 2000.")]
    elif removed_at is not None:
        removed_at = None  # only meaningful with "already removed"
    if reason == Dispute.Reason.OTHER and not text:
        errors["text"] = [_("Explain the dispute.")]
    if len(text) > 4000:
        errors["text"] = [_("Keep the explanation under 4000 characters.")]
    if errors:
        raise ValidationError(errors)
    if notice.hoster_id is None:
        raise ResponseError(_("This notice has no hoster to dispute for."), code="no_hoster")
    try:
        with transaction.atomic():
            dispute = Dispute.objects.create(
                notice=notice,
                hoster_id=notice.hoster_id,
                raised_by=user,
                reason=reason,
                removed_at=removed_at,
                text=text,
                created_at=now,
            )
            audit_record(
                actor=user,
                action="dispute.raise",
                notice=notice,
                detail={"dispute": dispute.pk, "reason": reason},
                request=request,
            )
    except IntegrityError:
        raise ResponseError(
            _("This notice already has an open dispute; an analyst will answer it."), code="dispute_open"
        ) from None
    return dispute


def dispute_answer(*, dispute: Dispute, user, state: str, answer: str, now: datetime, request=None) -> Dispute:
    """An analyst upholds or rejects an open dispute; the answer is shown to the hoster."""
    answer = (answer or "").strip()
    errors: dict[str, list[str]] = {}
    if state not in (Dispute.State.UPHELD, Dispute.State.REJECTED):
        errors["state"] = [_("An answer upholds or rejects the dispute.")]
    if not answer:
        errors["answer"] = [_("Write the answer the hoster will read.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        updated = Dispute.objects.filter(pk=dispute.pk, state=Dispute.State.OPEN).update(
            state=state, answer=answer, answered_by=user, answered_at=now
        )
        if not updated:
            raise ResponseError(_("This dispute has already been answered."), code="answered")
        audit_record(
            actor=user,
            action="dispute.answer",
            notice=dispute.notice,
            hoster=dispute.hoster,
            detail={"dispute": dispute.pk, "state": state},
            request=request,
        )
    dispute.refresh_from_db()
    return dispute
