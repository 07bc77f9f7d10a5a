"""Notices by e-mail, against a real SMTP server on loopback (aiosmtpd): what arrives, when
notified_at starts, retries, refusals, bounces, and never a second copy after a crash."""

from __future__ import annotations

import io
import logging
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from compliance import notifications
from compliance.models import DeliveryEvent, Notice, NoticeEmail
from tests.compliance.portal_support import make_notice

URL = "http://files.prompt.test/reported/a.jpg?id=7&x=1"


@pytest.fixture
def mail(smtp_server, settings):
    smtp_server.use_for(settings)
    settings.NOTIFY_BY_EMAIL = True
    settings.DEFAULT_FROM_EMAIL = "hotline@monitor.test"
    settings.SITE_URL = "https://monitor.test"
    return smtp_server


def unsent(hoster, url=URL, **fields):
    return make_notice(url, hoster, notified_ago_s=None, **fields)


def drain_all(**kwargs):
    for _round in range(20):
        if not notifications.drain_notifications(**kwargs):
            return
    raise AssertionError("the drain never ran dry")


def test_a_notice_imported_without_notified_at_is_emailed_and_notified_when_accepted(mail, prompt_hoster, tmp_path):
    (tmp_path / "n.csv").write_text(f"url,reference,hoster\n{URL},H-1,prompt\n")
    call_command("import_notices", str(tmp_path / "n.csv"), "--source", "hotline", stdout=io.StringIO())
    notice = Notice.objects.get()
    assert notice.notified_at is None and notice.deadline_at is None

    before = timezone.now()
    drain_all()
    after = timezone.now()

    [message] = mail.messages
    assert mail.envelopes == [("hotline@monitor.test", ["abuse@prompt.test"])]
    assert message["To"] == "abuse@prompt.test"
    assert f"Takedown notice {notice.pk}" in message["Subject"] and "files.prompt.test" in message["Subject"]
    body = message.get_content()
    assert URL in body  # the hoster needs the URL itself, unescaped
    assert f"https://monitor.test/portal/notices/{notice.pk}/" in body
    assert "H-1" in body
    assert message["X-Takedown-Notice"] == str(notice.pk)

    notice.refresh_from_db()
    assert before <= notice.notified_at <= after  # the moment the mail server accepted it
    assert notice.deadline_at == notice.notified_at + timedelta(seconds=notice.deadline_s)
    email = NoticeEmail.objects.get(kind="notice")
    assert (email.state, email.sent_at, email.to_address) == ("sent", notice.notified_at, "abuse@prompt.test")
    assert email.message_id == message["Message-ID"].strip()
    assert list(DeliveryEvent.objects.values_list("outcome", "hoster")) == [("accepted", prompt_hoster.pk)]
    # The follow-ups are scheduled from notified_at: a reminder at 75 % and the first repeat at the deadline.
    follow = {e.kind: e for e in NoticeEmail.objects.exclude(kind="notice")}
    assert follow["reminder"].due_at == notice.notified_at + timedelta(seconds=0.75 * notice.deadline_s)
    assert (follow["repeat"].seq, follow["repeat"].due_at) == (1, notice.deadline_at)


def test_the_drain_sends_each_email_once_however_often_it_runs(mail, prompt_hoster):
    unsent(prompt_hoster)
    for _run in range(5):
        notifications.drain_notifications()
    assert len(mail.messages) == 1


def test_a_notice_imported_with_notified_at_gets_no_email_ever(mail, prompt_hoster):
    notice = make_notice(URL, prompt_hoster, notified_ago_s=90000, status="online")
    drain_all()
    assert mail.messages == []
    assert not NoticeEmail.objects.filter(notice=notice).exists()


def test_a_notice_waits_for_its_hoster_before_it_is_emailed(mail, prompt_hoster):
    notice = unsent(None)
    drain_all()
    assert mail.messages == []
    Notice.objects.filter(pk=notice.pk).update(hoster=prompt_hoster, attribution_state="done")  # attributed
    drain_all()
    assert [m["To"] for m in mail.messages] == ["abuse@prompt.test"]


def test_nothing_is_sent_when_notify_by_email_is_off(mail, settings, prompt_hoster):
    settings.NOTIFY_BY_EMAIL = False
    unsent(prompt_hoster)
    assert notifications.drain_notifications() is False
    assert mail.messages == [] and not NoticeEmail.objects.exists()


def test_a_crash_between_sending_and_recording_never_sends_a_second_copy(mail, prompt_hoster, monkeypatch, settings):
    notice = unsent(prompt_hoster)

    class Killed(BaseException):
        """Stands in for SIGKILL: nothing after it runs."""

    def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(notifications, "_record_sent", die)
    with pytest.raises(Killed):
        notifications.drain_notifications()
    monkeypatch.undo()
    assert len(mail.messages) == 1
    email = NoticeEmail.objects.get(kind="notice")
    assert email.state == "sending"  # the intent was recorded before sending

    # A restarted monitor does not send it again, neither at once ...
    drain_all()
    assert len(mail.messages) == 1
    # ... nor after the lease: it becomes uncertain, for an analyst to resolve.
    drain_all(now=timezone.now() + timedelta(seconds=settings.NOTIFY_SENDING_LEASE_S + 1))
    assert len(mail.messages) == 1
    email.refresh_from_db()
    assert email.state == "uncertain"
    assert DeliveryEvent.objects.filter(outcome="uncertain", hoster=prompt_hoster).count() == 1
    assert Notice.objects.get(pk=notice.pk).notified_at is None

    # The analyst finds it in the mail server's log and confirms: notified_at is the attempt's time.
    assert notifications.email_confirm_accepted(email=email)
    email.refresh_from_db()
    notice.refresh_from_db()
    assert email.state == "sent" and notice.notified_at == email.sending_at


def test_a_connection_lost_after_the_message_was_handed_over_is_uncertain_not_resent(mail, prompt_hoster):
    mail.drop_after_data = True
    notice = unsent(prompt_hoster)
    drain_all()
    assert len(mail.messages) == 1  # the server has it; we could not know
    assert NoticeEmail.objects.get(kind="notice").state == "uncertain"
    mail.drop_after_data = False
    drain_all(now=timezone.now() + timedelta(hours=2))
    assert len(mail.messages) == 1
    assert Notice.objects.get(pk=notice.pk).notified_at is None
    # An analyst may decide to send it again: same Message-ID, so the copy can be recognised.
    email = NoticeEmail.objects.get(kind="notice")
    assert notifications.email_send_again(email=email, now=timezone.now())
    drain_all()
    assert len(mail.messages) == 2
    assert mail.messages[0]["Message-ID"].strip() == mail.messages[1]["Message-ID"].strip()
    assert Notice.objects.get(pk=notice.pk).notified_at is not None


def test_a_refused_abuse_address_is_recorded_against_the_hoster_and_retried_when_it_changes(mail, prompt_hoster):
    mail.refuse("abuse@prompt.test", 550)
    notice = unsent(prompt_hoster)
    drain_all()
    assert mail.messages == []
    email = NoticeEmail.objects.get(kind="notice")
    assert email.state == "failed" and email.last_error.startswith("550")
    event = DeliveryEvent.objects.get()
    assert (event.outcome, event.smtp_code, event.hoster, event.to_address) == (
        "refused",
        550,
        prompt_hoster,
        "abuse@prompt.test",
    )
    assert Notice.objects.get(pk=notice.pk).notified_at is None  # not notified: a finding, not a clock start
    drain_all(now=timezone.now() + timedelta(days=1))
    assert mail.messages == []  # no blind retries at a refusing address

    prompt_hoster.abuse_email = "abuse-desk@prompt.test"
    prompt_hoster.save()
    drain_all()
    assert [m["To"] for m in mail.messages] == ["abuse-desk@prompt.test"]
    assert Notice.objects.get(pk=notice.pk).notified_at is not None


def test_a_temporary_failure_is_retried_later(mail, prompt_hoster):
    mail.refuse("abuse@prompt.test", 450)
    unsent(prompt_hoster)
    drain_all()
    email = NoticeEmail.objects.get(kind="notice")
    assert email.state == "retry" and email.due_at > timezone.now()
    assert DeliveryEvent.objects.get().outcome == "temporary_failure"
    mail.handler.refusals.clear()
    drain_all()  # not due yet
    assert mail.messages == []
    drain_all(now=email.due_at + timedelta(seconds=1))
    assert len(mail.messages) == 1
    assert NoticeEmail.objects.get(kind="notice").attempts == 2


def test_an_unreachable_mail_server_costs_nothing_and_is_retried(mail, settings, prompt_hoster, closed_smtp_port):
    settings.EMAIL_PORT = closed_smtp_port
    notice = unsent(prompt_hoster)
    drain_all()
    email = NoticeEmail.objects.get(kind="notice")
    assert email.state == "retry" and "unreachable" in email.last_error
    assert not DeliveryEvent.objects.exists()  # our own outage is not the hoster's failure
    settings.EMAIL_PORT = mail.port
    drain_all(now=email.due_at + timedelta(seconds=1))
    assert len(mail.messages) == 1
    assert Notice.objects.get(pk=notice.pk).notified_at is not None


def test_a_hoster_without_abuse_address_is_a_finding_and_is_sent_once_it_has_one(mail, prompt_hoster):
    prompt_hoster.abuse_email = ""
    prompt_hoster.save()
    unsent(prompt_hoster)
    drain_all()
    assert mail.messages == []
    assert DeliveryEvent.objects.get().outcome == "no_address"
    email = NoticeEmail.objects.get(kind="notice")
    assert email.state == "retry"
    # Tried again later, but one finding per e-mail, not one per try.
    drain_all(now=email.due_at + timedelta(seconds=1))
    email.refresh_from_db()
    assert email.attempts == 2 and DeliveryEvent.objects.count() == 1
    prompt_hoster.abuse_email = "abuse@prompt.test"
    prompt_hoster.save()
    drain_all(now=email.due_at + timedelta(seconds=1))
    assert len(mail.messages) == 1


def _sent_notice(mail, hoster, **fields):
    notice = unsent(hoster, **fields)
    drain_all()
    notice.refresh_from_db()
    return notice, mail.messages[-1]


def test_a_reminder_goes_out_before_the_deadline_while_the_content_is_online(mail, prompt_hoster):
    notice, first = _sent_notice(mail, prompt_hoster)
    Notice.objects.filter(pk=notice.pk).update(status="online", last_online_at=timezone.now())
    reminder = NoticeEmail.objects.get(notice=notice, kind="reminder")
    drain_all()
    assert len(mail.messages) == 1  # not due yet
    drain_all(now=reminder.due_at + timedelta(seconds=1))
    assert len(mail.messages) == 2
    message = mail.messages[-1]
    assert message["Subject"].startswith("Reminder")
    assert message["In-Reply-To"].strip() == first["Message-ID"].strip()
    assert URL in message.get_content()


def test_no_reminder_while_a_removal_is_being_confirmed(mail, prompt_hoster):
    notice, _first = _sent_notice(mail, prompt_hoster)
    Notice.objects.filter(pk=notice.pk).update(status="online", offline_since=timezone.now(), offline_streak=1)
    reminder = NoticeEmail.objects.get(notice=notice, kind="reminder")
    drain_all(now=reminder.due_at + timedelta(seconds=1))
    assert len(mail.messages) == 1
    reminder.refresh_from_db()
    assert (reminder.state, reminder.last_error) == ("skipped", "removal being confirmed")


def test_a_repeat_notice_goes_out_every_deadline_period_while_the_content_stays_online(mail, prompt_hoster):
    notice, _first = _sent_notice(mail, prompt_hoster, deadline_s=3600)
    Notice.objects.filter(pk=notice.pk).update(status="online", last_online_at=timezone.now())
    NoticeEmail.objects.filter(notice=notice, kind="reminder").update(state="skipped", due_at=None)
    period = timedelta(seconds=3600)

    drain_all(now=notice.notified_at + period + timedelta(seconds=1))
    assert len(mail.messages) == 2
    assert mail.messages[-1]["Subject"].startswith("Repeat notice")
    nxt = NoticeEmail.objects.get(notice=notice, kind="repeat", seq=2)
    assert nxt.due_at == notice.notified_at + 2 * period

    # Taken down: the next period's repeat is not sent and no further one is scheduled.
    Notice.objects.filter(pk=notice.pk).update(status="removed", takedown_at=timezone.now())
    drain_all(now=notice.notified_at + 2 * period + timedelta(seconds=1))
    assert len(mail.messages) == 2
    assert NoticeEmail.objects.get(notice=notice, kind="repeat", seq=2).state == "skipped"
    assert not NoticeEmail.objects.filter(notice=notice, kind="repeat", seq=3).exists()

    # It reappears: a repeat goes out at once and the chain resumes.
    Notice.objects.filter(pk=notice.pk).update(status="reappeared", reappeared_at=timezone.now())
    drain_all()
    assert len(mail.messages) == 3
    assert "online again" in mail.messages[-1].get_content()
    assert NoticeEmail.objects.filter(notice=notice, kind="repeat", state="scheduled").count() == 1


def test_a_bounce_is_recorded_per_hoster_and_keeps_notified_at(mail, prompt_hoster, tmp_path):
    notice, message = _sent_notice(mail, prompt_hoster)
    dsn = f"""From: MAILER-DAEMON@mx.prompt.test
To: hotline@monitor.test
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.prompt.test

Final-Recipient: rfc822; abuse@prompt.test
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <abuse@prompt.test>: Recipient address rejected

--B
Content-Type: text/rfc822-headers

Message-ID: {message["Message-ID"].strip()}
Subject: {message["Subject"]}

--B--
"""
    (tmp_path / "bounce.eml").write_text(dsn)
    out = io.StringIO()
    call_command("record_bounce", str(tmp_path / "bounce.eml"), stdout=out)
    assert '"status": "5.1.1"' in out.getvalue()
    email = NoticeEmail.objects.get(notice=notice, kind="notice")
    assert email.state == "bounced"
    event = DeliveryEvent.objects.get(outcome="bounced")
    assert (event.hoster, event.smtp_code, event.to_address) == (prompt_hoster, 550, "abuse@prompt.test")
    assert Notice.objects.get(pk=notice.pk).notified_at == notice.notified_at

    # Something that is not a bounce of ours changes nothing.
    (tmp_path / "other.eml").write_text("From: x@y.test\nSubject: hello\n\nhi\n")
    out = io.StringIO()
    call_command("record_bounce", str(tmp_path / "other.eml"), stdout=out)
    assert '"email": null' in out.getvalue()


def test_logs_never_carry_the_url(mail, prompt_hoster, caplog):
    caplog.set_level(logging.DEBUG)
    mail.refuse("abuse@slow.test", 550)
    unsent(prompt_hoster)
    drain_all()
    ours = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if not r.name.startswith("mail.log")
    )  # mail.log is the test's SMTP server, not the product
    assert "compliance.notifications" in {r.name for r in caplog.records}  # it does log
    assert "files.prompt.test" not in ours and "reported/a.jpg" not in ours


# runmonitor closes stale connections between batches, as in production: real transactions.
@pytest.mark.django_db(transaction=True)
def test_runmonitor_once_sends_the_notices(mail, prompt_hoster):
    unsent(prompt_hoster)
    call_command("runmonitor", "--once")
    assert len(mail.messages) == 1


def test_retry_delays_grow_and_are_capped_by_the_deadline():
    assert notifications.retry_delay(1, 86400) == timedelta(minutes=1)
    assert notifications.retry_delay(3, 86400) == timedelta(minutes=4)
    assert notifications.retry_delay(30, 86400) == timedelta(hours=1)
    assert notifications.retry_delay(5, 60) == timedelta(seconds=2.5)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_monitors_draining_at_once_send_every_notice_exactly_once(smtp_server, settings):
    import threading

    from django.db import connection

    from compliance.models import Hoster

    smtp_server.use_for(settings)
    settings.NOTIFY_BY_EMAIL = True
    settings.NOTIFY_BATCH = 3
    hoster = Hoster.objects.create(slug="h", name="H", abuse_email="abuse@h.test", is_reviewed=True)
    for i in range(24):
        unsent(hoster, url=f"http://files.h.test/{i}.jpg")
    errors = []

    def worker():
        try:
            drain_all()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = sorted(m["X-Takedown-Notice"] for m in smtp_server.messages)
    assert len(ids) == 24 and len(set(ids)) == 24
    assert Notice.objects.filter(notified_at__isnull=True).count() == 0


def test_a_stopping_monitor_gives_unsent_claims_back(mail, prompt_hoster, monkeypatch):
    from monitor import jobs

    for i in range(3):
        unsent(prompt_hoster, url=f"http://files.prompt.test/{i}.jpg")
    monkeypatch.setattr(jobs.stopping, "is_set", lambda: True)
    notifications.drain_notifications()
    assert mail.messages == []
    assert set(NoticeEmail.objects.values_list("state", flat=True)) == {"scheduled"}
    monkeypatch.undo()
    drain_all()
    assert len(mail.messages) == 3


def test_a_mail_server_down_for_a_while_gets_every_notice_once_when_it_is_back(mail, prompt_hoster):
    """A fault test: the mail server refuses connections for a while, the drain keeps
    running as the monitor runs it; once the server is back every notice e-mail goes out, none twice,
    and the outage is nobody's delivery failure."""
    deadline_s = 48  # retries every 1 s, capped at 2 s (a 24th of the deadline)
    notices = [
        unsent(prompt_hoster, f"http://files.prompt.test/down/{i}.jpg", deadline_s=deadline_s) for i in range(20)
    ]
    ids = {n.pk for n in notices}
    mail.down()
    end = time.monotonic() + 4
    while time.monotonic() < end:
        notifications.drain_notifications()
        time.sleep(0.2)
    rows = NoticeEmail.objects.filter(notice_id__in=ids, kind="notice")
    assert rows.count() == 20 and set(rows.values_list("state", flat=True)) == {"retry"}
    assert not DeliveryEvent.objects.exists() and mail.messages == []
    assert not Notice.objects.filter(pk__in=ids, notified_at__isnull=False).exists()

    mail.up()
    end = time.monotonic() + 20
    while rows.exclude(state="sent").exists() and time.monotonic() < end:
        notifications.drain_notifications()
        time.sleep(0.2)
    end = time.monotonic() + 3  # and then some: nothing goes out a second time
    while time.monotonic() < end:
        notifications.drain_notifications()
        time.sleep(0.2)
    sent_for = [int(m["X-Takedown-Notice"]) for m in mail.messages if m["X-Takedown-Kind"] == "notice"]
    assert sorted(sent_for) == sorted(ids)  # every notice once, none twice
    assert set(rows.values_list("state", flat=True)) == {"sent"}
    for notice in Notice.objects.filter(pk__in=ids):
        assert notice.notified_at == rows.get(notice=notice).sent_at  # the deadline starts at acceptance
