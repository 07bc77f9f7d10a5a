"""SQLite, the embedded default, survives the monitor, an import and the web server writing at once.

Three real processes on one SQLite file (WAL, a busy timeout, immediate transactions: config/
settings.py): `runmonitor` checking notices on the loopback HTTP server, `import_notices` of a
large CSV, and the web server taking notices through `POST /api/v1/notices/` from several threads.
Nothing may fail with "database is locked", nothing may be lost, and every checked notice's state
must still be the replay of its checks.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMPORT_ROWS = 10_000
API_POSTS = 120
API_THREADS = 4
MONITORED = 150


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manage(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _write_csv(path: Path, urls: list[str], prefix: str) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "reference"])
        for i, url in enumerate(urls):
            writer.writerow([url, f"{prefix}-{i}"])


@pytest.fixture
def sqlite_env(tmp_path, dns_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "TEST_DATABASE", "DJANGO"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'writers.sqlite3'}",
        SECRET_KEY="test-only-secret-key-not-for-production",
        DEBUG="off",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="off",
        SECURE_COOKIES="off",
        MONITOR_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8",
        MONITOR_NAMESERVERS=f"{dns_server.address[0]}:{dns_server.address[1]}",
        MONITOR_DNS_TIMEOUT="0.3",
        MONITOR_TIMEOUT="3",
        MONITOR_BATCH="200",
        # A short deadline, so that the schedule re-checks within seconds and a takedown confirms.
        COMPLIANCE_DEADLINE="120",
        LOG_LEVEL="WARNING",
    )
    migrated = _manage(env, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    return env


def _post_notices(base: str, token: str, offset: int, count: int, results: list) -> None:
    for i in range(offset, offset + count):
        body = json.dumps({"url": f"http://api{i}.writers.example/item.jpg", "reference": f"api-{i}"}).encode()
        request = urllib.request.Request(
            f"{base}/api/v1/notices/",
            data=body,
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                results.append(response.status)
        except urllib.error.HTTPError as error:
            results.append((error.code, error.read()[:300]))


@pytest.mark.sqlite
@pytest.mark.slow
def test_monitor_import_and_web_server_write_one_sqlite_file_at_once(tmp_path, sqlite_env, http_server):
    from demo.sandbox.httpserver import ok, status

    env = sqlite_env
    http_server.set("/live", ok(b"still here", delay_s=0.02))
    http_server.set("/gone", status(404))
    # Notices the monitor works on while the others write: half stay online, half are removed.
    seed = tmp_path / "seed.csv"
    _write_csv(seed, [http_server.url(f"/{'live' if i % 2 else 'gone'}?{i}") for i in range(MONITORED)], prefix="seed")
    seeded = _manage(env, "import_notices", str(seed), "--source", "seed")
    assert seeded.returncode == 0, seeded.stderr
    user = _manage(env, "add_user", "ana", "--role", "analyst", "--password", "a-long-test-password-2026", "--token")
    assert user.returncode == 0, user.stderr
    token = user.stdout.split()[-1]

    bulk = tmp_path / "bulk.csv"
    _write_csv(bulk, [f"http://bulk{i % 500}.writers.example/a/{i}.jpg" for i in range(IMPORT_ROWS)], prefix="bulk")
    port = _free_port()
    logs = {name: open(tmp_path / f"{name}.err", "w+") for name in ("monitor", "web")}  # noqa: SIM115
    monitor = subprocess.Popen(
        [sys.executable, "manage.py", "runmonitor"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=logs["monitor"],
    )
    web = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=logs["web"],
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v1/", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                assert time.monotonic() < deadline and web.poll() is None, "the web server did not start"
                time.sleep(0.2)

        results: list = []
        per_thread = API_POSTS // API_THREADS
        threads = [
            threading.Thread(target=_post_notices, args=(base, token, t * per_thread, per_thread, results))
            for t in range(API_THREADS)
        ]
        import_started = time.time()
        importer = subprocess.Popen(
            [sys.executable, "manage.py", "import_notices", str(bulk), "--source", "bulk"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for thread in threads:
            thread.start()
        out, err = importer.communicate(timeout=300)
        import_ended = time.time()
        for thread in threads:
            thread.join(timeout=300)
        assert importer.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {
            "imported": IMPORT_ROWS,
            "duplicates": 0,
            "rejected": 0,
            "repeats": 0,
        }
        assert results == [201] * API_POSTS, [r for r in results if r != 201][:3]

        # The monitor went on meanwhile; give it a moment to take down the /gone notices (2 checks).
        import sqlite3

        db = sqlite3.connect(tmp_path / "writers.sqlite3", timeout=30)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            (removed,) = db.execute(
                "SELECT count(*) FROM compliance_notice WHERE source = 'seed' AND status = 'removed'"
            ).fetchone()
            if removed == MONITORED // 2:
                break
            time.sleep(1)
        monitor.send_signal(signal.SIGTERM)
        assert monitor.wait(60) == 0
    finally:
        for proc in (monitor, web):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    for name, log in logs.items():
        log.seek(0)
        text = log.read()
        assert "database is locked" not in text, f"{name}: {text[-2000:]}"
        assert "Traceback" not in text, f"{name}: {text[-2000:]}"

    counts = dict(db.execute("SELECT source, count(*) FROM compliance_notice GROUP BY source").fetchall())
    assert counts == {"seed": MONITORED, "bulk": IMPORT_ROWS, "api": API_POSTS}
    statuses = dict(
        db.execute("SELECT status, count(*) FROM compliance_notice WHERE source = 'seed' GROUP BY status").fetchall()
    )
    assert statuses == {"removed": MONITORED // 2, "online": MONITORED // 2}
    # Every seeded notice's counters agree with its append-only checks: no check lost or doubled.
    checks = defaultdict(int)
    for notice_id, n in db.execute("SELECT notice_id, count(*) FROM monitor_check GROUP BY notice_id"):
        checks[notice_id] += n
    for notice_id, check_count in db.execute("SELECT id, check_count FROM compliance_notice WHERE source = 'seed'"):
        assert check_count == checks[notice_id] >= 1, notice_id
    # The three really wrote at once: checks and API notices were written while the import ran.
    window = (
        datetime.fromtimestamp(import_started, UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        datetime.fromtimestamp(import_ended, UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
    )
    (checks_meanwhile,) = db.execute(
        "SELECT count(*) FROM monitor_check WHERE checked_at BETWEEN ? AND ?", window
    ).fetchone()
    (posted_meanwhile,) = db.execute(
        "SELECT count(*) FROM compliance_notice WHERE source = 'api' AND created_at BETWEEN ? AND ?", window
    ).fetchone()
    assert checks_meanwhile > 0 and posted_meanwhile > 0, (checks_meanwhile, posted_meanwhile)
    db.close()
