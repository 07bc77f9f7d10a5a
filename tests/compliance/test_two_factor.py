"""Two-factor login (compliance/twofactor.py): analysts must, others may; recovery codes; the reset.

Every code here is a real TOTP code computed from the secret the enrolment page shows
(tests/twofactor_support.py, RFC 6238), posted through the real login and two-factor forms.
"""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance.models import AuditEvent
from tests.conftest import STRONG_PASSWORD
from tests.twofactor_support import secret_of, totp

ANALYST_PAGES = ("/admin/", "/admin/compliance/notice/", "/monitor/health/", "/scorecards/", "/")


def password_login(client, username, *, next_url="/"):
    form = {"username": username, "password": STRONG_PASSWORD, "next": next_url}
    response = client.post("/accounts/login/", form, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 302 and "/accounts/login/" not in response["Location"], response
    return response


def enrol(client) -> tuple[str, list[str]]:
    """Through the enrolment page: read the secret, confirm with its current code."""
    page = client.get("/accounts/two-factor/setup/").content.decode()
    secret = re.search(r'id="two-factor-secret">([A-Z2-7]+)<', page).group(1)
    done = client.post("/accounts/two-factor/setup/", {"token": totp(secret), "next": "/admin/"})
    assert done.status_code == 200
    codes = re.findall(r"<li>([a-z2-7]{8})</li>", done.content.decode())
    return secret, codes


def is_verified(client) -> bool:
    return client.get("/admin/").status_code == 200


def test_an_analyst_enrols_at_the_first_login_and_sees_nothing_before(analyst, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # a wrong code below; the throttle has its own test
    client = Client()
    first = password_login(client, "alice", next_url="/monitor/health/")
    assert first["Location"] == "/monitor/health/"
    # Every analyst page (the admin included) sends the unverified session to the two-factor page,
    # which sends one without a device on to enrolment, keeping where the analyst was going.
    for path in ANALYST_PAGES:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/two-factor/"), path
    assert client.get("/accounts/two-factor/?next=/monitor/health/")["Location"] == (
        "/accounts/two-factor/setup/?next=%2Fmonitor%2Fhealth%2F"
    )
    # The API refuses the unverified session (it would show every URL).
    assert client.get("/api/v1/notices/").status_code == 403

    page = client.get("/accounts/two-factor/setup/").content.decode()
    secret = re.search(r'id="two-factor-secret">([A-Z2-7]+)<', page).group(1)
    uri = re.search(r'id="two-factor-uri">([^<]+)<', page).group(1).replace("&amp;", "&")
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri and "issuer=" in uri
    assert "<svg" in page  # the QR code, drawn here: no image service ever sees the secret
    # A reload shows the same secret (the phone may have scanned it already).
    assert secret in client.get("/accounts/two-factor/setup/").content.decode()

    wrong = client.post("/accounts/two-factor/setup/", {"token": "000000"})
    assert "not valid" in wrong.content.decode() and not is_verified(client)
    assert client.get("/admin/").status_code == 302

    done = client.post("/accounts/two-factor/setup/", {"token": totp(secret, steps_ahead=1), "next": "/admin/"})
    codes = re.findall(r"<li>([a-z2-7]{8})</li>", done.content.decode())
    assert len(set(codes)) == 10
    for path in ANALYST_PAGES:
        assert client.get(path).status_code == 200, path
    assert client.get("/api/v1/notices/").status_code == 200
    device = TOTPDevice.objects.get(user=analyst)
    assert device.confirmed and secret_of(device) == secret
    actions = list(AuditEvent.objects.filter(actor=analyst).values_list("action", flat=True))
    assert "2fa.enrol_failed" in actions and "2fa.enrol" in actions


def test_the_next_login_asks_for_a_code_and_a_wrong_one_is_refused(analyst, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # the throttle has its own test
    client = Client()
    password_login(client, "alice")
    secret, _codes = enrol(client)
    client.post("/accounts/logout/")

    again = Client()
    password_login(again, "alice", next_url="/monitor/health/")
    to_verify = again.get("/monitor/health/")
    assert to_verify["Location"] == "/accounts/two-factor/?next=%2Fmonitor%2Fhealth%2F"
    form = again.get(to_verify["Location"])
    assert form.status_code == 200 and 'name="token"' in form.content.decode()
    # Enrolment's own page refuses to add a second device to a password-only session.
    assert again.get("/accounts/two-factor/setup/")["Location"].startswith("/accounts/two-factor/")

    wrong = again.post("/accounts/two-factor/", {"token": "123456", "next": "/monitor/health/"})
    assert wrong.status_code == 200 and "not valid" in wrong.content.decode()
    assert again.get("/monitor/health/").status_code == 302
    # The code of the enrolment was used; the next period's code (one period of drift is accepted).
    right = again.post("/accounts/two-factor/", {"token": totp(secret, steps_ahead=1), "next": "/monitor/health/"})
    assert right.status_code == 302 and right["Location"] == "/monitor/health/"
    assert again.get("/monitor/health/").status_code == 200
    assert AuditEvent.objects.filter(actor=analyst, action="login.2fa_failed").exists()
    assert AuditEvent.objects.filter(actor=analyst, action="login.2fa", detail__with="authenticator").exists()


def test_a_used_code_is_not_accepted_twice(analyst, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    client = Client()
    password_login(client, "alice")
    secret = enrol(client)[0]
    code = totp(secret, steps_ahead=1)
    other = Client()
    password_login(other, "alice")
    assert other.post("/accounts/two-factor/", {"token": code}).status_code == 302
    thief = Client()
    password_login(thief, "alice")
    assert thief.post("/accounts/two-factor/", {"token": code}).status_code == 200  # replayed: refused
    assert not is_verified(thief)


def test_wrong_codes_are_throttled(analyst):
    client = Client()
    password_login(client, "alice")
    secret = enrol(client)[0]
    other = Client()
    password_login(other, "alice")
    other.post("/accounts/two-factor/", {"token": "000000"})
    # Right after a wrong code even the right one waits (django-otp: 1, 2, 4, ... seconds).
    assert other.post("/accounts/two-factor/", {"token": totp(secret, steps_ahead=1)}).status_code == 200
    assert not is_verified(other)


def test_a_recovery_code_logs_in_once_and_new_ones_replace_the_old(analyst):
    client = Client()
    password_login(client, "alice")
    _secret, codes = enrol(client)

    lost_phone = Client()
    password_login(lost_phone, "alice")
    typed = codes[0].upper()[:4] + "-" + codes[0].upper()[4:]  # as people type them
    assert lost_phone.post("/accounts/two-factor/", {"token": typed, "next": "/admin/"})["Location"] == "/admin/"
    assert is_verified(lost_phone)
    status = lost_phone.get("/accounts/two-factor/").content.decode()
    assert "9 recovery codes left" in status

    again = Client()
    password_login(again, "alice")
    assert again.post("/accounts/two-factor/", {"token": codes[0]}).status_code == 200  # used up
    assert not is_verified(again)

    renewed = lost_phone.post("/accounts/two-factor/recovery-codes/").content.decode()
    fresh = re.findall(r"<li>([a-z2-7]{8})</li>", renewed)
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    assert is_verified(lost_phone)  # the session that asked stays verified
    again.post("/accounts/two-factor/", {"token": codes[1]})  # an old code: gone
    assert not is_verified(again)
    assert AuditEvent.objects.filter(actor=analyst, action="login.2fa", detail__with="recovery_code").exists()


def test_api_tokens_work_without_a_second_factor(analyst, api):
    """A token is the machine's credential; it never meets the two-factor pages."""
    client = Client()
    password_login(client, "alice")
    enrol(client)
    assert api.as_user(analyst).get("/api/v1/notices/").status_code == 200
    # A password-only session does not become a token request by sending another scheme.
    unverified = Client()
    password_login(unverified, "alice")
    assert unverified.get("/api/v1/notices/", HTTP_AUTHORIZATION="Bearer nothing").status_code == 403
    # ... nor a made-up token (refused by the token check, never answered with the session's user).
    assert unverified.get("/api/v1/notices/", HTTP_AUTHORIZATION="Token nothing").status_code == 401
    # ... nor does a token header open the pages to the session.
    assert unverified.get("/admin/", HTTP_AUTHORIZATION="Token nothing").status_code == 302


def test_superusers_need_the_second_factor_too(db):
    get_user_model().objects.create_superuser("root", "root@example.org", STRONG_PASSWORD)
    client = Client()
    password_login(client, "root")
    assert client.get("/admin/")["Location"].startswith("/accounts/two-factor/")


@pytest.mark.parametrize("who", ["ministry", "researcher", "prompt_user"])
def test_other_roles_may_turn_it_on_and_off(request, who, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    user = request.getfixturevalue(who)
    client = Client()
    password_login(client, user.username)
    assert client.get("/").status_code == 200  # not required
    assert "Optional for your role" in client.get("/accounts/two-factor/setup/").content.decode()
    secret = enrol(client)[0]

    # Once on, their login asks for it too.
    again = Client()
    password_login(again, user.username)
    assert again.get("/")["Location"].startswith("/accounts/two-factor/")
    assert again.post("/accounts/two-factor/", {"token": totp(secret, steps_ahead=1)}).status_code == 302
    assert again.get("/").status_code == 200

    assert again.post("/accounts/two-factor/disable/").status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not StaticDevice.objects.filter(user=user).exists()
    third = Client()
    password_login(third, user.username)
    assert third.get("/").status_code == 200


def test_analysts_cannot_turn_it_off(analyst):
    client = Client()
    password_login(client, "alice")
    enrol(client)
    assert "Turn two-factor login off" not in client.get("/accounts/two-factor/").content.decode()
    assert client.post("/accounts/two-factor/disable/").status_code == 403
    assert TOTPDevice.objects.filter(user=analyst, confirmed=True).exists()


def test_reset_2fa_removes_the_devices_ends_verification_and_is_audited(analyst):
    client = Client()
    password_login(client, "alice")
    enrol(client)
    assert is_verified(client)

    out = StringIO()
    call_command("reset_2fa", "alice", "--reason", "phone lost, ticket 42", stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1]) == {"user": "alice", "devices_deleted": 2}
    assert not TOTPDevice.objects.filter(user=analyst).exists()
    assert not StaticDevice.objects.filter(user=analyst).exists()
    # The verified session named a device that is gone: back to enrolment.
    assert client.get("/admin/").status_code == 302
    assert client.get("/accounts/two-factor/")["Location"].startswith("/accounts/two-factor/setup/")
    event = AuditEvent.objects.get(action="2fa.reset")
    assert event.detail == {"user": "alice", "devices": 2, "reason": "phone lost, ticket 42"}

    with pytest.raises(CommandError) as failure:
        call_command("reset_2fa", "nobody")
    assert failure.value.returncode == 2


def test_password_guessing_is_still_locked_out_before_any_code(analyst):
    client = Client()
    for _ in range(5):
        client.post("/accounts/login/", {"username": "alice", "password": "wrong-password-1"}, REMOTE_ADDR="192.0.2.9")
    right = {"username": "alice", "password": STRONG_PASSWORD}
    locked = client.post("/accounts/login/", right, REMOTE_ADDR="192.0.2.9")
    assert locked.status_code == 429
    assert not client.session.get("_auth_user_id")


def test_the_second_factor_pages_stay_out_of_the_admin(analyst, client):
    client.force_login(analyst)
    assert client.get("/admin/otp_totp/totpdevice/").status_code == 404
    assert client.get("/admin/otp_static/staticdevice/").status_code == 404
