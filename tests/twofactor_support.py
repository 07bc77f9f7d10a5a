"""Real TOTP codes for tests (RFC 6238, written out here rather than taken from django-otp, so that
the product is checked against the standard and not against itself), and the browser's way through
the two-factor pages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time


def totp(secret_b32: str, *, at: float | None = None, steps_ahead: int = 0, step: int = 30, digits: int = 6) -> str:
    """The code an authenticator app shows for `secret_b32` at `at` (now), `steps_ahead` periods later.

    django-otp refuses a code of a period it has already accepted (replay): a second login within
    30 s uses `steps_ahead=1` (the device accepts one period of drift either way)."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // step) + steps_ahead
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return str(value).zfill(digits)


def secret_of(device) -> str:
    """The base32 secret of a django-otp TOTPDevice, as the enrolment page shows it."""
    return base64.b32encode(device.bin_key).decode()


def browser_second_factor(page, *, secret: str | None = None, steps_ahead: int = 0) -> str | None:
    """After the password form: enrol (reading the secret off the page, as a phone would scan it) or
    enter a code of `secret`. Returns the secret used; None if no second factor was asked for."""
    if "/accounts/two-factor/setup/" in page.url:
        secret = page.inner_text("#two-factor-secret").strip()
        page.fill("#id_token", totp(secret, steps_ahead=steps_ahead))
        page.click("main button[type=submit]")
        page.wait_for_selector("#recovery-codes")
        page.click("#two-factor-continue")
        page.wait_for_load_state()
        return secret
    if "/accounts/two-factor/" in page.url:
        assert secret, "the login asks for a code: pass the user's secret"
        page.fill("#id_token", totp(secret, steps_ahead=steps_ahead))
        page.click("main button[type=submit]")
        page.wait_for_load_state()
        return secret
    return None
