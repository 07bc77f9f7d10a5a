"""One bad notice never stops a drain pass for the others.

Intake now refuses every value out of range and the database refuses it too (constraints added
by migration compliance 0009, which withdraws stored rows out of range), but a drain must not
depend on that: on PostgreSQL a `notified_at` of year 1 with a positive offset was stored as a
BC timestamp that psycopg cannot read back, and every drain pass failed on it. The tests write
such values with raw SQL around the constraint, beside a good notice, and run each drain once."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from compliance import notifications, services
from compliance.models import Check, Notice, NoticeEmail
from demo.sandbox.httpserver import ok
from monitor import check_drain
from monitor.attribution_drain import drain_attribution
from tests.compliance.portal_support import make_notice

# A timestamp each database stores but Python cannot read back: PostgreSQL keeps
# 0001-01-01T00:00:00+05:00 as '0001-12-31 19:00:00+00 BC'; Django's SQLite backend keeps text.
UNREADABLE = {"postgresql": "0001-01-01 00:00:00+05:00", "sqlite": "0000-12-31 19:00:00"}
# Readable, but one day later overflows Python's datetime (the deadline, a schedule).
UNCOMPUTABLE = {"postgresql": "9999-12-31 12:00:00+00", "sqlite": "9999-12-31 12:00:00"}


def poison(notice: Notice, column: str, values: dict[str, str]) -> None:
    """Store a value as a database without today's constraints held it. The constraint comes back
    with the test's rollback (PostgreSQL's DDL is transactional) or the pragma's reset (SQLite)."""
    table = connection.ops.quote_name(Notice._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred checks pending: ALTER refuses them
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT notice_notified_at_range")
        else:
            cursor.execute("PRAGMA ignore_check_constraints = ON")
        try:
            cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [values[connection.vendor], notice.pk])
        finally:
            if connection.vendor == "sqlite":
                cursor.execute("PRAGMA ignore_check_constraints = OFF")
    assert _use_fails(notice, values), "the poisoned row should fail its readers"


def _use_fails(notice: Notice, values: dict[str, str]) -> bool:
    try:
        with transaction.atomic():
            row = Notice.objects.get(pk=notice.pk)
            if values is UNCOMPUTABLE:
                row.notified_at + timedelta(days=1)  # noqa: B018
    except (*services.UNREADABLE_ROW_ERRORS, OverflowError):
        return True
    return False


def new_notice(url: str, **kwargs) -> Notice:
    now = timezone.now()
    data = services.notice_input_parse(url=url, now=now, **kwargs)
    return services.notice_create(data=data, source="test", now=now)[0]


@pytest.fixture
def internet(dns_server, prompt_hoster, settings):
    settings.MONITOR_RDAP = False
    dns_server.add_origin("127.10.0.0/16", 64500, cc="NL")
    dns_server.add_as_name(64500, "PROMPT-AS Prompt Hosting, NL", cc="NL")
    dns_server.add_host("good.prompt.example", "127.10.0.5")
    dns_server.add_host("bad.prompt.example", "127.10.0.6")
    return dns_server


@pytest.mark.parametrize("values", [UNREADABLE, UNCOMPUTABLE], ids=["unreadable", "uncomputable"])
def test_the_attribution_drain_attributes_the_others_and_pushes_a_bad_notice_forward(
    internet, prompt_hoster, values, caplog
):
    bad = new_notice("http://bad.prompt.example/x")
    good = new_notice("http://good.prompt.example/x")
    poison(bad, "notified_at", values)
    before = timezone.now()

    with caplog.at_level(logging.ERROR, logger="monitor.attribution_drain"):
        drain_attribution()

    good.refresh_from_db()
    assert good.attribution_state == "done" and good.hoster == prompt_hoster
    state, next_at = Notice.objects.filter(pk=bad.pk).values_list("attribution_state", "next_attribution_at").get()
    assert state == "pending" and next_at >= before + services.BAD_ROW_DELAY
    assert any(r.exc_info and f"notice {bad.pk}" in r.getMessage() for r in caplog.records)
    assert drain_attribution() is False  # the bad notice waits; nothing else is due


def test_the_check_drain_records_the_others_and_pushes_an_unreadable_notice_forward(db, http_server, caplog):
    url = http_server.set("/a.jpg", ok(b"ITEM"))
    bad = new_notice(url + "?bad")
    good = new_notice(url)
    poison(bad, "notified_at", UNREADABLE)
    before = timezone.now()

    with caplog.at_level(logging.ERROR, logger="monitor.check_drain"):
        result = check_drain.run_batch(now=timezone.now() + timedelta(seconds=1))

    assert (result.claimed, result.recorded, result.failed) == (2, 1, 1)
    assert Check.objects.filter(notice=good).count() == 1
    assert Check.objects.filter(notice_id=bad.pk).count() == 0
    next_at, token = Notice.objects.filter(pk=bad.pk).values_list("next_check_at", "lease_token").get()
    assert next_at >= before + services.BAD_ROW_DELAY and token is None
    assert any(r.exc_info and f"notice {bad.pk}" in r.getMessage() for r in caplog.records)


def test_the_check_claim_leases_the_others_when_one_due_notice_cannot_be_read(db, http_server, caplog):
    url = http_server.set("/a.jpg", ok(b"ITEM"))
    bad = new_notice(url + "?bad")
    good = new_notice(url)
    poison(bad, "last_checked_at", UNREADABLE)  # a column the claim itself reads
    before = timezone.now()

    with caplog.at_level(logging.ERROR, logger="monitor.check_drain"):
        result = check_drain.run_batch(now=timezone.now() + timedelta(seconds=1))

    assert (result.claimed, result.recorded) == (1, 1)
    assert Check.objects.filter(notice=good).count() == 1
    next_at, token = Notice.objects.filter(pk=bad.pk).values_list("next_check_at", "lease_token").get()
    assert next_at >= before + services.BAD_ROW_DELAY and token is None
    assert any(r.exc_info and f"notice {bad.pk}" in r.getMessage() for r in caplog.records)


def test_the_check_drain_pushes_forward_a_notice_it_cannot_compute_with(db, http_server):
    url = http_server.set("/a.jpg", ok(b"ITEM"))
    bad = new_notice(url + "?bad")
    good = new_notice(url)
    poison(bad, "notified_at", UNCOMPUTABLE)

    result = check_drain.run_batch(now=timezone.now() + timedelta(seconds=1))

    assert (result.claimed, result.recorded, result.failed) == (2, 1, 1)
    assert Check.objects.filter(notice=good).count() == 1
    assert Notice.objects.filter(pk=bad.pk).values_list("lease_token", flat=True).get() is None


@pytest.fixture
def mail(smtp_server, settings):
    smtp_server.use_for(settings)
    settings.NOTIFY_BY_EMAIL = True
    settings.DEFAULT_FROM_EMAIL = "hotline@monitor.test"
    settings.SITE_URL = "https://monitor.test"
    return smtp_server


def test_the_notifications_drain_sends_the_others_and_pushes_an_unreadable_notice_forward(mail, prompt_hoster, caplog):
    bad = make_notice("http://files.prompt.test/bad.jpg", prompt_hoster, notified_ago_s=None)
    good = make_notice("http://files.prompt.test/good.jpg", prompt_hoster, notified_ago_s=None)
    notifications.enqueue_notices(now=timezone.now(), limit=10)
    poison(bad, "received_at", UNREADABLE)
    before = timezone.now()

    with caplog.at_level(logging.ERROR, logger="compliance.notifications"):
        notifications.drain_notifications()

    [message] = mail.messages
    assert message["X-Takedown-Notice"] == str(good.pk)
    email = NoticeEmail.objects.get(notice_id=bad.pk, kind="notice")
    assert email.state == "retry" and email.due_at >= before + services.BAD_ROW_DELAY
    assert "cannot be read" in email.last_error
    assert any(r.exc_info and f"notice e-mail {email.pk}" in r.getMessage() for r in caplog.records)


def test_the_database_refuses_a_notified_at_out_of_range_whoever_writes(db):
    from django.db import IntegrityError

    notice = new_notice("http://x.example/a")
    for value in ("1999-12-31T23:59:59+00:00", "2200-01-01T00:00:00+00:00"):
        with pytest.raises(IntegrityError), transaction.atomic():
            Notice.objects.filter(pk=notice.pk).update(notified_at=value)
    for deadline_s in (0, services.DEADLINE_MAX_S + 1):
        with pytest.raises(IntegrityError), transaction.atomic():
            Notice.objects.filter(pk=notice.pk).update(deadline_s=deadline_s)


def test_the_migration_withdraws_stored_notices_out_of_range_and_keeps_their_values_in_words(api, analyst):
    """Migration compliance 0009's repair, run again over a row as an old database held it: the
    notice becomes readable (withdrawn, its values in the reason), the pages, the report and the
    API that failed over it answer again, and the good one is untouched."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("compliance.migrations.0009_notice_ranges")
    bad = new_notice("http://bad.example/a")
    good = new_notice("http://good.example/a")
    poison(bad, "notified_at", UNREADABLE)
    client = api.as_user(analyst)
    client.raise_request_exception = False
    assert client.get("/api/v1/notices/").status_code == 500  # the failure a bad row causes
    migration.withdraw_out_of_range(apps, SimpleNamespace(connection=connection))  # all it uses of a schema editor
    assert client.get("/api/v1/notices/").json()["count"] == 2
    assert client.get("/api/v1/metrics/hosters/").status_code == 200
    out = io.StringIO()
    call_command("compliance_report", "--format", "json", stdout=out)
    assert isinstance(json.loads(out.getvalue()), list)
    bad = Notice.objects.get(pk=bad.pk)  # readable again
    assert bad.status == "withdrawn" and bad.notified_at is None and bad.deadline_at is None
    assert bad.next_check_at is None and bad.next_attribution_at is None and bad.withdrawn_at is not None
    assert "withdrawn by migration compliance 0009" in bad.withdrawn_reason
    assert ("BC" if connection.vendor == "postgresql" else "0000-12-31") in bad.withdrawn_reason
    assert Notice.objects.get(pk=good.pk).status == "pending"
