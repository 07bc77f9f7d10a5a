"""The demo stack, started the way `make demo` starts it: `manage.py demo` on a temporary SQLite
database and free ports runs the sandbox internet, runmonitor and the web server as child
processes and imports live notices; Chromium then logs in as each role and finds the pages
populated, the live notices move, and Ctrl-C (SIGINT) stops the whole tree."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo.sandbox import world as market
from tests.conftest import launch_chromium
from tests.twofactor_support import browser_second_factor

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "demo-password-2026"
LIVE_DEADLINE_S = 30


def _free_port(host: str, kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    web = f"127.0.0.1:{_free_port('127.0.0.1')}"
    dns = f"127.53.0.1:{_free_port('127.53.0.1', socket.SOCK_DGRAM)}"
    http_port = _free_port(market.SITES[0].served_ip)
    smtp = f"127.53.0.1:{_free_port('127.53.0.1')}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "TEST_DATABASE", "PYTEST", "DJANGO"))
    }
    env.update({"DEBUG": "on", "DATABASE_URL": f"sqlite:///{tmp / 'demo.sqlite3'}", "SECRET_KEY": "demo-test"})
    output = open(tmp / "demo.out", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "demo", "--addrport", web, "--dns", dns]
        + ["--http-port", str(http_port), "--deadline", str(LIVE_DEADLINE_S), "--months", "3", "--per-month", "80"]
        + ["--smtp", smtp, "--data-dir", str(tmp)],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    text = ""
    deadline = time.monotonic() + 180
    while "Ctrl-C stops everything" not in text:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the demo did not come up:\n{(tmp / 'demo.out').read_text()}")
        time.sleep(0.5)
        text = (tmp / "demo.out").read_text()
    yield {"proc": proc, "base": f"http://{web}", "db": tmp / "demo.sqlite3", "out": tmp / "demo.out", "dir": tmp}
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


def _login(browser, base: str, username: str, *, totp_secret: str | None = None):
    page = browser.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit], main input[type=submit]")
    page.wait_for_load_state()
    if totp_secret:  # the demo analyst is enrolled: the banner prints its secret
        assert "/accounts/two-factor/" in page.url and "setup" not in page.url, page.url
        browser_second_factor(page, secret=totp_secret)
    assert "/accounts/login/" not in page.url, page.content()[:500]
    return page


def _live_statuses(db: Path) -> dict[str, int]:
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute(
            "SELECT status, COUNT(*) FROM compliance_notice WHERE source = 'demo-live' GROUP BY status"
        ).fetchall()
    return dict(rows)


@pytest.mark.browser
@pytest.mark.slow
def test_the_demo_runs_the_whole_product_and_every_role_finds_its_pages(demo, browser):
    base = demo["base"]
    banner = demo["out"].read_text()
    assert base in banner and all(u in banner for u in ("analyst", "ministry", "researcher", "prompt", "slowpoke"))

    # The live notices move: checked by the monitor through the sandbox, and some already removed.
    end = time.monotonic() + 60
    while _live_statuses(demo["db"]).get("removed", 0) < 3 and time.monotonic() < end:
        time.sleep(1)
    statuses = _live_statuses(demo["db"])
    assert statuses.get("removed", 0) >= 3, statuses
    assert statuses.get("pending", 0) == 0, statuses  # every live notice has been checked
    # Two vantage points; Cloakroom Hosting hides items from the second (fra, 127.0.0.2): its checks
    # of a hidden item see the item from ams and a 404 from fra, and the notice stays online.
    with sqlite3.connect(demo["db"], timeout=30) as conn:
        seen = conn.execute(
            "SELECT c.vantage, c.http_status FROM monitor_check c JOIN compliance_notice n ON n.id = c.notice_id"
            " WHERE n.source = 'demo-live' AND n.url LIKE '%cloakroom.test%'"
        ).fetchall()
    assert ("ams", 200) in seen and ("fra", 404) in seen and ("fra", 200) in seen, seen
    # The product e-mailed the notices to the hosters (console backend: the monitor's log), and
    # the hoster without an abuse address was not notified.
    log_path = demo["dir"] / "logs" / "sandbox.log"
    end = time.monotonic() + 180  # SQLite: the e-mails' writes queue behind the checks' on a busy machine
    while log_path.read_text().count("notice e-mail to") < 30 and time.monotonic() < end:
        time.sleep(1)
    log = log_path.read_text()
    assert log.count("notice e-mail to") == 30 and "notice e-mail to abuse@prompt.test" in log

    # Ministry: the league table with every hoster of the market, and never a URL.
    page = _login(browser, base, "ministry")
    page.goto(f"{base}/scorecards/")
    text = page.inner_text("main")
    for name in ("Prompt Hosting B.V.", "Slowpoke Hosting", "Never Acts Ltd", "Pixelswap Images", "Flaky Cloud"):
        assert name in text
    assert not re.search(r"https?://[a-z0-9.-]+\.test", page.content())
    page.goto(f"{base}/scorecards/slowpoke/")
    page.wait_for_selector(".js-plotly-plot, .plotly", timeout=15000)  # the charts are drawn
    assert "Slowpoke Hosting" in page.inner_text("main")
    # The language switch: Dutch from then on, numbers with a decimal comma, Amsterdam time.
    with page.expect_navigation():
        page.select_option("header select[name=language]", "nl")
    assert page.locator("html").get_attribute("lang") == "nl"
    assert "binnen de termijn" in page.inner_text("main")
    page.goto(f"{base}/scorecards/")
    assert "Naleving van verwijderverzoeken per hoster" in page.inner_text("main")
    assert re.search(r"\d,\d%", page.inner_text("main"))
    assert "Europe/Amsterdam" in page.inner_text("footer")
    page.close()

    # Analyst: everything, URLs included, in the admin and the scorecards' notice lists.
    secret = re.search(r"TOTP secret ([A-Z2-7]{16,})", banner).group(1)
    page = _login(browser, base, "analyst", totp_secret=secret)
    page.goto(f"{base}/admin/compliance/notice/?source=demo-live")
    assert "31 notices" in page.inner_text("body") or "31 results" in page.inner_text("body")
    page.goto(f"{base}/scorecards/")
    assert "Prompt Hosting B.V." in page.inner_text("main")
    page.close()

    # Researcher: metrics and the export, with URLs replaced by pseudonyms.
    page = _login(browser, base, "researcher")
    page.goto(f"{base}/scorecards/")
    assert "Steady Servers" in page.inner_text("main")
    response = page.request.get(f"{base}/api/v1/export/notices.csv?hoster=prompt")
    assert response.ok
    export = response.text()
    assert export.count("\n") > 50 and ".test" not in export
    page.close()

    # Hoster users: their own open notices in the portal, nobody else's.
    for username, own, other in (("prompt", "Prompt Hosting", "Slowpoke"), ("slowpoke", "Slowpoke Hosting", "Prompt")):
        page = _login(browser, base, username)
        page.goto(f"{base}/portal/")
        text = page.inner_text("main")
        assert own in text and other not in text
        assert page.locator("main table tr").count() > 2  # open (and recently closed) notices
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_ctrl_c_stops_the_demo_and_all_its_processes(demo, browser):
    proc = demo["proc"]
    children = _children(proc.pid)
    assert len(children) == 3  # sandbox, runmonitor, web server
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=40) == 0
    time.sleep(0.5)
    assert not [pid for pid in children if _alive(pid)]
    assert "stopped: sandbox (exit 0), runmonitor (exit 0), web (exit 0)" in demo["out"].read_text()
