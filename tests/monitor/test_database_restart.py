"""runmonitor survives a restart of its PostgreSQL server and loses or duplicates nothing.

On a PostgreSQL cluster of this test's own (tests/fixtures/postgres.py, another port; never the
shared server): migrated and filled by the product's own commands, checked by a real `runmonitor`
process against the loopback HTTP and DNS servers of this test process. The server is restarted
(`pg_ctl restart -m fast`: every session cut) twice while batches are in flight. The monitor must
keep running, every notice must end removed with each check recorded once, and the stored timing
must be the replay of the checks (`verify_measurements`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from django.conf import settings

from demo.sandbox.httpserver import status

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NOTICES = 120
D = 20  # seconds: the compressed schedule of tests/monitor/test_runmonitor.py


def command_env(url: str, dns_server, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_NAME", "DATABASE_URL")}
    env.update(
        DATABASE_URL=url,
        SECRET_KEY="test-only-secret-key-not-for-production",
        DEBUG="off",
        MONITOR_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8",
        MONITOR_NAMESERVERS=f"{dns_server.address[0]}:{dns_server.address[1]}",
        MONITOR_DNS_TIMEOUT="0.3",
        MONITOR_TIMEOUT="3",
        MONITOR_RDAP="off",
        LOG_LEVEL="WARNING",
        CONN_MAX_AGE="0",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def manage(env, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        row = conn.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'removed'),
                   (SELECT count(*) FROM monitor_check),
                   count(*) FILTER (WHERE lease_token IS NOT NULL)
            FROM compliance_notice
            """
        ).fetchone()
    return {"removed": row[0], "checks": row[1], "leased": row[2]}


def test_the_monitor_survives_a_database_restart_and_loses_or_duplicates_nothing(
    own_postgres, http_server, dns_server, tmp_path
):
    url = own_postgres.url("monitor_restart")
    http_server.set("/r", status(404, delay_s=0.5))  # removed content, answered slowly: batches in flight
    lease = 4
    env = command_env(url, dns_server, MONITOR_BATCH=40, MONITOR_CONCURRENCY=40, MONITOR_LEASE=lease)
    migrated = manage(env, "migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    csv = tmp_path / "notices.csv"
    csv.write_text(
        "url,reference,deadline_s\n" + "".join(f"{http_server.url(f'/r?{i}')},{i},{D}\n" for i in range(NOTICES))
    )
    imported = manage(env, "import_notices", str(csv), "--source", "restart")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout.splitlines()[-1])["imported"] == NOTICES

    monitor = subprocess.Popen(
        [sys.executable, "manage.py", "runmonitor"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        restarts = 0
        for hits in (20, 2 * NOTICES):  # once in the first batches, once in the confirming checks
            deadline = time.monotonic() + 60
            while http_server.hits("/r") < hits and time.monotonic() < deadline:
                time.sleep(0.05)
            assert http_server.hits("/r") >= hits, "the monitor does not check"
            own_postgres.restart()  # checks in flight; their write meets a new server
            restarts += 1
            assert monitor.poll() is None, monitor.stderr.read() if monitor.stderr else ""
        deadline = time.monotonic() + 120
        state = counts(url)
        while state["removed"] < NOTICES and time.monotonic() < deadline:
            time.sleep(0.5)
            state = counts(url)
        assert monitor.poll() is None, "the monitor died"
        monitor.send_signal(signal.SIGTERM)
        _out, err = monitor.communicate(timeout=60)
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait(10)
    assert monitor.returncode == 0, err[-3000:]
    # The restarts hit work in flight (else this test would prove nothing): a pass failed, was
    # logged, and the monitor carried on with a new connection.
    assert any(error in err for error in ("AdminShutdown", "OperationalError", "InterfaceError")), err[-3000:]
    assert restarts == 2
    assert state["removed"] == NOTICES, (state, err[-3000:])  # nothing lost: every notice measured to the end

    with psycopg.connect(url) as conn:
        # Nothing twice: no check recorded twice, every notice's count is its checks', one takedown each.
        twice = conn.execute(
            "SELECT notice_id, checked_at FROM monitor_check GROUP BY 1, 2 HAVING count(*) > 1"
        ).fetchall()
        assert twice == []
        mismatched = conn.execute(
            """
            SELECT n.id FROM compliance_notice n
            LEFT JOIN (SELECT notice_id, count(*) AS n FROM monitor_check GROUP BY 1) c ON c.notice_id = n.id
            WHERE n.check_count <> coalesce(c.n, 0) OR n.takedown_at IS NULL OR n.lease_token IS NOT NULL
            """
        ).fetchall()
        assert mismatched == []
    verified = manage(env, "verify_measurements")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout.splitlines()[-1])["inconsistent"] == 0
