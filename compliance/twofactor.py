"""Two-factor login (docs/access-control.md#two-factor-login): TOTP with django-otp, recovery codes.

Who must: **analysts** (role analyst, superusers, staff: they see every reported URL). Everyone else
may turn it on for their own account, and once on, their login asks for it too.

1. The password login is unchanged (django-axes throttles it). A signed-in user who must give a
   second factor and has not yet in this session is sent by `TwoFactorMiddleware` to
   `/accounts/two-factor/`: to enter a code if they have a device, to enrol one if they have none.
   Until then every page (the admin included) redirects there and the API answers 403 to the
   session; only logging out, the language switch and the two-factor pages themselves work.
2. Enrolment shows the secret as a QR code (SVG made here, no outside service) and as the
   `otpauth://` URI in text; the first correct code confirms the device, verifies the session and
   makes ten one-use recovery codes (django-otp's static tokens), shown once.
3. A code from the authenticator app or a recovery code verifies the session (django-otp's
   `otp_login`); django-otp throttles wrong codes per device (1, 2, 4, ... seconds).
4. API tokens are unchanged: a request that carries `Authorization: Token ...` is authenticated by
   the token alone (a machine has no second factor), so it is never redirected here.
5. A user who lost the device and the codes is reset by an operator: `manage.py reset_2fa USERNAME`
   deletes the devices (audited); the next login enrols a new one.
"""

from __future__ import annotations

from base64 import b32decode

import segno
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance.audit import audit_record
from compliance.models import Role
from compliance.selectors import role_of

RECOVERY_CODES = 10
TOTP_DIGITS = 6  # django-otp's default, what every authenticator app expects
# Set at login: whether this user had a confirmed device then (so that a role that may go without a
# second factor costs no query per request to find out whether it chose one).
SESSION_HAS_DEVICE = "twofactor_has_device"
# Pages an unverified user may still reach (URL names), besides the two-factor pages themselves.
OPEN_URL_NAMES = frozenset({"login", "logout", "set_language"})
TWO_FACTOR_URL_NAMES = frozenset({"two-factor", "two-factor-setup", "two-factor-recovery", "two-factor-disable"})


def is_required_by_role(user) -> bool:
    """Analysts must: they see every reported URL; so must whoever can reach the admin."""
    return bool(user.is_superuser or user.is_staff or role_of(user) == Role.ANALYST)


def has_authenticator(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def is_verified(request) -> bool:
    user = request.user
    return bool(getattr(user, "is_verified", None) and user.is_verified())


def needs_verification(request) -> bool:
    """A signed-in user who must give a second factor in this session and has not yet."""
    user = request.user
    if not user.is_authenticated or is_verified(request):
        return False
    return request.session.get(SESSION_HAS_DEVICE, False) or is_required_by_role(user)


# --- Enrolment, verification, recovery codes, reset (services) ----------------------------------


def authenticator_pending(*, user) -> TOTPDevice:
    """The unconfirmed authenticator being enrolled: the same secret on every visit until a code
    confirms it (a reload must not invalidate the secret already scanned)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    return device


def qr_svg(text: str) -> str:
    """An inline SVG QR code of `text` (segno, pure Python: no image service sees the secret)."""
    return segno.make(text, error="m").svg_inline(scale=4, border=2)


def enrolment_confirm(*, request, device: TOTPDevice, token: str) -> list[str] | None:
    """Confirm `device` with a code from it: verifies the session and returns the new recovery
    codes (shown once), or None for a wrong code."""
    user = request.user
    if device.user_id != user.pk or device.confirmed or not device.verify_token(_clean(token)):
        audit_record(actor=user, action="2fa.enrol_failed", request=request, status_code=200)
        return None
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        # One authenticator per user: an older one (an enrolment after a reset) is replaced.
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        codes = _recovery_codes_replace(user)
    otp_login(request, device)
    request.session[SESSION_HAS_DEVICE] = True
    audit_record(actor=user, action="2fa.enrol", request=request, status_code=200)
    return codes


def verify(*, request, token: str) -> bool:
    """Verify this session with a code of the user's authenticator or one of their recovery codes
    (used up). Wrong codes are throttled per device by django-otp and audited."""
    user = request.user
    token = _clean(token)
    # Each device only sees codes of its own shape, so that a recovery code typed in does not count
    # as a wrong authenticator code (and throttle the authenticator), nor the other way round.
    model = TOTPDevice if token.isdigit() and len(token) == TOTP_DIGITS else StaticDevice
    for device in model.objects.filter(user=user, confirmed=True):
        if device.verify_token(token):
            otp_login(request, device)
            request.session[SESSION_HAS_DEVICE] = True
            kind = "recovery_code" if isinstance(device, StaticDevice) else "authenticator"
            audit_record(actor=user, action="login.2fa", detail={"with": kind}, request=request, status_code=302)
            return True
    audit_record(actor=user, action="login.2fa_failed", request=request, status_code=200)
    return False


def recovery_codes_replace(*, request) -> list[str]:
    """New recovery codes for a verified user; the old ones stop working."""
    codes = _recovery_codes_replace(request.user)  # the same device: a session verified by it stays so
    audit_record(actor=request.user, action="2fa.recovery_codes", request=request, status_code=200)
    return codes


def _recovery_codes_replace(user) -> list[str]:
    device, _created = StaticDevice.objects.get_or_create(user=user, defaults={"name": "recovery codes"})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def authenticator_enrol_known(*, user, secret_b32: str, recovery_codes: list[str]) -> TOTPDevice:
    """Enrol an authenticator with a given secret and recovery codes, without a code: for the demo's
    fictional analyst only (its secret is printed, so that the demo can be used at once)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        device = TOTPDevice.objects.create(
            user=user, name="authenticator", confirmed=True, key=b32decode(secret_b32).hex()
        )
        static = StaticDevice.objects.create(user=user, name="recovery codes")
        StaticToken.objects.bulk_create([StaticToken(device=static, token=_clean(code)) for code in recovery_codes])
    return device


def twofactor_reset(*, user, actor=None, reason: str = "") -> int:
    """Delete every second factor of `user` (authenticator, recovery codes); their sessions lose
    their verification at once (the device they name is gone). Returns the devices deleted."""
    with transaction.atomic():
        deleted = 0
        for model in (TOTPDevice, StaticDevice):
            deleted += model.objects.filter(user=user).delete()[1].get(model._meta.label, 0)
        audit_record(
            actor=actor,
            action="2fa.reset",
            detail={"user": user.get_username(), "devices": deleted, "reason": reason[:500]},
        )
    return deleted


def twofactor_disable(*, request) -> None:
    """Turn off the optional second factor of a verified user whose role does not require one."""
    user = request.user
    if is_required_by_role(user):
        raise PermissionError("analysts cannot turn two-factor login off")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
    request.session.pop(DEVICE_ID_SESSION_KEY, None)
    request.session[SESSION_HAS_DEVICE] = False
    audit_record(actor=user, action="2fa.disable", request=request, status_code=302)


def _clean(token: str) -> str:
    """Codes as people type them: spaces and dashes dropped, recovery codes in lower case."""
    return "".join((token or "").split()).replace("-", "").lower()[:16]


# --- Wiring: the middleware and the login signal ------------------------------------------------


class TwoFactorMiddleware:
    """Sends a signed-in user who must give a second factor to the two-factor page (after
    django-otp's OTPMiddleware, which tells whether this session is verified)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith("/api/") and _carries_token(request):
            return None  # the API's token authentication decides; never the session's user
        if not needs_verification(request):
            return None
        match = request.resolver_match
        name = match.url_name if match is not None else None
        if name in OPEN_URL_NAMES or name in TWO_FACTOR_URL_NAMES:
            return None
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": _("Two-factor verification required: log in again.")}, status=403)
        return redirect(f"{reverse('two-factor')}?{urlencode({'next': request.get_full_path()})}")


def _carries_token(request) -> bool:
    """`Authorization: Token <key>`: DRF's TokenAuthentication then authenticates the request by the
    token or refuses it (401); it never falls back to the session. Any other scheme does not
    count, so a session cookie with a made-up header is still sent to verify."""
    parts = request.META.get("HTTP_AUTHORIZATION", "").split()
    return len(parts) >= 1 and parts[0].lower() == "token"


def _on_login(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_HAS_DEVICE] = has_authenticator(user)


def connect_signals() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="compliance.twofactor.login")
