"""In Chromium: an analyst's first login enrols an authenticator (the secret read off the page, as a
phone scans it), the next login asks for a code, and a recovery code works in its place."""

from __future__ import annotations

import re

import pytest

from tests.conftest import STRONG_PASSWORD
from tests.twofactor_support import browser_second_factor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def password_step(page, base: str, next_url: str) -> None:
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_username", "alice")
    page.fill("#id_password", STRONG_PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()


def test_an_analyst_enrols_then_logs_in_with_a_code_and_with_a_recovery_code(analyst, live_server, browser, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    page = browser.new_page()
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

    # First login: the password, then enrolment (not the admin) until a code confirms the device.
    password_step(page, live_server.url, "/admin/")
    assert "/accounts/two-factor/setup/" in page.url
    assert page.locator("#two-factor-qr svg").is_visible()  # the QR code, drawn by this server
    uri = page.inner_text("#two-factor-uri")
    assert uri.startswith("otpauth://totp/") and "alice" in uri
    page.fill("#id_token", "000000")
    page.click("main button[type=submit]")
    assert page.locator("#two-factor-error").is_visible()
    secret = browser_second_factor(page)
    assert page.url.endswith("/admin/") and "workbench" in page.title()

    # The recovery codes were shown once; take one from a fresh set.
    page.goto(f"{live_server.url}/accounts/two-factor/")
    page.click("main form[action$='/recovery-codes/'] button")
    codes = re.findall(r"\b[a-z2-7]{8}\b", page.inner_text("#recovery-codes"))
    assert len(codes) == 10
    page.click("header form[action$='/logout/'] button")
    page.wait_for_load_state()

    # Second login: a code from the authenticator (the next period's: the first one is used up).
    password_step(page, live_server.url, "/monitor/health/")
    assert "/accounts/two-factor/" in page.url and "setup" not in page.url
    browser_second_factor(page, secret=secret, steps_ahead=1)
    assert page.url.endswith("/monitor/health/") and page.locator("#verdict").is_visible()
    page.click("header form[action$='/logout/'] button")
    page.wait_for_load_state()

    # Third login: a recovery code instead.
    password_step(page, live_server.url, "/scorecards/")
    page.fill("#id_token", codes[0])
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    assert page.url.endswith("/scorecards/")
    assert violations == []
