"""Remote vantages: real `runprobe` processes on a real RabbitMQ (tests/fixtures/rabbitmq.py).

The monitor's side runs in this test process (the check drain publishes, the results drain
records, on the test database); the probes are `manage.py runprobe` subprocesses with only the
broker URL and their vantage settings in their environment (no database, SECRET_KEY or e-mail
settings), checking scripted hosters on loopback: probe A from 127.0.0.1, B from 127.0.0.2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from kombu import Connection, Producer

from compliance.models import Check, Notice
from demo.sandbox.httpserver import by_source, ok, status
from monitor import broker, check_dispatch, check_drain, probe_results, vantages
from monitor.models import ProbeStatus
from tests.fixtures.rabbitmq import MONITOR_USER, PROBES
from tests.monitor.test_check_drain import ITEM, make_notice

ROOT = Path(__file__).resolve().parents[2]
A, B = PROBES  # two vantages named for this test session (RabbitMQ users are per broker, not per vhost)
SOURCES = {A: "127.0.0.1", B: "127.0.0.2"}
pytestmark = pytest.mark.slow


@pytest.fixture
def monitor_side(rabbitmq, settings, http_server, dns_server):
    """The monitor's settings: two probe vantages on the test vhost; queues empty, connections fresh."""
    settings.MONITOR_BROKER_URL = rabbitmq.url()
    settings.MONITOR_VANTAGES = vantages.parse(f"{A}=probe;{B}=probe")
    settings.MONITOR_PROBE_STALE = 30.0
    check_dispatch.close()
    probe_results.close()
    probe_results.drain_results(wait_s=0.01)  # declares the topology
    rabbitmq.purge()
    yield rabbitmq
    check_dispatch.close()
    probe_results.close()


@pytest.fixture
def start_probe(rabbitmq, dns_server, tmp_path):
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, *, allowed: str = "127.0.0.0/8") -> subprocess.Popen:
        host, port = dns_server.address
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "VIRTUAL_ENV") or k.startswith("PYTHON")}
        env.update(
            MONITOR_BROKER_URL=rabbitmq.url(f"probe-{name}"),
            MONITOR_VANTAGES=f"{name}=probe:{SOURCES[name]}@{host}:{port}",
            MONITOR_ALLOWED_PRIVATE_NETWORKS=allowed,
            MONITOR_TIMEOUT="3",
            MONITOR_CONCURRENCY="50",
            LOG_LEVEL="INFO",
        )
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "runprobe", "--vantage", name],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"probe-{name}.log", "a"),  # noqa: SIM115 (the probe's log, for a failing test)
        )
        procs[name] = proc
        return proc

    yield start
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def until(condition, *, timeout_s: float = 30.0, batch: bool = True, now_offset=timedelta(days=1)):
    """Run the check drain and the results drain until `condition()` holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if batch:
            check_drain.run_batch(now=timezone.now() + now_offset)
        probe_results.drain_results(wait_s=0.05)
        if condition():
            return
    raise AssertionError("condition not met in time")


def probes_heard(*names):
    until(lambda: ProbeStatus.objects.filter(vantage__in=names).count() == len(names), batch=False)


def checks_of(notice) -> list[Check]:
    return list(Check.objects.filter(notice=notice).order_by("checked_at", "id"))


def test_two_probes_see_selective_serving_a_removal_and_a_dead_server(db, monitor_side, start_probe, http_server):
    start_probe(A)
    start_probe(B)
    probes_heard(A, B)
    selective = make_notice(http_server.set("/s.jpg", by_source({"127.0.0.2": status(403)}, default=ok(ITEM))))
    removed = make_notice(http_server.set("/r.jpg", ok(ITEM)))
    dead = make_notice("http://127.0.0.9:9/d.jpg", deadline_s=8)  # nothing listens there: refused for everyone
    notices = (selective, removed, dead)
    until(lambda: all(len(checks_of(n)) >= 2 for n in notices))
    http_server.set("/r.jpg", status(404))
    until(lambda: all(len(checks_of(n)) >= 5 for n in notices))

    s = checks_of(selective)
    assert {c.vantage for c in s} == {A, B}
    assert all(c.outcome == ("online" if c.vantage == A else "no_evidence") for c in s)
    assert all(c.http_status == (200 if c.vantage == A else 403) for c in s)
    assert [c.vantage for c in s[:4]] in ([A, B] * 2, [B, A] * 2)  # they take turns
    selective.refresh_from_db()
    assert selective.takedown_at is None and selective.status == "online"
    assert selective.served_selectively_count >= 2  # counted: the 403s to one vantage, the item to the other

    r = checks_of(removed)
    gone = [c for c in r if c.outcome == "removed"]
    assert {c.vantage for c in gone[:2]} == {A, B}  # confirmed from both
    removed.refresh_from_db()
    assert removed.status == "removed" and removed.takedown_at == gone[0].checked_at

    # nothing answers from either vantage: in time, the server is gone
    until(lambda: Notice.objects.filter(pk=dead.pk, removal_mechanism="server_gone").exists())
    d = checks_of(dead)
    assert {c.vantage for c in d} == {A, B}
    assert all(c.error_kind == "connect_refused" for c in d)
    # every probe's check is recorded with the probe process that made it, never this one
    assert not Check.objects.filter(worker=check_drain.WORKER).exists()
    assert {c.resolved_ip for c in s + r} == {"127.0.0.1"}
    assert {r.peer for r in http_server.requests} == {"127.0.0.1", "127.0.0.2"}


def test_a_probe_killed_mid_batch_loses_nothing_and_nothing_is_recorded_twice(
    db, monitor_side, start_probe, http_server, settings
):
    settings.MONITOR_VANTAGES = vantages.parse(f"{A}=probe")
    http_server.set("/slow.jpg", ok(ITEM, delay_s=0.3))
    ids = [make_notice(http_server.url(f"/slow.jpg?{i}")).pk for i in range(300)]
    probe = start_probe(A)
    probes_heard(A)
    check_drain.run_batch(now=timezone.now() + timedelta(days=1))  # all 300 go to the probe at once
    until(lambda: Check.objects.filter(notice_id__in=ids).count() >= 50, batch=False)
    probe.send_signal(signal.SIGKILL)
    probe.wait(10)
    seen = Check.objects.filter(notice_id__in=ids).count()
    assert seen < 300  # killed mid-batch
    start_probe(A)
    until(lambda: Check.objects.filter(notice_id__in=ids).count() >= 300, batch=False, timeout_s=60)
    probe_results.drain_results(wait_s=1.0)  # whatever else arrives (duplicates of what was checked before)
    per_notice = Check.objects.filter(notice_id__in=ids).values_list("notice_id", flat=True)
    assert sorted(per_notice) == sorted(ids)  # each exactly once
    assert not Notice.objects.filter(pk__in=ids, lease_token__isnull=False).exists()


def test_probe_and_monitor_survive_their_connections_being_closed_by_the_broker(
    db, monitor_side, start_probe, http_server, settings
):
    settings.MONITOR_VANTAGES = vantages.parse(f"{A}=probe")
    http_server.set("/slow.jpg", ok(ITEM, delay_s=0.3))
    ids = [make_notice(http_server.url(f"/slow.jpg?{i}")).pk for i in range(200)]
    probe = start_probe(A)
    probes_heard(A)
    check_drain.run_batch(now=timezone.now() + timedelta(days=1))
    until(lambda: Check.objects.filter(notice_id__in=ids).count() >= 20, batch=False)
    monitor_side.ctl("close_all_user_connections", f"probe-{A}", "test: connection dropped")
    monitor_side.ctl("close_all_user_connections", MONITOR_USER, "test: connection dropped")
    until(lambda: Check.objects.filter(notice_id__in=ids).count() >= 200, batch=False, timeout_s=60)
    assert probe.poll() is None  # still running, reconnected
    per_notice = list(Check.objects.filter(notice_id__in=ids).values_list("notice_id", flat=True))
    assert sorted(per_notice) == sorted(ids)
    # and both keep working on their new connections: new checks go out and come back
    ProbeStatus.objects.all().delete()
    probes_heard(A)
    more = [make_notice(http_server.url(f"/slow.jpg?more{i}")).pk for i in range(20)]
    until(lambda: Check.objects.filter(notice_id__in=more).count() >= 20)


def test_a_probe_cannot_report_a_check_it_was_not_given(db, monitor_side, start_probe, http_server):
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    Notice.objects.filter(pk=notice.pk).update(lease_token=None)
    observation = broker.encode_observation(
        check_drain.Observation(url=notice.url, started_at=timezone.now(), http_status=404)
    )
    lease = Notice.objects.get(pk=notice.pk)
    claimed = check_drain.Claimed(
        id=notice.pk,
        url=notice.url,
        hoster_id=None,
        content_sha256="",
        due_at=lease.next_check_at,
        trigger="schedule",
        reported_removed_at=None,
    )
    token = uuid.uuid4()
    Notice.objects.filter(pk=notice.pk).update(lease_token=token)
    given_to_a = check_dispatch.ticket(claimed, vantage=A, token=token)
    forged = given_to_a.rsplit("|", 1)[0].replace(A, B, 1) + "|" + "0" * 32
    with Connection(monitor_side.url(f"probe-{B}")) as conn:
        producer = Producer(conn.channel(), exchange=broker.exchanges()[1], auto_declare=False)
        for ticket in (given_to_a, forged):  # another vantage's check; a ticket the monitor never signed
            body = broker.dumps({"probe": "evil:1", "results": [[ticket, observation]]})
            producer.publish(body, content_type=broker.CONTENT_TYPE, content_encoding="utf-8", user_id=f"probe-{B}")
    until(lambda: ProbeStatus.objects.filter(vantage=B, rejected__gte=2).exists(), batch=False)
    assert not Check.objects.filter(notice=notice).exists()
    assert Notice.objects.get(pk=notice.pk).lease_token == token  # untouched: still awaiting A

    # The broker itself refuses a probe that claims to be another (user_id is validated).
    with broker.connection(monitor_side.url(f"probe-{B}")) as conn:  # with publisher confirms
        producer = Producer(conn.channel(), exchange=broker.exchanges()[1], auto_declare=False)
        with pytest.raises(Exception, match="(?i)user_id|PRECONDITION"):
            producer.publish(b"{}", content_type=broker.CONTENT_TYPE, user_id=f"probe-{A}")
    # nor may it read another vantage's queue
    with Connection(monitor_side.url(f"probe-{B}")) as conn:
        with pytest.raises(Exception, match="(?i)access_refused|403"):
            conn.default_channel.basic_get(f"checks.{A}")


def test_a_probe_vets_every_address_under_its_own_rules(db, monitor_side, start_probe, http_server, settings):
    """The monitor may open loopback to itself; a probe that does not never connects there."""
    settings.MONITOR_VANTAGES = vantages.parse(f"{A}=probe")
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    start_probe(A, allowed="")
    probes_heard(A)
    until(lambda: Check.objects.filter(notice=notice).exists())
    check = Check.objects.get(notice=notice)
    assert (check.vantage, check.outcome, check.reason) == (A, "refused", "refused:loopback")
    assert http_server.hits("/a.jpg") == 0
