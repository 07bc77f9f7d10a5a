"""import_notices of a 100,000-row CSV on a fresh SQLite database. Target: well under 30 s."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS = 100_000
TARGET_S = 30.0


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    hosts = [f"files{i}.host{i % 97}.example" for i in range(2000)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "notified_at", "reference", "content_sha256"])
        for i in range(rows):
            host = rng.choice(hosts)
            url = f"https://{host}/album/{rng.randrange(10**6)}/img_{i}.jpg"
            notified = (start + timedelta(seconds=rng.randrange(300 * 86400))).isoformat()
            sha = f"{rng.getrandbits(256):064x}" if i % 3 == 0 else ""
            writer.writerow([url, notified, f"BENCH-{i}", sha])


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        csv_path = tmp_path / "notices.csv"
        write_csv(csv_path, ROWS)
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bench.sqlite3'}",
            "SECRET_KEY": "bench-only",
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "manage.py", "import_notices", str(csv_path), "--source", "bench"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
        summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "rows": ROWS,
        "database": "sqlite",
        "seconds": round(elapsed, 2),
        "rows_per_s": round(ROWS / elapsed),
        "summary": summary,
        "target_s": TARGET_S,
        "target_met": elapsed < TARGET_S and summary["imported"] == ROWS,
    }
