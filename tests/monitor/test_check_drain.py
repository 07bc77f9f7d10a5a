"""The check drain (monitor/check_drain.py) against real loopback servers and the test database."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from compliance import rules, services
from compliance.models import Check, Notice
from demo.sandbox.httpserver import ok, status
from monitor import check_drain, jobs
from monitor.check_client import check_urls
from monitor.models import PlaceholderHash

ITEM = b"REPORTED-ITEM-BYTES-3f9c1e"


def make_notice(url: str, *, hoster=None, content_sha256: str = "", deadline_s: int = 3600, notified_ago_s=0):
    now = timezone.now()
    data = services.notice_input_parse(
        url=url,
        notified_at=now - timedelta(seconds=notified_ago_s),
        content_sha256=content_sha256,
        hoster=hoster.slug if hoster else "",
        deadline_s=deadline_s,
        now=now,
    )
    notice, _outcome = services.notice_create(data=data, source="test", now=now)
    return notice


def drain(**kw) -> check_drain.BatchResult:
    """One batch, claiming everything that is due within the next day (tests don't wait for the grid)."""
    return check_drain.run_batch(now=timezone.now() + timedelta(days=1), **kw)


def test_the_check_drain_is_registered_after_attribution():
    names = [d.name for d in jobs.DRAINS]
    assert names.index("checks") > names.index("attribution")
    assert jobs.DRAINS[names.index("checks")].func is check_drain.drain_checks


def test_a_due_notice_is_checked_recorded_and_rescheduled(db, http_server):
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    due_at = notice.next_check_at
    result = check_drain.run_batch()
    assert (result.claimed, result.recorded) == (1, 1)
    check = Check.objects.get(notice=notice)
    assert check.outcome == "online" and check.reason == "online" and check.http_status == 200
    assert check.due_at == due_at and check.trigger == "schedule" and check.worker == check_drain.WORKER
    assert check.resolved_ip == "127.0.0.1" and check.body_sha256 == hashlib.sha256(ITEM).hexdigest()
    notice.refresh_from_db()
    assert notice.status == "online" and notice.check_count == 1
    assert notice.last_online_at == check.checked_at == notice.last_checked_at
    assert notice.lease_token is None
    assert notice.next_check_at > check.checked_at
    assert check_drain.drain_checks() is False  # nothing else is due


def test_a_removal_is_confirmed_by_the_second_observation_and_timed_at_the_first(db, http_server):
    url = http_server.set("/a.jpg", ok(ITEM))
    notice = make_notice(url)
    drain()
    http_server.set("/a.jpg", status(404))
    drain()
    notice.refresh_from_db()
    assert notice.status == "online" and notice.offline_streak == 1 and notice.takedown_at is None
    drain()
    notice.refresh_from_db()
    checks = list(Check.objects.filter(notice=notice).order_by("checked_at"))
    assert [c.outcome for c in checks] == ["online", "removed", "removed"]
    assert notice.status == "removed" and notice.removal_mechanism == "file_gone"
    assert notice.takedown_at == checks[1].checked_at and notice.last_online_at == checks[0].checked_at
    assert notice.precision_s == rules.seconds_up(checks[1].checked_at - checks[0].checked_at)
    # every timing field can be recomputed from the checks
    replayed = rules.replay([(c.checked_at, c.outcome, c.reason) for c in checks], deadline_s=notice.deadline_s)
    assert replayed == rules.Timing.of(notice)
    # after the takedown: slow reappearance checks
    assert notice.next_check_at - notice.last_checked_at >= timedelta(seconds=notice.deadline_s / 4 - 1)


def test_a_hoster_claim_is_verified_not_trusted(db, http_server):
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    drain()
    Notice.objects.filter(pk=notice.pk).update(reported_removed_at=timezone.now(), next_check_at=timezone.now())
    check_drain.run_batch()
    check = Check.objects.filter(notice=notice).latest("checked_at")
    assert check.trigger == "hoster_claim" and check.outcome == "online"
    notice.refresh_from_db()
    assert notice.status == "online" and notice.takedown_at is None


def test_a_placeholder_marked_for_the_hoster_counts_as_removed(db, http_server, prompt_hoster, slow_hoster):
    placeholder = b"<svg>this file was removed</svg>"
    url = http_server.set("/a.jpg", ok(placeholder))
    notice = make_notice(url, hoster=prompt_hoster)
    other = make_notice(http_server.set("/b.jpg", ok(placeholder)), hoster=slow_hoster)
    PlaceholderHash.objects.create(sha256=hashlib.sha256(placeholder).hexdigest(), hoster=prompt_hoster)
    drain()
    assert Check.objects.get(notice=notice).reason == "placeholder"
    assert Check.objects.get(notice=other).reason == "online"  # only that hoster's placeholder


def test_content_served_from_another_hosters_network_is_moved(db, http_server_factory, prompt_hoster, slow_hoster):
    server = http_server_factory(host="127.20.0.1")  # inside slow_hoster's 127.20.0.0/16
    notice = make_notice(server.set("/a.jpg", ok(ITEM)), hoster=prompt_hoster)
    drain()
    drain()
    notice.refresh_from_db()
    assert notice.status == "removed" and notice.removal_mechanism == "moved" and notice.is_displaced
    home = make_notice(server.set("/b.jpg", ok(ITEM)), hoster=slow_hoster)
    drain()
    assert Check.objects.filter(notice=home).get().outcome == "online"


def test_reappearance_reopens_the_notice(db, http_server):
    url = http_server.set("/a.jpg", status(410))
    notice = make_notice(url)
    drain()
    drain()
    notice.refresh_from_db()
    assert notice.status == "removed"
    first_takedown = notice.takedown_at
    http_server.set("/a.jpg", ok(ITEM))
    drain()
    notice.refresh_from_db()
    assert notice.status == "reappeared" and notice.reappearance_count == 1
    assert notice.takedown_at == first_takedown and notice.next_check_at is not None


def test_a_reappearance_while_another_notice_is_open_for_the_url_is_recorded_without_reopening(db, http_server):
    url = http_server.set("/a.jpg", status(404))
    old = make_notice(url)
    drain()
    drain()
    new = make_notice(url)  # a fresh notice for the URL while the old one is closed
    assert new.status == "pending"
    http_server.set("/a.jpg", ok(ITEM))
    result = drain()
    assert result.failed == 0
    old.refresh_from_db()
    assert old.status == "removed" and old.reappearance_count == 1 and old.next_check_at is None
    new.refresh_from_db()
    assert new.status == "online"


def test_nxdomain_is_domain_gone_only_after_the_host_resolved(db, http_server, dns_server):
    dns_server.add_a("files.example", "127.0.0.1", ttl=0)
    http_server.set("/a.jpg", ok(ITEM))
    seen = make_notice(f"http://files.example:{http_server.port}/a.jpg")
    never = make_notice(f"http://never.example:{http_server.port}/a.jpg")
    dns_server.nxdomain("never.example")
    drain()
    dns_server.nxdomain("files.example")
    drain()
    drain()
    seen.refresh_from_db()
    never.refresh_from_db()
    assert seen.status == "removed" and seen.removal_mechanism == "domain_gone"
    assert [c.reason for c in never.checks.all()] == ["never_resolved"] * 3
    assert never.status == "pending" and never.unreachable_streak == 0


def test_a_lost_lease_discards_the_observations(db, http_server):
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    token = uuid.uuid4()
    claimed = check_drain.claim(now=timezone.now(), limit=10, token=token, lease_s=60)
    assert [c.id for c in claimed] == [notice.id]
    assert check_drain.claim(now=timezone.now(), limit=10, token=uuid.uuid4(), lease_s=60) == []  # leased
    # the lease expires and another process takes the notice
    Notice.objects.filter(pk=notice.pk).update(lease_token=uuid.uuid4())
    import asyncio

    observations = asyncio.run(check_urls([c.url for c in claimed]))
    result = check_drain.BatchResult(claimed=1)
    check_drain.record(
        claimed, observations, check_drain.classify_batch(claimed, observations), token=token, result=result
    )
    assert result.discarded == 1 and result.recorded == 0
    assert not Check.objects.exists()


def test_one_bad_row_never_takes_the_batch_down(db, http_server, monkeypatch):
    good = make_notice(http_server.set("/good.jpg", ok(ITEM)))
    bad = make_notice(http_server.set("/bad.jpg", ok(ITEM)))
    real = rules.apply_check

    def flaky(state, **kw):
        if kw["at"] and state.status == "pending" and flaky.calls == 0:
            flaky.calls += 1
            raise RuntimeError("a bug in one row")
        return real(state, **kw)

    flaky.calls = 0
    monkeypatch.setattr(rules, "apply_check", flaky)
    result = drain()
    assert result.failed == 1 and result.recorded == 1
    counts = {n.pk: n.checks.count() for n in (good, bad)}
    assert sorted(counts.values()) == [0, 1]
    for notice in (good, bad):
        notice.refresh_from_db()
        assert notice.lease_token is None and notice.next_check_at is not None


def test_no_byte_of_a_body_is_stored(db, http_server, caplog):
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    drain()
    http_server.set("/a.jpg", ok(ITEM + b"-CHANGED"))
    drain()
    assert Check.objects.filter(notice=notice).count() == 2
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                assert not any(ITEM.decode() in str(v) for v in row), table
    assert ITEM.decode() not in caplog.text


def test_a_stopping_monitor_claims_nothing_new(db, http_server):
    make_notice(http_server.set("/a.jpg", ok(ITEM)))
    jobs.stopping.set()
    try:
        assert check_drain.drain_checks() is False
    finally:
        jobs.stopping.clear()
    assert not Check.objects.exists()


@pytest.mark.parametrize("batch", [3])
def test_the_drain_reports_more_work_while_a_full_batch_was_claimed(db, http_server, settings, batch):
    settings.MONITOR_BATCH = batch
    http_server.set("/a", ok(ITEM))
    for i in range(batch + 1):
        make_notice(http_server.url(f"/a?{i}"))
    assert check_drain.drain_checks() is True
    assert check_drain.drain_checks() is False
    assert Check.objects.count() == batch + 1


# --- PostgreSQL, committed transactions (as runmonitor runs): COPY, unnest UPDATE, SKIP LOCKED ---


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_takedowns_reappearances_and_lost_leases_are_recorded_in_real_transactions(http_server):
    import asyncio

    assert not connection.in_atomic_block  # each step commits, as in runmonitor
    gone = make_notice(http_server.set("/gone.jpg", ok(ITEM)))
    back = make_notice(http_server.set("/back.jpg", status(404)))
    drain()
    http_server.set("/gone.jpg", status(410))
    drain()
    drain()
    gone.refresh_from_db()
    checks = list(gone.checks.order_by("checked_at"))
    assert gone.status == "removed" and gone.takedown_at == checks[1].checked_at
    assert rules.replay([(c.checked_at, c.outcome, c.reason) for c in checks], deadline_s=3600) == rules.Timing.of(gone)
    back.refresh_from_db()
    assert back.status == "removed"
    newer = make_notice(back.url)  # a new open notice for the URL
    http_server.set("/back.jpg", ok(ITEM))
    result = drain()
    assert result.failed == 0
    back.refresh_from_db()
    assert back.status == "removed" and back.reappearance_count == 1 and back.next_check_at is None
    newer.refresh_from_db()
    assert newer.status == "online"

    # a lease lost while the batch ran: its observation is thrown away
    Notice.objects.filter(pk=newer.pk).update(next_check_at=timezone.now())
    token = uuid.uuid4()
    claimed = check_drain.claim(now=timezone.now(), limit=10, token=token, lease_s=60)
    assert [c.id for c in claimed] == [newer.pk]
    Notice.objects.filter(pk=newer.pk).update(lease_token=uuid.uuid4())
    result = check_drain.BatchResult(claimed=1)
    observations = asyncio.run(check_urls([c.url for c in claimed]))
    check_drain.record(
        claimed, observations, check_drain.classify_batch(claimed, observations), token=token, result=result
    )
    assert (result.discarded, result.recorded) == (1, 0)
    assert newer.checks.count() == 1


# --- An analyst's "check now" (admin action; compliance.services.notice_check_request) -----------


def _check_now(analyst, *notices):
    from django.test import Client

    client = Client()
    client.force_login(analyst)
    response = client.post(
        "/admin/compliance/notice/", {"action": "check_now", "_selected_action": [n.pk for n in notices]}, follow=True
    )
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def test_an_analysts_check_now_is_checked_at_once_with_its_trigger(db, http_server, analyst):
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    drain()
    notice.refresh_from_db()
    assert notice.next_check_at > timezone.now()  # not due by itself
    assert _check_now(analyst, notice) == ["1 notice queued for a check now: runmonitor checks it within seconds."]
    result = check_drain.run_batch()  # now: only what is due now
    assert result.recorded == 1
    check = Check.objects.filter(notice=notice).latest("checked_at")
    assert check.trigger == "analyst" and check.outcome == "online"
    notice.refresh_from_db()
    assert notice.status == "online" and notice.next_check_at > timezone.now()
    from compliance.models import AuditEvent

    assert AuditEvent.objects.filter(action="notice.check_now", notice=notice, actor=analyst).count() == 1
    # The next scheduled check is a schedule check again.
    drain()
    assert Check.objects.filter(notice=notice).latest("checked_at").trigger == "schedule"


def test_a_closed_notice_is_not_checked_on_request(db, http_server, analyst):
    gone = make_notice(http_server.set("/gone.jpg", status(404)))
    drain()
    drain()
    gone.refresh_from_db()
    assert gone.status == "removed"
    messages = _check_now(analyst, gone)
    assert messages == [
        "0 notices queued for a check now: runmonitor checks them within seconds.",
        "1 selected notice is closed and was not queued.",
    ]
    assert Notice.objects.get(pk=gone.pk).check_requested_at is None


def test_a_request_while_the_notice_is_leased_is_checked_right_after(db, http_server, analyst):
    """The request comes while a monitor holds the notice and its check has already started."""
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    token = uuid.uuid4()
    claimed = check_drain.claim(now=timezone.now(), limit=10, token=token, lease_s=60)
    leased_until = Notice.objects.get(pk=notice.pk).next_check_at
    observations = asyncio.run(check_urls([c.url for c in claimed]))
    _check_now(analyst, notice)
    # The lease keeps its next_check_at: no second monitor can claim the notice meanwhile.
    assert Notice.objects.get(pk=notice.pk).next_check_at == leased_until
    assert check_drain.claim(now=timezone.now(), limit=10, token=uuid.uuid4(), lease_s=60) == []
    check_drain.record(
        claimed,
        observations,
        check_drain.classify_batch(claimed, observations),
        token=token,
        result=check_drain.BatchResult(),
    )
    # The check in flight began before the request: recorded as scheduled, and due again at once.
    assert Check.objects.get(notice=notice).trigger == "schedule"
    assert Notice.objects.get(pk=notice.pk).next_check_at <= timezone.now()
    check_drain.run_batch()
    assert Check.objects.filter(notice=notice).latest("checked_at").trigger == "analyst"


def test_the_drains_checks_are_chained_per_notice_and_verify(db, http_server):
    """The record step links each check to its notice's chain and writes the head with the state."""
    import io
    import json

    from django.core.management import call_command

    from compliance import evidence

    notices = [make_notice(http_server.set(f"/c{i}.jpg", ok(ITEM))) for i in range(3)]
    for _round in range(3):
        drain()
    for notice in notices:
        notice.refresh_from_db()
        checks = list(Check.objects.filter(notice=notice).order_by("id"))
        assert len(checks) == 3
        prev = evidence.GENESIS
        for check in checks:
            assert check.chain_hash == Check.evidence_chain.link(prev, Check.evidence_chain.values_of(check))
            prev = check.chain_hash
        assert notice.check_chain_head == prev
    out = io.StringIO()
    call_command("verify_evidence", stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1])["chains"]["checks"] == {"rows": 9, "chains": 3, "broken": 0}
