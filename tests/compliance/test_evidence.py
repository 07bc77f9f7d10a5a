"""Evidence is append-only in the database and hash-chained (compliance/triggers.py, compliance/evidence.py).

Both databases: triggers refuse UPDATE and DELETE from raw SQL; `verify_evidence` finds a row
altered behind the triggers' back (SQLite: the maintenance switch; PostgreSQL: the trigger
disabled inside the test's transaction) at the right link; two writers on PostgreSQL don't fork
a chain.
"""

from __future__ import annotations

import io
import json
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from compliance import evidence, triggers
from compliance.audit import audit_record
from compliance.models import (
    AppendOnlyError,
    Attribution,
    AuditEvent,
    ChainHead,
    Check,
    DeliveryEvent,
    Notice,
    NoticeEmail,
    RdapRecord,
)
from monitor import check_drain


def _notice(hoster, n=1) -> Notice:
    now = timezone.now()
    return Notice.objects.create(
        url=f"http://evidence{n}.example/a.jpg",
        scheme="http",
        host=f"evidence{n}.example",
        received_at=now,
        notified_at=now,
        deadline_s=86400,
        hoster=hoster,
    )


def _check(notice, minutes=0, **kwargs) -> Check:
    values = {"outcome": "online", "http_status": 200, "resolved_ip": "127.10.0.5", **kwargs}
    return Check.objects.create(notice=notice, checked_at=notice.notified_at + timedelta(minutes=minutes), **values)


def verify() -> tuple[int, dict, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_evidence", stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


@pytest.fixture
def evidence_rows(prompt_hoster, analyst):
    """Two notices with checks, an attribution each, an e-mail with a delivery event, audit events."""
    a, b = _notice(prompt_hoster, 1), _notice(prompt_hoster, 2)
    checks = [_check(a, 0), _check(b, 0), _check(a, 5, outcome="removed", http_status=404), _check(a, 10)]
    for n in (a, b):
        Attribution.objects.create(
            notice=n,
            created_at=timezone.now(),
            method="dns",
            hostname=n.host,
            resolved_ips=["127.10.0.5"],
            chosen_ip="127.10.0.5",
            rdap={"cidr": "127.10.0.0/16", "abuse_emails": ["abuse@prompt.test"]},
            hoster=prompt_hoster,
        )
    email = NoticeEmail.objects.create(notice=a, kind="notice", hoster=prompt_hoster, created_at=timezone.now())
    DeliveryEvent.objects.create(email=email, hoster=prompt_hoster, at=timezone.now(), outcome="accepted")
    RdapRecord.objects.create(ip="127.10.0.5", looked_up_at=timezone.now(), status="found", network={"cidr": "x"})
    audit_record(actor=analyst, action="notice.check_now", notice=a)
    audit_record(actor=analyst, action="test")
    return a, b, checks


# --- Append-only in the database ---------------------------------------------------------------


@pytest.mark.parametrize(
    "table",
    [
        "monitor_check",
        "monitor_attribution",
        "monitor_rdaprecord",
        "compliance_deliveryevent",
        "compliance_auditevent",
    ],
)
def test_the_database_refuses_update_and_delete_of_evidence_from_raw_sql(evidence_rows, table):
    for sql in (f"UPDATE {table} SET id = id + 1000", f"DELETE FROM {table}"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        assert cursor.fetchone()[0] > 0


def test_a_deleted_user_leaves_the_audit_trail_intact_and_named(evidence_rows, analyst):
    # SET_NULL on the actor: the one UPDATE the trigger allows; the name stays, and the chain holds.
    analyst.delete()
    events = AuditEvent.objects.filter(actor_username="alice")
    assert events.count() >= 2 and all(e.actor_id is None for e in events)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE compliance_auditevent SET actor_id = NULL, action = 'forged'")
    code, summary, _err = verify()
    assert code == 0, summary


def test_audit_and_delivery_events_are_append_only_in_the_orm(evidence_rows):
    event = AuditEvent.objects.first()
    delivery = DeliveryEvent.objects.first()
    for row in (event, delivery):
        with pytest.raises(AppendOnlyError):
            row.save()
        with pytest.raises(AppendOnlyError):
            row.delete()
        with pytest.raises(AppendOnlyError):
            type(row).objects.all().update(id=1)
        with pytest.raises(AppendOnlyError):
            type(row).objects.all().delete()


def test_every_evidence_table_has_its_triggers(db):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname LIKE '%%_append_only'")
            found = {r[0] for r in cursor.fetchall()}
            assert found == set(triggers.TABLES)
        else:
            cursor.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'")
            found = {(t, n) for t, n in cursor.fetchall()}
            for table in triggers.TABLES:
                assert (table, f"{table}_no_update") in found
                assert (table, f"{table}_no_delete") in found


@pytest.mark.sqlite
def test_the_sqlite_audit_trigger_knows_every_column(db):
    """The SQLite trigger lists the audit table's columns (only actor and hoster may become NULL): a
    column added later must be in it, which re-installing after `migrate` does. (PostgreSQL's
    function compares whole rows.)"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'compliance_auditevent_no_update'")
        sql = cursor.fetchone()[0]
    for f in AuditEvent._meta.concrete_fields:
        assert f'NEW."{f.column}"' in sql


def test_every_field_of_a_chained_model_is_covered_or_deliberately_left_out():
    """A field added to evidence later is either hashed or named here with the reason."""
    left_out = {
        "monitor_check": {"id", "chain_hash"},
        "monitor_attribution": {"id", "chain_hash"},
        # SET_NULL when the user or hoster is deleted; the actor's name and role are covered.
        "compliance_auditevent": {"id", "chain_hash", "actor_id", "hoster_id"},
    }
    for chain in evidence.chains():
        all_fields = {f.attname for f in chain.model._meta.concrete_fields}
        assert all_fields - set(chain.fields) == left_out[chain.label]


# --- The chains --------------------------------------------------------------------------------


def test_a_notices_checks_form_a_chain_ending_at_its_head(evidence_rows):
    a, b, checks = evidence_rows
    a.refresh_from_db()
    chain = Check.evidence_chain
    rows = list(Check.objects.filter(notice=a).order_by("id"))
    prev = evidence.GENESIS
    for row in rows:
        assert row.chain_hash == chain.link(prev, chain.values_of(row))
        prev = row.chain_hash
    assert a.check_chain_head == prev
    assert len({r.chain_hash for r in Check.objects.all()}) == Check.objects.count()
    assert ChainHead.objects.get(name="audit").length == AuditEvent.objects.count()


def test_verify_evidence_is_clean_on_untouched_evidence(evidence_rows):
    code, summary, err = verify()
    assert code == 0, err
    assert summary["ok"] is True
    assert summary["chains"]["checks"] == {"rows": 4, "chains": 2, "broken": 0}
    assert summary["chains"]["attributions"] == {"rows": 2, "chains": 2, "broken": 0}
    assert summary["chains"]["audit"]["rows"] == AuditEvent.objects.count()
    assert summary["first_broken"] is None


def _tamper(sql: str, params=()) -> None:
    """Change evidence behind the triggers' back, as an owner of the database could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A superuser's way round every trigger, for this transaction only (the test's).
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute(sql, params)
            cursor.execute("SET LOCAL session_replication_role = origin")
        else:
            with triggers.maintenance():
                cursor.execute(sql, params)


def test_verify_evidence_finds_an_altered_check_at_its_link(evidence_rows):
    a, _b, checks = evidence_rows
    altered = checks[2]  # notice a's second check: "removed" becomes an earlier takedown
    _tamper("UPDATE monitor_check SET http_status = 410 WHERE id = %s", [altered.pk])
    code, summary, err = verify()
    assert code == 1
    assert summary["ok"] is False
    assert summary["chains"]["checks"]["broken"] == 1
    assert summary["first_broken"] == {
        "chain": "checks",
        "notice_id": a.pk,
        "row_id": altered.pk,
        "reason": "the row does not match its hash",
    }
    assert f"notice {a.pk}, row {altered.pk}" in err


def test_a_rewritten_hash_moves_the_break_to_the_next_link(evidence_rows):
    a, _b, checks = evidence_rows
    forged = Check.evidence_chain.link(checks[0].chain_hash, Check.evidence_chain.values_of(checks[2])[:-1] + ["x"])
    _tamper("UPDATE monitor_check SET vantage = 'x', chain_hash = %s WHERE id = %s", [forged, checks[2].pk])
    code, summary, _err = verify()
    assert code == 1
    assert summary["first_broken"]["row_id"] == checks[3].pk  # the next check no longer follows


def test_a_removed_last_check_is_found_by_the_notices_head(evidence_rows):
    a, _b, checks = evidence_rows
    _tamper("DELETE FROM monitor_check WHERE id = %s", [checks[3].pk])
    code, summary, _err = verify()
    assert code == 1
    assert summary["first_broken"]["notice_id"] == a.pk
    assert "rows were removed" in summary["first_broken"]["reason"]


def test_an_altered_audit_event_breaks_the_trail(evidence_rows):
    first = AuditEvent.objects.order_by("id").first()
    _tamper("UPDATE compliance_auditevent SET action = 'nothing' WHERE id = %s", [first.pk])
    code, summary, _err = verify()
    assert code == 1
    assert summary["first_broken"] == {
        "chain": "audit",
        "notice_id": None,
        "row_id": first.pk,
        "reason": "the row does not match its hash",
    }


def test_the_monitors_bulk_writer_chains_after_rows_written_one_by_one(evidence_rows):
    a, b, _checks = evidence_rows
    now = timezone.now()
    row = (
        a.pk,
        now,
        now,
        12,
        "schedule",
        "127.10.0.9",
        "online",
        200,
        "",
        "http_200",
        "",
        10,
        False,
        0,
        "",
        "w",
        "local",
    )
    with transaction.atomic():
        check_drain._insert_checks([row, (b.pk, *row[1:]), row])
    code, summary, err = verify()
    assert code == 0, err
    assert summary["chains"]["checks"]["rows"] == 7


# --- Concurrent writers ------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_writers_appending_to_the_same_notices_never_fork_their_chains(prompt_hoster):
    """Two threads (two connections), each appending checks in transactions of its own, as two
    monitor processes do over time: the row lock on the notice serialises them."""
    notices = [_notice(prompt_hoster, n) for n in range(3)]
    errors = []
    barrier = threading.Barrier(2)

    def writer(worker: str) -> None:
        try:
            barrier.wait()
            for i in range(40):
                now = timezone.now()
                rows = [
                    (n.pk, now, now, i, "schedule", None, "online", 200, "", "", "", 0, False, 0, "", worker, "local")
                    for n in notices
                ]
                with transaction.atomic():
                    check_drain._insert_checks(rows)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    code, summary, err = verify()
    assert code == 0, err
    assert summary["chains"]["checks"] == {"rows": 240, "chains": 3, "broken": 0}
    # Both workers' rows interleave in each chain (the test exercised concurrency), yet no fork.
    workers = list(Check.objects.filter(notice=notices[0]).order_by("id").values_list("worker", flat=True))
    assert workers.count("a") == workers.count("b") == 40


def test_a_full_save_of_a_notice_read_earlier_keeps_the_chain_head_moved_since(prompt_hoster):
    notice = _notice(prompt_hoster, 9)
    stale = Notice.objects.get(pk=notice.pk)
    check = _check(notice)
    stale.reported_removed_at = timezone.now()
    stale.save()  # an ordinary full save of an instance read before the check
    fresh = Notice.objects.get(pk=notice.pk)
    assert fresh.check_chain_head == check.chain_hash
    assert fresh.reported_removed_at is not None
    code, _summary, err = verify()
    assert code == 0, err
