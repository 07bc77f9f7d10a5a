"""Scorecards at national scale: 1,000,000 notices over 200 hosters (one with 40 %) and ~3.9M checks
in PostgreSQL (database `bench_scorecards`, created if missing; data from
bench/scorecards_data.py, generated once and reused).

Targets: the league table and a scorecard page each render in under 1 s; the CSV export streams
at least 100,000 rows per second with flat memory; the league table under 0.3 s warm and under 1 s
cold (the period's rollup missing: merged from the day cells), and pages lag the changes by at most
60 s (measured: a batch of changed and new notices, then the time until the league table shows
them). Also measured, for the record: the cells from nothing, the rollup drain, the other pages,
JSON Lines and Parquet, and `compliance_report` (computed live).

`python -m bench scorecards`; BENCH_SCORECARDS_DATABASE_URL overrides the database.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("BENCH_SCORECARDS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_scorecards")
PAGE_TARGET_S = 1.0
LEAGUE_WARM_TARGET_S = 0.3
LEAGUE_COLD_TARGET_S = 1.0
LAG_TARGET_S = 60.0
EXPORT_TARGET_ROWS_S = 100_000
FLAT_MEMORY_MB = 50


def _env(database_url: str = DATABASE_URL) -> dict[str, str]:
    """The environment of a benchmark's child processes: production-like settings on `database_url`."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-only",
        "DEBUG": "off",
        "ALLOWED_HOSTS": "testserver",
        "SECURE_SSL_REDIRECT": "off",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }


def _create_database(database_url: str = DATABASE_URL) -> None:
    import psycopg

    base, _slash, name = database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def run() -> dict:
    _create_database()
    env = _env()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "bench.scorecards_bench", "--inner"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- Inside the bench database's Django process --------------------------------------------------


def _rss_mb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _timed_get(client, url: str, runs: int = 5) -> dict:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        content = b"".join(response.streaming_content) if response.streaming else response.content
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code, content[:300])
    return {"median_s": round(statistics.median(timings), 3), "max_s": round(max(timings), 3), "runs": runs}


def _export(user, flt, kind: str) -> dict:
    from django.utils import timezone

    from reports import exports

    now = timezone.now()
    if kind == "csv":
        stream = exports.csv_stream(user, flt, now=now)
    elif kind == "jsonl":
        stream = exports.jsonl_stream(user, flt, now=now)
    else:
        stream = exports.parquet_stream(user, flt, now=now, metadata={"methodology_version": "bench"})
    started = time.perf_counter()
    rss_start, rss_early, rss_max, rows, size = _rss_mb(), None, 0, 0, 0
    for chunk in stream:
        size += len(chunk)
        if kind != "parquet":
            rows += chunk.count(b"\n")
        rss_max = max(rss_max, _rss_mb())
        if rss_early is None and (rows > 50_000 or size > 20_000_000):
            rss_early = rss_max
    elapsed = time.perf_counter() - started
    if kind == "csv":
        rows -= 1  # the header
    if kind == "parquet":
        rows = exports.export_queryset(user, flt, now=now).count()
    rss_end = _rss_mb()
    return {
        "rows": rows,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(rows / elapsed),
        "mb": round(size / 1e6, 1),
        "rss_mb_start": rss_start,
        "rss_mb_after_50k_rows": rss_early,
        "rss_mb_max": rss_max,
        "rss_mb_end": rss_end,
        "rss_growth_after_50k_rows_mb": (rss_max - rss_early) if rss_early is not None else None,
    }


def _lag(client, now) -> dict:
    """Change 1,000 notices and add 300, then time the drain's pass and the league table showing them."""
    from django.db import connection

    from compliance.models import Notice
    from reports import rollups

    before = client.get("/scorecards/?format=csv").content.decode().count("\n")
    with connection.cursor() as cursor:
        # Checks: 1,000 open notices of the last days are taken down now.
        cursor.execute(
            """UPDATE compliance_notice SET status = 'removed', takedown_at = now(), updated_at = now(),
                      removal_mechanism = 'file_gone'
               WHERE id IN (SELECT id FROM compliance_notice WHERE status = 'online'
                            AND notified_at > now() - interval '20 days' ORDER BY id LIMIT 1000)"""
        )
    # An import: 300 new notices of a hoster without any so far.
    from compliance.models import Hoster

    hoster, _created = Hoster.objects.get_or_create(
        slug="bench-new", defaults={"name": "Bench New Hosting", "country": "NL", "kind": "hoster"}
    )
    fresh = []
    for i in range(300):
        n = Notice(
            url=f"https://new.example/{time.time_ns()}/{i}.jpg",
            scheme="https",
            host="new.example",
            path=f"/{i}.jpg",
            source="bench-lag",
            received_at=now,
            notified_at=now,
            deadline_s=86400,
            deadline_at=now + timedelta(days=1),
            hoster=hoster,
            status="pending",
        )
        fresh.append(n)
    Notice.objects.bulk_create(fresh)
    changed_at = time.perf_counter()
    rollups.drain()
    pass_s = time.perf_counter() - changed_at
    started = time.perf_counter()
    body = client.get("/scorecards/").content.decode()
    page_s = time.perf_counter() - started
    shown = "Bench New Hosting" in body
    after = client.get("/scorecards/?format=csv").content.decode().count("\n")
    Notice.objects.filter(source="bench-lag").delete()
    return {
        "changed_notices": 1000,
        "new_notices": 300,
        "drain_pass_s": round(pass_s, 2),
        "league_table_after_s": round(page_s, 3),
        "new_hoster_shown": shown,
        "rows_before_after": [before, after],
        "drain_interval_s": 20,
        "worst_case_lag_s": round(20 + pass_s + page_s, 1),
    }


def inner() -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from bench import scorecards_data
    from compliance import services
    from compliance.models import Hoster
    from reports import exports, periods, rollups
    from reports.models import Rollup, RollupCell, RollupState

    meta = scorecards_data.ensure(log=_log)
    users = {}
    for role, hoster in (("analyst", None), ("ministry", None), ("researcher", None), ("hoster", "bench-000")):
        users[role], _created, _token = services.user_upsert(
            username=f"bench-{role}", role=role, hoster_slug=hoster, password=None
        )
    giant = Hoster.objects.get(slug="bench-000")
    small = Hoster.objects.get(slug="bench-150")

    # 1. Rollups from nothing: the day cells (once, after install or a new methodology version),
    # then the drain's merge of every wanted period.
    _log("computing rollup cells and periods")
    rollups.rebuild_all()
    started = time.perf_counter()
    rollups.catch_up()
    cells_s = time.perf_counter() - started
    cells = RollupCell.objects.count()
    started = time.perf_counter()
    rollups.drain()
    drain_s = time.perf_counter() - started
    refreshed = Rollup.objects.count()
    per_period = dict(Rollup.objects.order_by("-compute_ms").values_list("key", "compute_ms")[:6])
    started = time.perf_counter()
    rollups.drain()
    idle_pass_s = time.perf_counter() - started

    # 2. Pages with fresh rollups (what users get while the monitor runs: its drain just passed).
    _log("timing pages")
    rollups.drain()
    client = Client()
    client.force_login(users["ministry"])
    pages = {"league_table": _timed_get(client, "/scorecards/")}
    pages["league_table_sorted_by_rate"] = _timed_get(client, "/scorecards/?sort=rate&dir=asc")
    pages["below_the_bar"] = _timed_get(client, "/below-the-bar/")
    client.force_login(users["analyst"])
    pages["scorecard_giant_40pct_analyst"] = _timed_get(client, f"/scorecards/{giant.slug}/")
    pages["scorecard_small_analyst"] = _timed_get(client, f"/scorecards/{small.slug}/")
    pages["notices_behind_late_giant"] = _timed_get(client, f"/scorecards/{giant.slug}/notices/?figure=late")
    client.force_login(users["hoster"])
    pages["scorecard_giant_own_hoster_user"] = _timed_get(client, f"/scorecards/{giant.slug}/")
    client.force_login(users["ministry"])
    pages["metrics_api_named_period"] = _timed_get(client, "/api/v1/metrics/hosters/?period=365d", runs=3)

    # 3. Cold: the default period's rollup missing (a never-seen period, or one whose days changed
    # since the drain's last pass): merged from its day cells.
    # With the monitor running (its drain passed within the last 20 s), and without one (the page
    # finds the drain overdue and catches up with the changed days itself first).
    now = timezone.now()
    cold = []
    for _ in range(3):
        rollups.drain()
        Rollup.objects.filter(key=periods.DEFAULT_KEY).delete()
        started = time.perf_counter()
        response = client.get("/scorecards/")
        cold.append(time.perf_counter() - started)
        assert response.status_code == 200
    cold_league_s = statistics.median(cold)
    RollupState.objects.update(scanned_until=timezone.now() - timedelta(minutes=5))
    Rollup.objects.filter(key=periods.DEFAULT_KEY).delete()
    started = time.perf_counter()
    client.get("/scorecards/")
    cold_without_monitor_s = time.perf_counter() - started
    cold_other_regime = []
    for regime in ("covenant", "order"):
        started = time.perf_counter()
        client.get(f"/scorecards/?regime={regime}")
        cold_other_regime.append(round(time.perf_counter() - started, 3))

    # 3b. Lag: 1,000 notices change (as checks would change them) and 300 arrive (an import); the
    # drain's next pass, then the league table shows them. The drain runs every 20 s, so a page lags
    # a change by at most 20 s plus one pass; without a monitor a page catches up itself at 60 s.
    lag = _lag(client, now)

    # 4. Exports.
    _log("timing exports")
    everything = exports.ExportFilter()
    csv_analyst = _export(users["analyst"], everything, "csv")
    csv_researcher = _export(users["researcher"], everything, "csv")
    last_90d = exports.ExportFilter(period=periods.resolve("90d", now))
    jsonl = _export(users["researcher"], last_90d, "jsonl")
    parquet = _export(users["researcher"], last_90d, "parquet")

    # 5. compliance_report, computed live over every notice.
    _log("timing compliance_report")
    started = time.perf_counter()
    call_command("compliance_report", stdout=open(os.devnull, "w"))  # noqa: SIM115
    report_s = time.perf_counter() - started

    page_targets = [pages["league_table"]["median_s"], pages["scorecard_giant_40pct_analyst"]["median_s"]]
    memory_flat = all(
        e["rss_growth_after_50k_rows_mb"] is not None and e["rss_growth_after_50k_rows_mb"] < FLAT_MEMORY_MB
        for e in (csv_analyst, csv_researcher)
    )
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {
        "database": "postgresql",
        "data": {k: meta[k] for k in ("notices", "checks", "generated_at", "generate_s") if k in meta},
        "rollups": {
            "periods_refreshed": refreshed,
            "drain_total_s": round(drain_s, 1),
            "slowest_periods_ms": per_period,
        },
        "rollups_from_nothing": {"cells": cells, "cells_s": round(cells_s, 1), "periods": refreshed},
        "rollup_idle_pass_s": round(idle_pass_s, 3),
        "pages_warm": pages,
        "league_table_cold_s": round(cold_league_s, 3),
        "league_table_cold_runs_s": [round(c, 3) for c in cold],
        "league_table_cold_without_monitor_s": round(cold_without_monitor_s, 3),
        "league_table_cold_by_regime_s": cold_other_regime,
        "lag": lag,
        "export_csv_analyst_all": csv_analyst,
        "export_csv_researcher_all_pseudonymised": csv_researcher,
        "export_jsonl_researcher_90d": jsonl,
        "export_parquet_researcher_90d": parquet,
        "compliance_report_live_s": round(report_s, 1),
        "load_average_during_run": load,
        "targets": {
            "league_warm_s": LEAGUE_WARM_TARGET_S,
            "league_cold_s": LEAGUE_COLD_TARGET_S,
            "lag_s": LAG_TARGET_S,
            "page_s": PAGE_TARGET_S,
            "export_rows_per_s": EXPORT_TARGET_ROWS_S,
            "flat_memory_growth_mb_below": FLAT_MEMORY_MB,
        },
        "target_met": max(page_targets) < PAGE_TARGET_S
        and pages["league_table"]["median_s"] < LEAGUE_WARM_TARGET_S
        and cold_league_s < LEAGUE_COLD_TARGET_S
        and lag["worst_case_lag_s"] < LAG_TARGET_S
        and min(csv_analyst["rows_per_s"], csv_researcher["rows_per_s"]) >= EXPORT_TARGET_ROWS_S
        and memory_flat,
    }


if __name__ == "__main__":
    if "--inner" in sys.argv:
        print(json.dumps(inner()))
    else:
        print(json.dumps(run(), indent=2))
