"""The same 20,000 checks through the local pipeline, one probe and two probes (RabbitMQ), in one run.

Target: one probe at least 0.7 of the local pipeline's rate.

Set-up (not timed): a fresh PostgreSQL database (`BENCH_PROBES_DATABASE_URL`, default
`postgres://postgres@127.0.0.1:5432/bench_probes`), migrated; 20,000 notices on a loopback HTTP
server in a process of its own (200, 2 KiB); a RabbitMQ vhost `bench-probes` with the probe users
`probe-bench1`, `probe-bench2` made by `rabbitmqctl` with a probe's permissions (deleted at the end).

Timed, in `BENCH_PROBES_ROUNDS` (3) rounds, all notices due again before each variant:
- **local**: `run_batch()` until nothing is due, as monitor_bench's pipeline (the check process);
- **1 probe** / **2 probes**: `MONITOR_VANTAGES=bench1=probe[;bench2=probe]`; the `runprobe`
  processes are started and heard before the clock starts; then, as in runmonitor, one thread
  runs the check drain (claim, rotate, publish) and another the results drain (consume, verify
  tickets, classify, record) until all 20,000 are recorded.

Reported: checks per second of each, the ratios to local (median round), and CPU seconds per
process (monitor, probes, RabbitMQ, HTTP server) in the 1-probe and 2-probe runs: where the time goes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.monitor_bench import (
    CONCURRENCY,
    PIPELINE_SCRIPT,
    SETUP_SCRIPT,
    _make_all_due,
    _recreate_database,
    monitor_env,
)

ROOT = Path(__file__).resolve().parent.parent
URLS = int(os.environ.get("BENCH_PROBES_URLS", 20_000))
DATABASE_URL = os.environ.get("BENCH_PROBES_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_probes")
ROUNDS = int(os.environ.get("BENCH_PROBES_ROUNDS", 3))
VHOST = "bench-probes"
PASSWORD = "bench-probes-only"
TARGET_RATIO = 0.7

REMOTE_SCRIPT = """
import json, sys, threading, time, django
django.setup()
from django.db import connections
from bench import monitor_bench
from monitor import probe_results, check_drain
from monitor.models import ProbeStatus
want, names = int(sys.argv[1]), sys.argv[2].split(",")

# The probes are up before the clock starts (as in a running deployment).
until = time.monotonic() + 60
while ProbeStatus.objects.filter(vantage__in=names).count() < len(names) and time.monotonic() < until:
    probe_results.drain_results(wait_s=0.2)
probe_results.drain_results(wait_s=0.2)

done = threading.Event()
counts = {"recorded": 0, "not_started": 0, "discarded": 0, "rejected": 0}
busy = {"check_drain_s": 0.0, "results_drain_s": 0.0}

def check_drain():
    # As runmonitor does: drain_checks again at once while it says more is waiting, else after a pause.
    while not done.is_set():
        t = time.perf_counter()
        more = check_drain.drain_checks()
        busy["check_drain_s"] += time.perf_counter() - t
        if not more:
            time.sleep(0.1)
    connections.close_all()

started, cpu0 = time.perf_counter(), time.process_time()
thread = threading.Thread(target=check_drain)
thread.start()
deadline = time.monotonic() + 600
while counts["recorded"] < want and time.monotonic() < deadline:
    messages = probe_results._consumer.fetch(probe_results.MAX_MESSAGES, 0.2)
    if messages:
        t = time.perf_counter()
        handled = probe_results.handle(messages)
        probe_results._consumer.ack(messages)
        busy["results_drain_s"] += time.perf_counter() - t
        counts["recorded"] += handled.batch.recorded
        counts["not_started"] += handled.batch.not_started
        counts["discarded"] += handled.batch.discarded
        counts["rejected"] += sum(handled.rejected.values())
elapsed = time.perf_counter() - started
done.set()
thread.join()
print(json.dumps({"seconds": elapsed, "checked": counts["recorded"], "monitor_cpu_s": time.process_time() - cpu0,
                  **counts, **busy}))
"""


def _ctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", *args], check=check, capture_output=True, timeout=120)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rabbit_pid() -> int | None:
    out = subprocess.run(["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def run() -> dict:
    base_env = monitor_env(DATABASE_URL, CONCURRENCY)
    for name in ("MONITOR_VANTAGES", "MONITOR_BROKER_URL"):
        base_env.pop(name, None)
    _recreate_database(DATABASE_URL)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=base_env, check=True)
    _ctl("delete_vhost", VHOST, check=False)
    _ctl("add_vhost", VHOST)
    _ctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    for name in ("bench1", "bench2"):
        _ctl("delete_user", f"probe-{name}", check=False)
        _ctl("add_user", f"probe-{name}", PASSWORD)
        _ctl("set_permissions", "-p", VHOST, f"probe-{name}", "^$", "^results$", f"^checks\\.{name}$")
    server = subprocess.Popen(
        [sys.executable, "-m", "demo.sandbox.httpserver", "--bind", "127.0.0.1:0", "--body", "x" * 2048],
        cwd=ROOT,
        env=base_env,
        stdout=subprocess.PIPE,
        text=True,
    )
    rabbit = _rabbit_pid()
    rounds = []
    try:
        port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
        subprocess.run([sys.executable, "-c", SETUP_SCRIPT, str(port), str(URLS)], cwd=ROOT, env=base_env, check=True)
        for _round in range(ROUNDS):
            _make_all_due(DATABASE_URL)
            local = _run_json([sys.executable, "-c", PIPELINE_SCRIPT], base_env)
            # Two probes right after local: each notice's last check is "local", so the rotation
            # starts by notice id and the two probes share the load evenly.
            two = _remote(["bench1", "bench2"], base_env, server.pid, rabbit)
            one = _remote(["bench1"], base_env, server.pid, rabbit)
            rounds.append({"local": local, "one": one, "two": two})
    finally:
        server.terminate()
        server.wait(10)
        for name in ("bench1", "bench2"):
            _ctl("delete_user", f"probe-{name}", check=False)
        _ctl("delete_vhost", VHOST, check=False)
    table = []
    for r in rounds:
        local_rate = r["local"]["checked"] / r["local"]["seconds"]
        one_rate = r["one"]["checked"] / r["one"]["seconds"]
        two_rate = r["two"]["checked"] / r["two"]["seconds"]
        table.append(
            {
                "local_checks_per_s": round(local_rate),
                "one_probe_checks_per_s": round(one_rate),
                "two_probes_checks_per_s": round(two_rate),
                "one_probe_ratio": round(one_rate / local_rate, 3),
                "two_probes_ratio": round(two_rate / local_rate, 3),
                "checked": [r["local"]["checked"], r["one"]["checked"], r["two"]["checked"]],
            }
        )
    one_ratio = statistics.median(t["one_probe_ratio"] for t in table)
    return {
        "urls": URLS,
        "concurrency": CONCURRENCY,
        "rounds": table,
        "one_probe_ratio_median": one_ratio,
        "two_probes_ratio_median": statistics.median(t["two_probes_ratio"] for t in table),
        "where_the_time_goes_last_round": {
            "one_probe": _where(rounds[-1]["one"]),
            "two_probes": _where(rounds[-1]["two"]),
        },
        "target_ratio": TARGET_RATIO,
        "target_met": one_ratio >= TARGET_RATIO and all(c >= URLS for t in table for c in t["checked"]),
    }


def _where(r: dict) -> dict:
    keys = ("seconds", "monitor_cpu_s", "probe_cpu_s", "rabbitmq_cpu_s", "http_server_cpu_s")
    out = {k: round(r[k], 2) for k in keys if r.get(k) is not None}
    out.update(
        check_drain_busy_s=round(r["check_drain_s"], 2),
        results_drain_busy_s=round(r["results_drain_s"], 2),
        not_started=r["not_started"],
        discarded=r["discarded"],
    )
    return out


def _remote(names: list[str], base_env: dict, server_pid: int, rabbit_pid: int | None) -> dict:
    _make_all_due(DATABASE_URL)
    env = {
        **base_env,
        "MONITOR_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
        "MONITOR_VANTAGES": ";".join(f"{n}=probe" for n in names),
    }
    procs = []
    for i, name in enumerate(names):
        probe_env = {k: v for k, v in base_env.items() if k not in ("DATABASE_URL", "SECRET_KEY", "DEBUG")}
        probe_env.update(
            MONITOR_BROKER_URL=f"amqp://probe-{name}:{PASSWORD}@127.0.0.1:5672/{VHOST}",
            MONITOR_VANTAGES=f"{name}=probe:127.0.0.{i + 1}",
        )
        procs.append(
            subprocess.Popen([sys.executable, "manage.py", "runprobe", "--vantage", name], cwd=ROOT, env=probe_env)
        )
    try:
        before = ([_cpu_s(p.pid) for p in procs], _cpu_s(server_pid), _cpu_s(rabbit_pid) if rabbit_pid else None)
        out = _run_json([sys.executable, "-c", REMOTE_SCRIPT, str(URLS), ",".join(names)], env)
        out["probe_cpu_s"] = sum(_cpu_s(p.pid) for p in procs) - sum(before[0])
        out["http_server_cpu_s"] = _cpu_s(server_pid) - before[1]
        if rabbit_pid:
            out["rabbitmq_cpu_s"] = _cpu_s(rabbit_pid) - before[2]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    return out


def _run_json(cmd: list[str], env: dict[str, str]) -> dict:
    result = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
