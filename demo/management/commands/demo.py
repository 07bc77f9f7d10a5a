"""demo: the whole product, live, on one machine without internet (what `make demo` runs).

1. A fresh demo database (SQLite under demo-data/, rebuilt on every run; another database is
   never wiped), migrated.
2. The hosters of the sandbox market (demo/data/hosters.csv, demo/sandbox/world.py), the
   placeholder image of Pixelswap, and months of back-filled history: notices with the checks
   that the monitor would have made, their timing folded with the product's own accounting rules
   (demo/sandbox/history.py).
3. One login per role (analyst, ministry, researcher, two hoster users).
4. Three processes, one tree: the sandbox internet (`manage.py sandbox`), the monitor
   (`manage.py runmonitor`) and the web server (`manage.py runserver`), each with the demo's
   settings (the sandbox's DNS, loopback allowed to the checker, no RDAP, short rollup ages).
   Their output goes to demo-data/logs/. Children die with this process (PR_SET_PDEATHSIG), so
   nothing is orphaned even if it is killed.
5. A batch of live notices with a short deadline (`--deadline`, 3 minutes by default), imported
   with `import_notices` like any hotline batch. The sandbox's hosters act on them on their own
   clocks; a status line every few seconds shows them move (pending, online, removed, within, late).
6. Ctrl-C (SIGINT) or SIGTERM stops the three processes cleanly and exits.
"""

from __future__ import annotations

import csv
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Count

from compliance import services, twofactor, verdicts
from demo.sandbox import history
from demo.sandbox import world as market

DEMO_DIR = Path(__file__).resolve().parents[2] / "data"
DATA_DIR = Path(settings.BASE_DIR) / "demo-data"
DEMO_PASSWORD = "demo-password-2026"  # fictional accounts on a local demo database only
DEMO_USERS = [
    ("analyst", "analyst", None, "hotline staff: everything, including URLs; the admin"),
    ("ministry", "ministry", None, "scorecards of all hosters; never sees URLs"),
    ("researcher", "researcher", None, "metrics and exports; URLs pseudonymised"),
    ("prompt", "hoster", "prompt", "abuse desk of Prompt Hosting B.V.: only its own notices"),
    ("slowpoke", "hoster", "slowpoke", "abuse desk of Slowpoke Hosting: only its own notices"),
]
# The demo analyst's second factor (analysts must log in with one: docs/access-control.md), printed
# in the banner: add the secret to an authenticator app, or use a recovery code (one use each).
DEMO_TOTP_SECRET = "DEMOTOTPSECRETFORTHEANALYSTLOGIN"
DEMO_RECOVERY_CODES = ["demo-0001", "demo-0002", "demo-0003", "demo-0004", "demo-0005"]
LIVE_SOURCE = "demo-live"
# The demo's two vantage points (monitor/vantages.py): two loopback source addresses, the sandbox's DNS.
DEMO_VANTAGES = "ams=local:127.0.0.1;fra=local:127.0.0.2"
STATUS_EVERY_S = 10.0


def _free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the demo process dies (Linux), so no orphans."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Command(BaseCommand):
    help = "Run the whole product live with a sandbox internet, demo data and one login per role (Ctrl-C stops)."

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default="127.0.0.1:8000", help="web server address (default %(default)s)")
        parser.add_argument(
            "--dns", default="{}:{}".format(*market.DEFAULT_DNS), help="sandbox DNS server (default %(default)s)"
        )
        parser.add_argument(
            "--smtp",
            default="{}:{}".format(*market.DEFAULT_SMTP),
            help="the sandbox hosters' mail server, where notice e-mails go (default %(default)s)",
        )
        parser.add_argument(
            "--http-port", type=int, default=market.DEFAULT_HTTP_PORT, help="sandbox sites' port (default %(default)s)"
        )
        parser.add_argument(
            "--deadline",
            type=int,
            default=market.DEFAULT_LIVE_DEADLINE_S,
            help="seconds: the live notices' deadline (default %(default)s)",
        )
        parser.add_argument("--months", type=int, default=6, help="months of back-filled history (default 6)")
        parser.add_argument("--per-month", type=int, default=700, help="back-filled notices per month (default 700)")
        parser.add_argument("--no-server", action="store_true", help="prepare the database only, start nothing")
        parser.add_argument(
            "--data-dir",
            default=str(DATA_DIR),
            help="for logs and the live batch; an SQLite database inside it is rebuilt (default demo-data/)",
        )

    def handle(self, *args, **opts):
        started = time.monotonic()
        logging.getLogger("reports").setLevel(logging.WARNING)  # the rollups' progress: not for this screen
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        self.data_dir = Path(opts["data_dir"]).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        dns_host, dns_port = self._hostport(opts["dns"])
        smtp_host, smtp_port = self._hostport(opts["smtp"])
        web_host, web_port = self._hostport(opts["addrport"])
        if not opts["no_server"]:
            self._check_ports(web_host, web_port, dns_host, dns_port, opts["http_port"], (smtp_host, smtp_port))

        self._fresh_database()
        self._load(months=opts["months"], per_month=opts["per_month"], http_port=opts["http_port"])
        self.stdout.write(f"demo data ready in {time.monotonic() - started:.0f} s")
        if opts["no_server"]:
            return

        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            self._start_stack(opts, dns=f"{dns_host}:{dns_port}")
            self._wait_until_up([(dns_host, dns_port), (smtp_host, smtp_port), (web_host, web_port)])
            live = self._import_live(opts["http_port"], opts["deadline"])
            self._banner(opts["addrport"], live, opts["deadline"], time.monotonic() - started)
            self._watch()
        finally:
            self._stop_stack()

    # --- preparation ---

    @staticmethod
    def _hostport(text: str) -> tuple[str, int]:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise CommandError(f"{text!r} is not host:port")
        return host.strip("[]"), int(port)

    def _check_ports(self, web_host, web_port, dns_host, dns_port, http_port, smtp) -> None:
        taken = [f"{web_host}:{web_port}"] if not _free(web_host, web_port) else []
        taken += [f"{smtp[0]}:{smtp[1]}"] if not _free(*smtp) else []
        taken += [f"{dns_host}:{dns_port}"] if not _free(dns_host, dns_port) else []
        taken += [f"{s.served_ip}:{http_port}" for s in market.SITES if not _free(s.served_ip, http_port)]
        if taken:
            raise CommandError(
                f"already in use: {', '.join(taken[:4])}. Is another demo running? Stop it, or choose other "
                "ports: manage.py demo --addrport 127.0.0.1:8001 --dns 127.53.0.1:10054 --http-port 8081"
            )

    def _fresh_database(self) -> None:
        db = settings.DATABASES["default"]
        if db["ENGINE"].endswith("sqlite3") and Path(db["NAME"]).resolve().is_relative_to(self.data_dir.resolve()):
            connection.close()
            for suffix in ("", "-wal", "-shm"):
                Path(db["NAME"] + suffix).unlink(missing_ok=True)
            Path(db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        else:
            from django.db.utils import OperationalError, ProgrammingError

            from compliance.models import Notice

            try:
                has_data = Notice.objects.exists()
            except (OperationalError, ProgrammingError):
                has_data = False  # not migrated yet
            if has_data:
                raise CommandError(
                    f"the database {db['NAME']} already holds notices; the demo only rebuilds an SQLite database "
                    f"under {self.data_dir} (make demo sets DATABASE_URL=sqlite:///demo-data/demo.sqlite3)"
                )
        call_command("migrate", interactive=False, verbosity=0)

    def _load(self, *, months: int, per_month: int, http_port: int) -> None:
        from compliance.models import Hoster
        from monitor.models import PlaceholderHash

        call_command("load_hosters", str(DEMO_DIR / "hosters.csv"), stdout=open(os.devnull, "w"))  # noqa: SIM115
        PlaceholderHash.objects.get_or_create(
            sha256=market.PLACEHOLDER_SHA256,
            hoster=Hoster.objects.get(slug="pixelswap"),
            defaults={"description": "Pixelswap's 'this image was removed' picture (sandbox)"},
        )
        now = datetime.now(UTC)
        t = time.monotonic()
        if months and per_month:
            result = history.load(
                history.generate(now=now, months=months, per_month=per_month, http_port=http_port), now=now
            )
            self.stdout.write(
                f"back-filled {result['notices']:,} notices with {result['checks']:,} checks over {months} months "
                f"in {time.monotonic() - t:.0f} s"
            )
        for username, role, hoster, _what in DEMO_USERS:
            user, _created, _token = services.user_upsert(
                username=username, role=role, hoster_slug=hoster, password=DEMO_PASSWORD
            )
            if role == "analyst":
                twofactor.authenticator_enrol_known(
                    user=user, secret_b32=DEMO_TOTP_SECRET, recovery_codes=DEMO_RECOVERY_CODES
                )
        try:
            from reports import rollups
        except ImportError:
            return
        t = time.monotonic()
        while rollups.drain():
            pass
        self.stdout.write(f"scorecard rollups computed in {time.monotonic() - t:.0f} s")

    # --- the process tree ---

    def _child_env(self, dns: str, smtp: str) -> dict[str, str]:
        db = settings.DATABASES["default"]
        env = dict(os.environ)
        env.update(
            {
                "DEBUG": "on",
                "MONITOR_NAMESERVERS": dns,
                "MONITOR_ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8",
                "MONITOR_RDAP": "off",
                "MONITOR_TIMEOUT": env.get("MONITOR_TIMEOUT", "5"),
                # Two vantage points on one machine (two loopback source addresses): Cloakroom
                # Hosting hides items from the second, and the checks from both show it.
                "MONITOR_VANTAGES": env.get("MONITOR_VANTAGES", DEMO_VANTAGES),
                # Pages and the monitor recompute scorecards after 15 s, so the live notices show.
                "SCORECARD_ROLLUP_MAX_AGE": env.get("SCORECARD_ROLLUP_MAX_AGE", "15"),
                # The product e-mails the live notices to the hosters' mail server in the sandbox
                # (their clocks start there); notified_at is the moment it accepted the e-mail.
                "NOTIFY_BY_EMAIL": "on",
                "EMAIL_URL": f"smtp://{smtp}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if db["ENGINE"].endswith("sqlite3"):
            env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
        return env

    def _start_stack(self, opts, *, dns: str) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        env = self._child_env(dns, opts["smtp"])
        commands = [
            (
                "sandbox",
                [
                    *manage,
                    "sandbox",
                    "--dns",
                    dns,
                    "--http-port",
                    str(opts["http_port"]),
                    "--smtp",
                    opts["smtp"],
                    "--deadline",
                    str(opts["deadline"]),
                ],
            ),  # fmt: skip
            ("runmonitor", [*manage, "runmonitor"]),
            ("web", [*manage, "runserver", "--noreload", opts["addrport"]]),
        ]
        for name, argv in commands:
            log = open(logs / f"{name}.log", "w")  # noqa: SIM115 (the child keeps it open)
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=settings.BASE_DIR,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (only prctl; no threads started yet)
            )
            log.close()
            self.children.append((name, proc))

    def _wait_until_up(self, addresses: list[tuple[str, int]], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for host, port in addresses:
            while not _listening(host, port):
                self._check_children()
                if time.monotonic() > deadline or self.stopping:
                    raise CommandError(f"{host}:{port} did not come up; see {self.data_dir / 'logs'}")
                time.sleep(0.2)

    def _check_children(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None and not self.stopping:
                tail = (self.data_dir / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                raise CommandError(f"{name} stopped (exit {proc.returncode}):\n  " + "\n  ".join(tail))

    def _on_signal(self, signum, frame) -> None:
        self.stopping = True

    def _stop_stack(self) -> None:
        """SIGINT to every child still running (a terminal's Ctrl-C reached them already), then
        SIGTERM, then SIGKILL, waiting a little at each step."""
        for sig, wait_s in ((signal.SIGINT, 15), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            running = [(n, p) for n, p in self.children if p.poll() is None]
            if not running:
                break
            for _name, proc in running:
                proc.send_signal(sig)
            end = time.monotonic() + wait_s
            while time.monotonic() < end and any(p.poll() is None for _n, p in running):
                time.sleep(0.1)
        if self.children:
            self.stdout.write("stopped: " + ", ".join(f"{n} (exit {p.returncode})" for n, p in self.children))

    # --- the live batch ---

    def _import_live(self, http_port: int, deadline_s: int) -> list[market.LiveItem]:
        world = market.World(http_port=http_port, deadline_s=deadline_s)
        run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        batch = world.live_batch(run)
        path = self.data_dir / "live-notices.csv"
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            # A live batch with its own short deadline is a removal order's (the `order` regime); the
            # history's notices are the covenant's 24 h. The scorecards draw one curve for each.
            writer.writerow(["url", "reference", "content_sha256", "hoster", "deadline_s", "regime"])
            writer.writerows([i.url, i.reference, i.content_sha256, i.hoster, deadline_s, "order"] for i in batch)
        # As the monitor's settings say (NOTIFY_BY_EMAIL=on): no notified_at at import; the notice
        # e-mail's acceptance sets it.
        settings.NOTIFY_BY_EMAIL = True
        call_command("import_notices", str(path), "--source", LIVE_SOURCE, stdout=open(os.devnull, "w"))  # noqa: SIM115
        return batch

    def _banner(self, addrport: str, live: list, deadline_s: int, took_s: float) -> None:
        line = "-" * 78
        self.stdout.write(
            f"\n{line}\nThe takedown compliance monitor runs at  http://{addrport}/   (up in {took_s:.0f} s)\n{line}"
        )
        self.stdout.write(f"Logins (password for all: {DEMO_PASSWORD}):")
        for username, role, _hoster, what in DEMO_USERS:
            self.stdout.write(f"  {username:<11} {role:<11} {what}")
        self.stdout.write(
            f"The analyst logs in with a second factor: the TOTP secret {DEMO_TOTP_SECRET} in an authenticator\n"
            f"app (or `oathtool --totp -b {DEMO_TOTP_SECRET}`), or a recovery code, one use each:\n"
            f"  {' '.join(DEMO_RECOVERY_CODES)}"
        )
        self.stdout.write(
            f"\n{len(live)} live notices were just sent to the sandbox's hosters with a {deadline_s // 60} min "
            f"{deadline_s % 60 or ''}{'s ' if deadline_s % 60 else ''}deadline.\n"
            "The product e-mails them to the hosters' abuse desks (the sandbox's mail server, see logs/sandbox.log);\n"
            "each hoster acts on its own clock from the moment its e-mail arrives.\n"
            "Watch them on the scorecards (ministry), the portal (prompt, slowpoke) or in the admin (analyst).\n"
            f"Logs: {self.data_dir / 'logs'}/   The language switch (English / Nederlands) is at the top right.\n"
            "Ctrl-C stops everything.\n"
        )

    def _watch(self) -> None:
        from django.utils import timezone

        from compliance.models import Notice

        last = 0.0
        while not self.stopping:
            self._check_children()
            if time.monotonic() - last >= STATUS_EVERY_S:
                last = time.monotonic()
                now = timezone.now()
                live = verdicts.annotate_verdict(Notice.objects.filter(source=LIVE_SOURCE), now)
                statuses = dict(live.values_list("status").annotate(n=Count("id")).order_by())
                by_verdict = dict(live.values_list("verdict_sql").annotate(n=Count("id")).order_by())
                checks = sum(live.values_list("check_count", flat=True))
                unsent = live.filter(notified_at__isnull=True).count()
                self.stdout.write(
                    f"{timezone.localtime(now):%H:%M:%S}  live notices: "
                    + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
                    + f"  |  within {by_verdict.get('within', 0)}, late {by_verdict.get('late', 0)}, "
                    f"pending {by_verdict.get('pending', 0)}"
                    + (f" ({unsent} not notified yet)" if unsent else "")
                    + f"  |  {checks} checks"
                )
                connection.close()
            time.sleep(0.2)
