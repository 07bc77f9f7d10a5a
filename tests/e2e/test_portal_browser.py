"""In Chromium: a hoster logs in, sees its open notices, marks one removed, and the monitor's
independent re-check of that URL (a real HTTP server on loopback) is recorded and shown."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from compliance import services
from compliance.models import Check, Hoster, Notice
from demo.sandbox.httpserver import ok, status
from tests.conftest import STRONG_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def in_thread(func, *args, **kwargs):
    """Run ORM and asyncio work off the test's thread: Playwright's sync API runs an event loop
    there, where Django refuses synchronous database calls and asyncio.run cannot start."""
    result, errors = [], []

    def target():
        from django.db import connection

        try:
            result.append(func(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 (re-raised below, in the test's thread)
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if errors:
        raise errors[0]
    return result[0] if result else None


@pytest.fixture
def scene(http_server, settings):
    # The live server speaks plain HTTP: cookies marked Secure would not come back.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    http_server.set("/gone.jpg", status(404))
    http_server.set("/still.jpg", ok(b"still here"))
    hoster = Hoster.objects.create(slug="acme", name="Acme Hosting", abuse_email="abuse@acme.test")
    other = Hoster.objects.create(slug="rival", name="Rival Hosting", abuse_email="abuse@rival.test")
    services.user_upsert(username="desk", role="hoster", hoster_slug="acme", password=STRONG_PASSWORD)
    now = timezone.now()

    def notice(url, owner, notified_ago):
        n = Notice.objects.create(
            url=url,
            scheme="http",
            host="127.0.0.1",
            port=http_server.port,
            path="/" + url.split("/", 3)[3],
            received_at=now - notified_ago,
            notified_at=now - notified_ago,
            deadline_s=86400,
            hoster=owner,
            hoster_source="hotline",
            attribution_state="done",
            status="online",
            last_online_at=now - timedelta(hours=1),
            last_checked_at=now - timedelta(hours=1),
            check_count=1,
            next_check_at=now + timedelta(hours=2),
        )
        Check.objects.create(notice=n, checked_at=now - timedelta(hours=1), outcome="online", http_status=200)
        return n

    return {
        "gone": notice(http_server.url("/gone.jpg"), hoster, timedelta(hours=20)),
        "still": notice(http_server.url("/still.jpg"), hoster, timedelta(hours=2)),
        "rival": notice(http_server.url("/rival.jpg"), other, timedelta(hours=3)),
    }


def test_a_hoster_marks_a_notice_removed_and_sees_the_independent_recheck(scene, live_server, browser):
    # Order matters: the database work of `scene` runs before Playwright starts its event loop.
    from monitor.check_drain import drain_checks

    gone, still, rival = scene["gone"], scene["still"], scene["rival"]
    page = browser.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "desk")
    page.fill("#id_password", STRONG_PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/portal/")

    # Its open notices, the nearest deadline first, each with a countdown; never the rival's.
    rows = page.locator("#open-notices tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-notice") == str(gone.pk)
    assert "left" in rows.nth(0).locator(".countdown").inner_text()
    assert "rival.jpg" not in page.content()

    # Removed: the monitor is asked for a re-check now; nothing about the measurement moves.
    rows.nth(0).get_by_role("button", name="Removed").click()
    page.wait_for_selector(".messages")
    assert "re-checks notice" in page.locator(".messages").inner_text()
    claimed = in_thread(lambda: Notice.objects.get(pk=gone.pk))
    assert claimed.reported_removed_at is not None and claimed.next_check_at <= timezone.now()
    assert claimed.status == "online" and claimed.takedown_at is None

    # The monitor's check drain re-checks it against the real (loopback) server.
    in_thread(drain_checks)
    checks = in_thread(lambda: list(Check.objects.filter(notice=gone).order_by("checked_at")))
    assert [(c.trigger, c.outcome, c.http_status) for c in checks] == [
        ("schedule", "online", 200),
        ("hoster_claim", "removed", 404),
    ]
    assert checks[-1].checked_at >= claimed.reported_removed_at
    # Only the claimed notice was due; the other two were not touched.
    assert in_thread(lambda: Check.objects.filter(notice__in=[still, rival]).count()) == 2

    # The hoster sees the re-check in the notice's history.
    page.goto(f"{live_server.url}/portal/notices/{gone.pk}/")
    history = page.locator("#checks tbody tr")
    assert history.count() == 2
    newest = history.nth(0).inner_text()
    assert "removed" in newest and "404" in newest and "hoster reported removal" in newest

    # Another hoster's notice is simply not there.
    response = page.goto(f"{live_server.url}/portal/notices/{rival.pk}/")
    assert response.status == 404


def test_the_portal_fits_a_phone_with_one_card_per_notice_and_the_dispute_form(scene, live_server, browser):
    """At 390 px the open notices read as one card per notice with the buttons on screen (seven
    columns broke URLs into three-letter lines), and a notice's page with its dispute form does
    not scroll sideways (the textarea made its fieldset 537 px wide)."""
    gone = scene["gone"]
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "desk")
    page.fill("#id_password", STRONG_PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/portal/")
    page.wait_for_selector("#open-notices")
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    assert page.locator("#open-notices thead").is_hidden()
    row = page.locator("#open-notices tbody tr").first
    button = row.get_by_role("button", name="Removed").bounding_box()
    assert button["x"] + button["width"] <= 390
    assert row.locator("td").first.evaluate("td => getComputedStyle(td, '::before').content") == '"Notice"'
    url = row.locator("td").nth(1).bounding_box()
    assert url["width"] > 150  # the URL gets the card's width, not a sliver of a column

    page.goto(f"{live_server.url}/portal/notices/{gone.pk}/")
    page.wait_for_selector("#dispute-form textarea")
    assert page.evaluate("document.documentElement.scrollWidth") <= 391

    # A dispute sent from the phone, and the list of disputes: cards too.
    page.check("input[name=reason][value=other]")
    page.fill("#id_text", "We removed this yesterday; see our ticket 4711 for the details of the removal.")
    page.click("#dispute-form button[type=submit]")
    page.goto(f"{live_server.url}/portal/disputes/")
    page.wait_for_selector("#disputes")
    assert page.locator("#disputes tbody tr").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
