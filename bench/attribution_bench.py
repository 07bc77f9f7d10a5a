"""Attribution of 160,000 notices over 2,000 host names through the drain, against the loopback
DNS server (demo/sandbox/dnsserver.py). Target: under 60 s on the 2-core machine.

Set-up (not timed): a fresh database (SQLite by default; `BENCH_DATABASE_URL=postgres://...` for
PostgreSQL, whose database is dropped and re-created), 100 hosters and a CDN from a CSV, the
notices from a CSV through `import_notices`. Timed: a separate process that runs
`monitor.attribution_drain.drain_attribution` until it has nothing left, the way `runmonitor` does (only
that drain, so the check drain's network work does not count here). Reported: seconds, notices per
second, DNS queries the server received by type, and evidence rows written.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTICES = int(os.environ.get("BENCH_ATTRIBUTION_NOTICES", 160_000))
HOSTS = int(os.environ.get("BENCH_ATTRIBUTION_HOSTS", 2_000))
HOSTERS = 100
TARGET_S = 60.0

DRAIN_SCRIPT = """
import json, time, django
django.setup()
from monitor.attribution_drain import drain_attribution
from compliance.models import Attribution
from compliance.models import Notice
from django.db.models import Count
started = time.perf_counter()
batches = 0
while drain_attribution():
    batches += 1
elapsed = time.perf_counter() - started
print(json.dumps({
    "seconds": elapsed,
    "batches": batches + 1,
    "attributions": Attribution.objects.count(),
    "states": dict(Notice.objects.values_list("attribution_state").annotate(n=Count("id")).order_by()),
}))
"""


def hoster_rows():
    yield ["slug", "name", "country", "abuse_email", "asns", "prefixes", "kind"]
    for h in range(HOSTERS):
        yield [
            f"h{h}",
            f"Hoster {h}",
            "NL",
            f"abuse@h{h}.test",
            str(65000 + h),
            f"127.{h + 1}.0.0/16 2001:db8:{h:x}::/48",
            "hoster",
        ]
    yield ["edgecdn", "Edge CDN", "US", "abuse@edgecdn.test", "64510", "127.250.0.0/16", "cdn"]


def host_plan():
    """host name -> (A addresses, AAAA addresses, CNAME target or None)."""
    plan = {}
    for j in range(HOSTS):
        h = j % HOSTERS
        name = f"files{j}.site{j % 500}.example"
        if j % 20 == 7:  # 5 % behind the CDN
            plan[name] = ([], [], f"e{j}.edgecdn.example")
            plan[f"e{j}.edgecdn.example"] = ([f"127.250.{j // 250}.{j % 250 + 1}"], [], None)
        elif j % 50 == 3:  # 2 % on unregistered ASes
            plan[name] = ([f"127.200.{j // 250}.{j % 250 + 1}"], [], None)
        else:
            v6 = [f"2001:db8:{h:x}::{j:x}"] if j % 10 == 0 else []
            plan[name] = ([f"127.{h + 1}.{j // 250}.{j % 250 + 1}"], v6, None)
    return plan


def start_dns(plan):
    from demo.sandbox.dnsserver import DNSServer

    server = DNSServer(query_log_size=10).start()
    for name, (v4, v6, cname) in plan.items():
        if cname:
            server.set_cname(name, cname)
        server.add_host(name, *v4, *v6) if v4 or v6 else None
    for h in range(HOSTERS):
        server.add_origin(f"127.{h + 1}.0.0/16", 65000 + h, cc="NL")
        server.add_origin(f"2001:db8:{h:x}::/48", 65000 + h, cc="NL")
        server.add_as_name(65000 + h, f"H{h}-AS Hoster {h}, NL", cc="NL")
    server.add_origin("127.250.0.0/16", 64510, cc="US", registry="arin")
    server.add_as_name(64510, "EDGE Edge CDN, US", cc="US", registry="arin")
    for k in range(40):  # unregistered space, announced by 40 different ASes
        server.add_origin(f"127.200.{k}.0/24", 64900 + k, cc="SC", registry="afrinic")
        server.add_as_name(64900 + k, f"FAR{k}-AS Far Away {k}, SC", cc="SC", registry="afrinic")
    return server


def write_notices(path: Path, names: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "reference"])
        for i in range(NOTICES):
            writer.writerow([f"https://{names[i % len(names)]}/album/{i // len(names)}/img_{i}.jpg", f"B-{i}"])


def fresh_database(tmp: Path) -> tuple[str, str]:
    url = os.environ.get("BENCH_DATABASE_URL", "")
    if not url:
        return f"sqlite:///{tmp / 'bench.sqlite3'}", "sqlite"
    import psycopg

    base, _sep, name = url.rpartition("/")
    name = name or "bench_attribution"
    if not name.startswith("bench"):  # it is dropped below: never a database of someone else's
        raise SystemExit(f"BENCH_DATABASE_URL must name a bench_* database, not {name!r}")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}", "postgresql"


def run() -> dict:
    sys.path.insert(0, str(ROOT))
    plan = host_plan()
    names = [n for n in plan if ".site" in n]
    server = start_dns(plan)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            database_url, vendor = fresh_database(tmp_path)
            env = {
                **os.environ,
                "DATABASE_URL": database_url,
                "SECRET_KEY": "bench-only",
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "MONITOR_NAMESERVERS": server.nameserver,
                "MONITOR_RDAP": "off",
            }
            with (tmp_path / "hosters.csv").open("w", newline="") as f:
                csv.writer(f).writerows(hoster_rows())
            write_notices(tmp_path / "notices.csv", names)
            manage = [sys.executable, "manage.py"]
            subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
            subprocess.run(
                [*manage, "load_hosters", str(tmp_path / "hosters.csv")],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            subprocess.run(
                [*manage, "import_notices", str(tmp_path / "notices.csv"), "--source", "bench"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            before = dict(server.query_types)
            queries_before = server.query_count
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", DRAIN_SCRIPT], cwd=ROOT, env=env, check=True, capture_output=True, text=True
            )
            wall = time.perf_counter() - started
            inner = json.loads(result.stdout.strip().splitlines()[-1])
            by_type = {t: n - before.get(t, 0) for t, n in server.query_types.items()}
            queries = server.query_count - queries_before
    finally:
        server.stop()
    return {
        "notices": NOTICES,
        "host_names": len(names),
        "database": vendor,
        "seconds": round(wall, 2),
        "drain_seconds": round(inner["seconds"], 2),
        "notices_per_s": round(NOTICES / inner["seconds"]),
        "batches": inner["batches"],
        "dns_queries": queries,
        "dns_queries_by_type": by_type,
        "attributions": inner["attributions"],
        "attribution_states": inner["states"],
        "target_s": TARGET_S,
        "target_met": wall < TARGET_S and inner["attributions"] == NOTICES,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
