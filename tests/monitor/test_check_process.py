"""The check process (monitor/check_process.py): the batch's checks run in a child process of the monitor.

In-process tests drive `check_drain.run_batch` (the parent's side) against the loopback servers; the
process tests run `manage.py runmonitor` and look at its child.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.models import Check, Notice
from demo.sandbox.httpserver import ok
from monitor import check_drain, check_process, dns
from tests.monitor.test_check_drain import ITEM, drain, make_notice
from tests.monitor.test_runmonitor import make_notices, monitor_env
from tests.monitor.test_runmonitor import start_monitor as start_monitor  # noqa: F401 (the fixture)


def _child_pids(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(p) for p in f.read().split()]
    return out


def _is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_until(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_one_check_process_serves_batch_after_batch(db, http_server):
    check_process.stop()
    make_notice(http_server.set("/a.jpg", ok(ITEM)))
    drain()
    first = check_process._process
    assert first is not None and first.is_alive() and first.proc.pid != os.getpid()
    drain()
    assert check_process._process is first  # kept: its client and its DNS cache serve the next batch
    assert Check.objects.count() == 2


def test_the_check_process_has_none_of_the_monitors_secrets(db, http_server, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://user:secret@db.internal/monitor")
    monkeypatch.setenv("SECRET_KEY", "not-for-the-child")
    monkeypatch.setenv("EMAIL_URL", "smtp://user:secret@mail.internal")
    check_process.stop()
    make_notice(http_server.set("/a.jpg", ok(ITEM)))
    assert drain().recorded == 1  # it works without them
    with open(f"/proc/{check_process._process.proc.pid}/environ", "rb") as f:
        names = {entry.split(b"=", 1)[0].decode() for entry in f.read().split(b"\0") if entry}
    assert "PATH" in names
    assert not names & {"DATABASE_URL", "SECRET_KEY", "EMAIL_URL", "DJANGO_SETTINGS_MODULE"}
    check_process.stop()


def test_the_check_process_ends_by_itself_when_the_monitor_lets_go(db, http_server):
    make_notice(http_server.set("/a.jpg", ok(ITEM)))
    drain()
    process = check_process._process
    check_process.stop()  # what happens at the monitor's exit
    assert process.proc.returncode == 0  # it saw the end of its socket and exited (not killed)
    assert check_process._process is None


def test_a_cold_start_of_the_check_process_does_not_eat_the_claimed_notices_time_to_start(db, http_server, settings):
    check_process.stop()
    settings.MONITOR_LEASE = 0.6  # checks must start within 0.3 s of their claim; starting a process takes longer
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    result = drain()
    assert (result.recorded, result.not_started) == (1, 0)  # claimed only once the process was ready
    assert Check.objects.filter(notice=notice).count() == 1


def test_the_monitors_settings_reach_the_check_process_at_each_batch(db, http_server, settings):
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    drain()
    settings.MONITOR_ALLOWED_PRIVATE_NETWORKS = []  # loopback is refused again
    drain()
    checks = list(Check.objects.filter(notice=notice).order_by("checked_at"))
    assert [c.error_kind for c in checks] == ["", "refused_address"]
    assert checks[1].outcome == "refused"


def test_a_cleared_dns_cache_is_cleared_in_the_check_process_too(db, http_server, dns_server):
    dns_server.add_a("files.example", "127.0.0.1", ttl=300)
    http_server.set("/a.jpg", ok(ITEM))
    notice = make_notice(f"http://files.example:{http_server.port}/a.jpg")
    drain()
    dns_server.set("files.example", "A", ["127.0.0.2"], ttl=300)  # moved; nothing listens there
    dns.cache_clear()
    drain()
    checks = list(Check.objects.filter(notice=notice).order_by("checked_at"))
    assert [c.resolved_ip for c in checks] == ["127.0.0.1", "127.0.0.2"]


def test_a_process_that_dies_mid_batch_fails_the_batch_and_loses_nothing(db, http_server):
    http_server.set("/slow.jpg", ok(ITEM, delay_s=30))
    notice = make_notice(http_server.url("/slow.jpg"))
    check_process.stop()
    batch = check_process.batch()

    def kill_soon():
        _wait_until(lambda: http_server.hits("/slow.jpg") >= 1)
        batch.process.proc.kill()

    threading.Thread(target=kill_soon, daemon=True).start()
    with batch:
        claimed = check_drain.claim(now=timezone.now() + timedelta(days=1), limit=10, token=uuid.uuid4(), lease_s=60)
        batch.submit(claimed, start_by=time.monotonic() + 30)
        with pytest.raises(RuntimeError, match="the check process died"):
            batch.finished(at_least=1, wait=True)
    notice.refresh_from_db()
    assert notice.lease_token is not None and Check.objects.count() == 0  # nothing written, still leased
    Notice.objects.filter(pk=notice.pk).update(next_check_at=timezone.now())  # the lease "expired"
    http_server.set("/slow.jpg", ok(ITEM))
    result = drain()
    assert result.recorded == 1 and check_process._process is not batch.process  # a new process took over


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_killed_monitor_leaves_no_check_process_behind(http_server, dns_server, start_monitor):
    http_server.set("/k", ok(b"item", delay_s=2.0))
    make_notices([http_server.url(f"/k?{i}") for i in range(20)])
    victim = start_monitor(monitor_env(dns_server))
    assert _wait_until(lambda: http_server.hits("/k") >= 20, 20), "the batch never started"
    children = _child_pids(victim.pid)
    assert len(children) == 1  # the check process
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    assert _wait_until(lambda: not _is_running(children[0]), 10), "the check process outlived the monitor"


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_reaches_the_check_process_too_and_the_batch_in_flight_is_still_finished(
    http_server, dns_server, start_monitor
):
    http_server.set("/t", ok(b"item", delay_s=1.5))
    ids = make_notices([http_server.url(f"/t?{i}") for i in range(30)])
    proc = start_monitor(monitor_env(dns_server))
    assert _wait_until(lambda: http_server.hits("/t") >= 30, 20), "the batch never started"
    children = _child_pids(proc.pid)
    for pid in (*children, proc.pid):  # what a terminal's Ctrl-C does: SIGINT to the whole group
        os.kill(pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert Check.objects.filter(notice_id__in=ids).count() == 30  # checked to the end and written
    assert Notice.objects.filter(pk__in=ids, lease_token__isnull=False).count() == 0
    assert _wait_until(lambda: not _is_running(children[0]), 10)
