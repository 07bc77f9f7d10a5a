"""Peak memory of the notice exports, per format, at 1,000,000 rows: exports keep memory flat.

Data: the scorecards benchmark's 1,000,000 notices (bench/scorecards_data.py, generated once and
reused) in PostgreSQL (`BENCH_EXPORTS_DATABASE_URL`, default the scorecards' `bench_scorecards`,
created if missing).

Each format (CSV, JSON Lines, Parquet) is exported in a fresh process of its own, all rows, as an
analyst (raw URLs: the largest rows) and once more as a researcher (pseudonyms: the Python path of
CSV), reading the stream the way the web server does and throwing the bytes away. Measured in that
process: the resident set before the export (Django and pyarrow loaded, connected), its peak over the
export (`getrusage(RUSAGE_SELF).ru_maxrss`, which includes pyarrow's own allocations, unlike
tracemalloc), and the resident set after the first 100,000 rows. pyarrow's lazy import of pandas
(installed here by the test requirements, not in production) is paid before the start is taken.
**Flat** means the peak grows less than `FLAT_MEMORY_MB` over the level after those first rows,
whatever the number of rows: memory does not grow with the export. Target: flat in every format,
and the peak over the start under `PEAK_GROWTH_TARGET_MB`.

`python -m bench exports`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench import scorecards_bench  # the environment and database helpers

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get(
    "BENCH_EXPORTS_DATABASE_URL",
    os.environ.get("BENCH_SCORECARDS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_scorecards"),
)
FORMATS = ("csv", "jsonl", "parquet")
FLAT_MEMORY_MB = 50
PEAK_GROWTH_TARGET_MB = 100
EARLY_ROWS = 100_000
PARQUET_EARLY_BYTES = 4_000_000


def _env() -> dict[str, str]:
    return scorecards_bench._env(DATABASE_URL)


def _create_database() -> None:
    scorecards_bench._create_database(DATABASE_URL)


def _inner(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "bench.exports_bench", *args],
        cwd=ROOT,
        env=_env(),
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run() -> dict:
    _create_database()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=_env(), check=True)
    _inner("--data")
    results = {}
    for role in ("analyst", "researcher"):
        for kind in FORMATS:
            results[f"{kind}_{role}"] = _inner("--export", kind, role)
    flat = all(r["growth_after_first_rows_mb"] < FLAT_MEMORY_MB for r in results.values())
    small = all(r["peak_over_start_mb"] < PEAK_GROWTH_TARGET_MB for r in results.values())
    return {
        "database": DATABASE_URL.rpartition("/")[2],
        "exports": results,
        "flat_memory_mb": FLAT_MEMORY_MB,
        "peak_growth_target_mb": PEAK_GROWTH_TARGET_MB,
        "target_met": flat and small,
    }


# --- Inside the bench database's Django process --------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _user(role: str):
    from compliance import services

    user, _created, _token = services.user_upsert(username=f"bench-{role}", role=role, password=None)
    return user


def inner_data() -> dict:
    from bench import scorecards_data

    meta = scorecards_data.ensure(log=_log)
    for role in ("analyst", "researcher"):
        _user(role)
    return {"notices": meta["params"]["notices"]}


def inner_export(kind: str, role: str) -> dict:
    import pyarrow as pa
    from django.db import connection
    from django.utils import timezone

    from reports import exports

    user = _user(role)
    # pyarrow imports pandas on its first conversion when pandas is installed (lifelines brings it
    # here; requirements.txt does not): a one-off cost of the process, not of an export. Paid first.
    pa.array((1,), type=pa.int64())
    now = timezone.now()
    flt = exports.ExportFilter()
    rows = exports.export_queryset(user, flt, now=now).count()  # connected, the query planned once
    if kind == "csv":
        stream = exports.csv_stream(user, flt, now=now)
    elif kind == "jsonl":
        stream = exports.jsonl_stream(user, flt, now=now)
    else:
        stream = exports.parquet_stream(user, flt, now=now, metadata={"methodology_version": "bench"})
    start_mb, start_peak_mb = _rss_mb(), _peak_mb()
    early_mb = None
    size, seen = 0, 0
    started = time.perf_counter()
    for chunk in stream:
        size += len(chunk)
        if kind != "parquet":
            seen += chunk.count(b"\n")
        elif size >= PARQUET_EARLY_BYTES:
            seen = rows  # compressed columns: no row count in the bytes; about the first 100,000 rows
        if early_mb is None and seen >= EARLY_ROWS:
            early_mb = _peak_mb()
    elapsed = time.perf_counter() - started
    peak_mb = _peak_mb()
    connection.close()
    return {
        "rows": rows,
        "seconds": round(elapsed, 1),
        "rows_per_s": round(rows / elapsed),
        "output_mb": round(size / 1e6, 1),
        "rss_start_mb": round(start_mb),
        "peak_rss_mb": round(peak_mb),
        "peak_over_start_mb": round(peak_mb - max(start_mb, start_peak_mb)),
        "peak_after_first_rows_mb": round(early_mb or peak_mb),
        "growth_after_first_rows_mb": round(peak_mb - (early_mb or peak_mb)),
        "arrow_pool_max_mb": round(pa.default_memory_pool().max_memory() / 2**20) if kind == "parquet" else None,
    }


if __name__ == "__main__":
    import django

    django.setup()
    if sys.argv[1] == "--data":
        out = inner_data()
    else:
        out = inner_export(sys.argv[2], sys.argv[3])
    print(json.dumps(out))
