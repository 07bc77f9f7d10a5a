"""verify_evidence and the evidence digest at national scale: 1,000,000 notices, ~3.9M checks and
~1M attributions, all hash-chained (bench/scorecards_data.py's data, in PostgreSQL database
`bench_scorecards` unless BENCH_SCORECARDS_DATABASE_URL names another; generated once, reused).

Timed: `manage.py verify_evidence` end to end in a process of its own (what a nightly job runs),
and the digest (`record_digest`: the cut-offs and every chain's head, without a TSA). Target: the
nightly verification in well under an hour on this 2-core machine (fast enough for a nightly job).

`python -m bench evidence`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.scorecards_bench import ROOT, _create_database, _env

TARGET_S = 3600


def run() -> dict:
    _create_database()
    env = _env()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from bench import scorecards_data; scorecards_data.ensure()",
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    started = time.perf_counter()
    digest = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, json; django.setup(); from monitor.evidence_digest import record_digest; "
            "print(json.dumps(record_digest().detail['parts']))",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    digest_s = time.perf_counter() - started
    started = time.perf_counter()
    verified = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "manage.py", "verify_evidence"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    verify_s = time.perf_counter() - started
    summary = json.loads(verified.stdout.strip().splitlines()[-1])
    peak_kb = int(verified.stderr.strip().splitlines()[-1])
    return {
        "digest_s": round(digest_s, 1),
        "digest_parts": json.loads(digest.stdout.strip().splitlines()[-1]),
        "verify_s": round(verify_s, 1),
        "verify_exit": verified.returncode,
        "verify_summary": summary,
        "verify_peak_rss_mb": peak_kb // 1024,
        "target_s": TARGET_S,
        "target_met": verified.returncode == 0 and verify_s < TARGET_S,
    }
