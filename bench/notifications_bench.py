"""Notices by e-mail: 5,000 notices imported without notified_at (NOTIFY_BY_EMAIL=on) drained to a
real SMTP server on loopback (aiosmtpd), on a fresh SQLite database.

Target: at least 45 notice e-mails per second end to end (intent, SMTP round trip, notified_at,
follow-ups), so that a bulk delivery of 160,000 notices is notified within the hour. One SMTP
connection, one e-mail at a time: the loopback server (aiosmtpd, Python) is a large part of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTICES = 5_000
TARGET_PER_S = 45.0

DRAIN = """
import time
from compliance.notifications import drain_notifications
from compliance.models import Notice
started = time.perf_counter()
while drain_notifications():
    pass
print(time.perf_counter() - started, Notice.objects.filter(notified_at__isnull=False).count())
"""


def run() -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.smtp import SMTPServer

    server = SMTPServer()
    server.controller.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            (tmp_path / "hosters.csv").write_text(
                "slug,name,country,abuse_email,asns,prefixes,kind\nbulk,Bulk Hosting,NL,abuse@bulk.test,,,hoster\n"
            )
            with (tmp_path / "notices.csv").open("w") as f:
                f.write("url,reference,hoster\n")
                for i in range(NOTICES):
                    f.write(f"https://files{i % 50}.bulk.example/album/{i}.jpg,B-{i},bulk\n")
            env = {
                **os.environ,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'bench.sqlite3'}",
                "SECRET_KEY": "bench-only",
                "NOTIFY_BY_EMAIL": "on",
                "EMAIL_URL": f"smtp://127.0.0.1:{server.port}",
                "LOG_LEVEL": "WARNING",
                "NOTIFY_BATCH": "200",
            }

            def manage(*args, **kwargs):
                return subprocess.run(
                    [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, text=True, **kwargs
                )

            manage("migrate", "-v0")
            manage("load_hosters", str(tmp_path / "hosters.csv"), capture_output=True)
            manage("import_notices", str(tmp_path / "notices.csv"), "--source", "bench", capture_output=True)
            started = time.perf_counter()
            out = manage("shell", "-c", DRAIN, capture_output=True).stdout.split()
            wall = time.perf_counter() - started
            drain_s, notified = float(out[-2]), int(out[-1])
    finally:
        server.controller.stop()
    received = len(server.messages)
    per_s = notified / drain_s if drain_s else 0.0
    return {
        "notices": NOTICES,
        "database": "sqlite",
        "emails_received": received,
        "notified": notified,
        "drain_s": round(drain_s, 2),
        "process_s": round(wall, 2),
        "emails_per_s": round(per_s, 1),
        "target_emails_per_s": TARGET_PER_S,
        "target_met": per_s >= TARGET_PER_S and received == NOTICES == notified,
    }
