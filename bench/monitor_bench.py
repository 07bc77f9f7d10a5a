"""The check pipeline on 20,000 URLs against a local HTTP server, on PostgreSQL. Target: >= 0.5 of a
bare aiohttp loop doing only the same GETs at the same concurrency.

Set-up (not timed): a fresh PostgreSQL database (`BENCH_DATABASE_URL`, default
`postgres://postgres@127.0.0.1:5432/bench_monitor`, dropped and re-created), migrated; 20,000
notices on `http://127.0.0.1:<port>/item/<n>.jpg`, all due; the loopback HTTP server of
demo/sandbox/httpserver.py in a process of its own, answering 200 with a small body.

Timed, each in a process of its own, in `BENCH_MONITOR_ROUNDS` (3) rounds of one after the other
(all notices made due again before each round), so that both meet the same load of the machine:
- **bare**: one aiohttp session, `MONITOR_CONCURRENCY` GETs in flight, each body read and hashed
  (no DNS, no vetting, no redirects handling, no database);
- **pipeline**: `monitor.check_drain.run_batch()` until nothing is due: claim (SKIP LOCKED), check
  (monitor/check_client.py with every safety rule, in the check process of monitor/check_process.py, whose
  start-up is timed too), classify, write (COPY of the checks, one UPDATE of the notices), with
  the default settings (`MONITOR_BATCH` 10,000), exactly as `runmonitor` does.

Both use the same concurrency (`BENCH_MONITOR_CONCURRENCY`, default 100) with the per-IP cap set
to it (the server has one address). Reported per round: checks per second of each and their ratio;
the target is judged on the median round's ratio (the machine is shared: single runs are noisy).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URLS = int(os.environ.get("BENCH_MONITOR_URLS", 20_000))
CONCURRENCY = int(os.environ.get("BENCH_MONITOR_CONCURRENCY", 100))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_monitor")
ROUNDS = int(os.environ.get("BENCH_MONITOR_ROUNDS", 3))
TARGET_RATIO = 0.5

SETUP_SCRIPT = """
import sys, django
django.setup()
from django.utils import timezone
from compliance import services
port, count = int(sys.argv[1]), int(sys.argv[2])
now = timezone.now()
rows = [
    services.notice_input_parse(url=f"http://127.0.0.1:{port}/item/{i}.jpg", reference=str(i), notified_at=now, now=now)
    for i in range(count)
]
for start in range(0, count, 5000):
    services.notice_import_batch(rows=rows[start:start + 5000], source="bench", now=now)
"""

BARE_SCRIPT = """
import asyncio, hashlib, json, sys, time
import aiohttp
port, count, concurrency = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
urls = [f"http://127.0.0.1:{port}/item/{i}.jpg" for i in range(count)]

async def main():
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(url):
            async with semaphore:
                async with session.get(url) as resp:
                    digest = hashlib.sha256()
                    async for chunk in resp.content.iter_chunked(65536):
                        digest.update(chunk)
                    return resp.status
        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(u) for u in urls))
        return time.perf_counter() - started, statuses

elapsed, statuses = asyncio.run(main())
print(json.dumps({"seconds": elapsed, "ok": sum(s == 200 for s in statuses)}))
"""

PIPELINE_SCRIPT = """
import json, time, django
django.setup()
from monitor.check_drain import run_batch
from compliance.models import Check
from django.db.models import Count
started = time.perf_counter()
batches = checked = 0
while True:
    result = run_batch()
    if not result.claimed:
        break
    batches += 1
    checked += result.recorded
elapsed = time.perf_counter() - started
print(json.dumps({
    "seconds": elapsed,
    "batches": batches,
    "checked": checked,
    "checks": Check.objects.count(),
    "outcomes": dict(Check.objects.values_list("outcome").annotate(n=Count("id")).order_by()),
}))
"""


def _recreate_database(url: str) -> None:
    import psycopg

    base, _sep, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def monitor_env(database_url: str, concurrency: int) -> dict[str, str]:
    """The environment of a monitor benchmark's processes: production settings on `database_url`,
    loopback opened to the checks, `concurrency` checks in flight (per address too)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-only",
        "DEBUG": "off",
        "MONITOR_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
        "MONITOR_CONCURRENCY": str(concurrency),
        "MONITOR_PER_IP_CONCURRENCY": str(concurrency),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("TEST_DATABASE_NAME", None)
    return env


def run() -> dict:
    env = monitor_env(DATABASE_URL, CONCURRENCY)
    _recreate_database(DATABASE_URL)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "demo.sandbox.httpserver", "--bind", "127.0.0.1:0", "--body", "x" * 2048],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline().strip()  # "listening http://127.0.0.1:<port>"
        port = int(line.rsplit(":", 1)[1])
        subprocess.run([sys.executable, "-c", SETUP_SCRIPT, str(port), str(URLS)], cwd=ROOT, env=env, check=True)
        rounds = []
        for _round in range(ROUNDS):
            _make_all_due(DATABASE_URL)
            bare = _run_json([sys.executable, "-c", BARE_SCRIPT, str(port), str(URLS), str(CONCURRENCY)], env)
            pipeline = _run_json([sys.executable, "-c", PIPELINE_SCRIPT], env)
            rounds.append((bare, pipeline))
    finally:
        server.terminate()
        server.wait(10)
    pairs = []
    for bare, pipeline in rounds:
        bare_rate = URLS / bare["seconds"]
        pipeline_rate = pipeline["checked"] / pipeline["seconds"]
        pairs.append(
            {
                "bare_checks_per_s": round(bare_rate),
                "pipeline_checks_per_s": round(pipeline_rate),
                "ratio": round(pipeline_rate / bare_rate, 3),
                "checked": pipeline["checked"],
                "bare_ok": bare["ok"],
            }
        )
    ratio = statistics.median(p["ratio"] for p in pairs)
    return {
        "urls": URLS,
        "database": "postgresql",
        "concurrency": CONCURRENCY,
        "rounds": pairs,
        "bare_aiohttp_checks_per_s_best": max(p["bare_checks_per_s"] for p in pairs),
        "pipeline_checks_per_s_best": max(p["pipeline_checks_per_s"] for p in pairs),
        "ratio_median": ratio,
        "checks_written": rounds[-1][1]["checks"],
        "outcomes": rounds[-1][1]["outcomes"],
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO
        and all(p["checked"] == URLS and p["bare_ok"] == URLS for p in pairs)
        and rounds[-1][1]["checks"] == URLS * ROUNDS,
    }


def _make_all_due(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE compliance_notice SET next_check_at = now()")
        conn.execute("VACUUM ANALYZE compliance_notice")


def _run_json(cmd: list[str], env: dict[str, str]) -> dict:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out.setdefault("wall_s", time.perf_counter() - started)
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
