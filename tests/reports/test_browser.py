"""The league table and a scorecard in Chromium: the charts are drawn (plotly's SVG is there),
from the plotly.js this server serves, on a laptop and on a phone."""

from __future__ import annotations

import pytest

from tests.conftest import STRONG_PASSWORD
from tests.twofactor_support import browser_second_factor


def log_in(page, live_server, username: str, next_url: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", STRONG_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    browser_second_factor(page)  # analysts enrol their authenticator at their first login
    page.wait_for_url(f"**{next_url}")


@pytest.mark.browser
def test_the_league_table_and_a_scorecard_draw_their_charts(market, ministry, live_server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    log_in(page, live_server, "mira", "/scorecards/")
    page.wait_for_selector("#national-chart .main-svg", timeout=15000)
    assert page.locator("table.league tbody tr").count() == 2
    assert page.locator("svg.sparkline polyline, svg.sparkline circle").count() >= 2

    page.click("text=Slow Hosting")
    page.wait_for_url("**/scorecards/slow/**")
    for chart in ("survival-chart", "histogram-chart", "monthly-chart", "mechanisms-chart"):
        page.wait_for_selector(f"#{chart} .main-svg", timeout=15000)
    # The survival curve: the interval band and the estimate are drawn as paths, the deadline as a shape.
    assert page.locator("#survival-chart .scatterlayer .trace path.js-line").count() >= 1
    assert page.locator("#survival-chart .shapelayer path").count() >= 1
    # Everything came from this server: no CDN, no other origin.
    assert requests and all(url.startswith(live_server.url) for url in requests)
    # Ministry users never see URLs on a page.
    assert "http://files" not in page.content()


@pytest.mark.browser
def test_a_scorecard_fits_a_phone(market, prompt_user, live_server, browser):
    page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    log_in(page, live_server, "pat", "/scorecards/prompt/")
    page.wait_for_selector("#survival-chart .main-svg", timeout=15000)
    width = page.evaluate("document.querySelector('#survival-chart .main-svg').getBoundingClientRect().width")
    assert 200 < width <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1


@pytest.mark.browser
def test_pages_run_under_the_content_security_policy(market, analyst, live_server, browser):
    """Charts, the language switch, the API docs and the admin work with the policy in force, and
    the browser reports no violation of it."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, live_server, "alice", "/scorecards/slow/")
    page.wait_for_selector("#survival-chart .main-svg", timeout=15000)
    page.select_option("select[name=language]", "nl")  # the switch's script carries the nonce
    page.wait_for_selector("html[lang=nl]", timeout=15000)
    page.wait_for_selector("#survival-chart .main-svg", timeout=15000)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15000)
    page.goto(f"{live_server.url}/admin/compliance/notice/")
    page.wait_for_selector("#result_list", timeout=15000)
    assert violations == []


@pytest.mark.browser
def test_on_a_phone_the_league_table_keeps_the_hosters_name_in_view_beside_its_rates(
    market, ministry, live_server, browser
):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    log_in(page, live_server, "mira", "/scorecards/")
    page.wait_for_selector("table.league tbody tr")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # the table scrolls, not the page
    page.evaluate("document.querySelector('.table-wrap').scrollLeft = 10000")
    name = page.locator("table.league tbody tr").first.locator("td").nth(1).bounding_box()
    rate = page.locator("table.league tbody td.rate").first.bounding_box()
    assert 0 <= name["x"] < 20 and rate["x"] < 390  # the name at the left edge, the rate on screen
