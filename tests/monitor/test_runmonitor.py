"""runmonitor as processes: leases on PostgreSQL (two monitors, kill -9), clean stops, --once.

The process tests run `manage.py runmonitor` in subprocesses against the test database (committed
data: `transaction=True`), with the loopback HTTP and DNS servers of this test process.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from compliance import rules, services
from compliance.models import Notice
from demo.sandbox.httpserver import ok, status
from monitor.models import Check

D = 20


def make_notices(urls: list[str], *, deadline_s: int = D) -> list[int]:
    now = timezone.now()
    rows = [
        services.notice_input_parse(url=url, notified_at=now, deadline_s=deadline_s, now=now, reference=str(i))
        for i, url in enumerate(urls)
    ]
    services.notice_import_batch(rows=rows, source="proc", now=now)
    return list(Notice.objects.filter(source="proc").values_list("id", flat=True))


def monitor_env(dns_server, **extra) -> dict[str, str]:
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_NAME"}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        SECRET_KEY="test-only-secret-key-not-for-production",
        DEBUG="off",
        MONITOR_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8",
        MONITOR_NAMESERVERS=f"{dns_server.address[0]}:{dns_server.address[1]}",
        MONITOR_DNS_TIMEOUT="0.3",
        MONITOR_TIMEOUT="3",
        LOG_LEVEL="WARNING",
        CONN_MAX_AGE="0",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def start_monitor():
    """Start `runmonitor` processes; any still running at the end of the test is killed."""
    procs: list[subprocess.Popen] = []

    def start(env, *args) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runmonitor", *args],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def assert_state_is_the_replay_of_the_checks(ids: list[int]) -> dict[int, list[Check]]:
    by_notice: dict[int, list[Check]] = defaultdict(list)
    for check in Check.objects.filter(notice_id__in=ids).order_by("checked_at", "id"):
        by_notice[check.notice_id].append(check)
    for notice in Notice.objects.filter(pk__in=ids):
        checks = by_notice[notice.pk]
        replayed = rules.replay([(c.checked_at, c.outcome, c.reason) for c in checks], deadline_s=notice.deadline_s)
        assert replayed == rules.Timing.of(notice), notice.pk
        assert notice.check_count == len(checks)
        assert notice.lease_token is None or notice.next_check_at > timezone.now() - timedelta(seconds=1)
    return by_notice


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_monitors_never_check_one_notice_at_once(http_server, dns_server, start_monitor):
    http_server.set("/n", ok(b"item", delay_s=0.15))
    ids = make_notices([http_server.url(f"/n?{i}") for i in range(120)])
    env = monitor_env(dns_server, MONITOR_BATCH=20, MONITOR_CONCURRENCY=20)
    monitors = [start_monitor(env), start_monitor(env)]
    deadline = time.monotonic() + 30
    while Check.objects.filter(notice_id__in=ids).count() < 360 and time.monotonic() < deadline:
        time.sleep(0.5)
    for proc in monitors:
        proc.send_signal(signal.SIGTERM)
    for proc in monitors:
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err

    by_notice = assert_state_is_the_replay_of_the_checks(ids)
    workers = {c.worker for checks in by_notice.values() for c in checks}
    assert len(workers) == 2  # both monitors worked
    overlaps = 0
    for checks in by_notice.values():
        spans = sorted((c.checked_at, c.checked_at + timedelta(milliseconds=c.duration_ms)) for c in checks)
        overlaps += sum(1 for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1])
    assert overlaps == 0
    assert all(http_server.max_in_flight(f"/n?{i}") == 1 for i in range(120))
    assert len(by_notice) == 120 and sum(len(c) for c in by_notice.values()) >= 360  # checked repeatedly
    assert Notice.objects.filter(pk__in=ids, lease_token__isnull=False).count() == 0  # clean stop: all released
    # Both monitors appended to the same notices' evidence chains, and never forked one.
    assert_evidence_verifies(checks=sum(len(c) for c in by_notice.values()), chains=120)


def assert_evidence_verifies(*, checks: int, chains: int) -> None:
    import io
    import json

    from django.core.management import call_command

    out = io.StringIO()
    call_command("verify_evidence", stdout=out)  # exits 1 (SystemExit) on a broken link
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["ok"] is True
    assert summary["chains"]["checks"] == {"rows": checks, "chains": chains, "broken": 0}


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_monitor_killed_mid_batch_loses_nothing_and_records_no_takedown_twice(http_server, dns_server, start_monitor):
    http_server.set("/k", status(404, delay_s=1.0))
    ids = make_notices([http_server.url(f"/k?{i}") for i in range(150)])
    lease = 4
    env = monitor_env(
        dns_server, MONITOR_BATCH=100, MONITOR_CONCURRENCY=200, MONITOR_PER_IP_CONCURRENCY=200, MONITOR_LEASE=lease
    )
    victim = start_monitor(env)
    deadline = time.monotonic() + 20
    while http_server.hits("/k") < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http_server.hits("/k") >= 50, "the batch never started"
    victim.send_signal(signal.SIGKILL)  # in the middle of the batch: requests in flight, nothing written
    victim.wait(10)
    leased = Notice.objects.filter(pk__in=ids, lease_token__isnull=False).count()
    assert leased == 100 and Check.objects.filter(notice_id__in=ids).count() == 0

    time.sleep(lease + 0.5)  # the dead monitor's leases expire
    env_once = {**env, "MONITOR_LEASE": "30"}
    for _round in range(4):  # two removed observations each confirm the takedowns
        survivor = start_monitor(env_once, "--once")
        _out, err = survivor.communicate(timeout=60)
        assert survivor.returncode == 0, err
        time.sleep(0.6)

    by_notice = assert_state_is_the_replay_of_the_checks(ids)
    assert len(by_notice) == 150  # every notice was checked: nothing lost
    removed = Notice.objects.filter(pk__in=ids, status="removed")
    assert removed.count() == 150
    for notice in removed:
        checks = by_notice[notice.pk]
        assert notice.takedown_at == checks[0].checked_at  # the first removed observation, once
        assert notice.removal_mechanism == "file_gone"
    assert_evidence_verifies(checks=sum(len(c) for c in by_notice.values()), chains=150)


@pytest.mark.django_db(transaction=True)
def test_runmonitor_once_checks_what_is_due_and_exits(http_server, dns_server):
    http_server.set("/o", ok(b"item"))
    ids = make_notices([http_server.url(f"/o?{i}") for i in range(5)], deadline_s=86400)
    call_command("runmonitor", "--once", stdout=io.StringIO())
    assert Check.objects.filter(notice_id__in=ids).count() == 5
    assert set(Notice.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"online"}


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigterm_finishes_the_batch_in_flight(http_server, dns_server, start_monitor):
    http_server.set("/t", ok(b"item", delay_s=1.5))
    ids = make_notices([http_server.url(f"/t?{i}") for i in range(30)])
    proc = start_monitor(monitor_env(dns_server))
    deadline = time.monotonic() + 20
    while http_server.hits("/t") < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # the 30 requests are in flight
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert Check.objects.filter(notice_id__in=ids).count() == 30  # the batch was finished and written
    assert Notice.objects.filter(pk__in=ids, lease_token__isnull=False).count() == 0
