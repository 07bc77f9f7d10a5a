from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

# name -> module in this package with a run() -> dict function (targets: bench/README.md)
BENCHMARKS = {
    "import": "bench.import_bench",  # a 100,000-row CSV on SQLite
    "attribution": "bench.attribution_bench",  # 160,000 notices on 2,000 host names
    "scorecards": "bench.scorecards_bench",  # league table, scorecard, page lag and CSV rate at 1M notices
    "notifications": "bench.notifications_bench",  # notice e-mails to a loopback SMTP server
    "monitor": "bench.monitor_bench",  # 20,000 checks through the pipeline, against bare aiohttp
    "exports": "bench.exports_bench",  # peak memory of CSV, JSON Lines and Parquet exports at 1M rows
    "probes": "bench.probes_bench",  # the same 20,000 checks locally, through 1 and through 2 probes
    "evidence": "bench.evidence_bench",  # verify_evidence at 1M notices
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    out_dir = Path(__file__).resolve().parent.parent / ".bench"
    out_dir.mkdir(exist_ok=True)
    results = {}
    failed = False
    for name in names:
        print(f"== {name} ==", flush=True)
        started = time.perf_counter()
        result = importlib.import_module(BENCHMARKS[name]).run()
        result["wall_s"] = round(time.perf_counter() - started, 1)
        results[name] = result
        print(json.dumps(result, indent=2), flush=True)
        failed |= result.get("target_met") is False
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
