"""Pages of the compliance app that are not the portal: the start page after login, the 404 answer,
two-factor login."""

from __future__ import annotations

from base64 import b32encode

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.defaults import page_not_found
from django_otp.plugins.otp_static.models import StaticToken

from compliance import twofactor
from compliance.models import Role
from compliance.selectors import role_of


@login_required
def home(request):
    """A start page with the places this user's role can go."""
    role = role_of(request.user)
    return render(request, "home.html", {"role": role, "role_label": Role(role).label if role else ""})


def not_found(request, exception=None):
    """The 404 answer: JSON under /api/ (as DRF's own, `{"detail": ...}`, which the OpenAPI
    schema documents), Django's page elsewhere. Reached for a path no URL pattern matches, such as
    `/api/v1/notices/1.5/` or `/api/v1/notices/null/attribution/`."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


# --- Two-factor login (compliance/twofactor.py) --------------------------------------------------


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("home")


@login_required
def two_factor(request):
    """Enter a code (a session that must be verified), or see the state of one's second factor."""
    user = request.user
    if not twofactor.is_verified(request) and not twofactor.has_authenticator(user):
        return redirect(f"{reverse('two-factor-setup')}?{urlencode({'next': _next_url(request)})}")
    error = ""
    if request.method == "POST" and not twofactor.is_verified(request):
        if twofactor.verify(request=request, token=request.POST.get("token", "")):
            return redirect(_next_url(request))
        error = _("That code is not valid (or came too soon after a wrong one). Try the next code.")
    if not twofactor.is_verified(request):
        return render(request, "registration/two_factor_verify.html", {"error": error, "next": _next_url(request)})
    context = {
        "required": twofactor.is_required_by_role(user),
        "recovery_left": StaticToken.objects.filter(device__user=user).count(),
    }
    return render(request, "registration/two_factor_status.html", context)


@login_required
def two_factor_setup(request):
    """Enrol an authenticator app: scan the QR code (or type the secret), confirm with a code."""
    user = request.user
    if twofactor.has_authenticator(user) and not twofactor.is_verified(request):
        # Adding a device needs the existing one: a password alone never replaces a second factor.
        return redirect(f"{reverse('two-factor')}?{urlencode({'next': _next_url(request)})}")
    device = twofactor.authenticator_pending(user=user)
    error = ""
    if request.method == "POST":
        codes = twofactor.enrolment_confirm(request=request, device=device, token=request.POST.get("token", ""))
        if codes is not None:
            return render(request, "registration/two_factor_codes.html", {"codes": codes, "next": _next_url(request)})
        error = _("That code is not valid. Check the time on your phone and try the next code.")
    uri = device.config_url
    context = {
        "uri": uri,
        "secret": b32encode(device.bin_key).decode(),
        "qr": mark_safe(twofactor.qr_svg(uri)),  # noqa: S308 (SVG made by segno from our own URI)
        "error": error,
        "next": _next_url(request),
        "required": twofactor.is_required_by_role(user),
    }
    return render(request, "registration/two_factor_setup.html", context)


@login_required
@require_POST
def two_factor_recovery(request):
    """New recovery codes (a verified session only); the old ones stop working."""
    if not twofactor.is_verified(request):
        return redirect("two-factor")
    codes = twofactor.recovery_codes_replace(request=request)
    return render(request, "registration/two_factor_codes.html", {"codes": codes, "next": reverse("two-factor")})


@login_required
@require_POST
def two_factor_disable(request):
    """Turn the optional second factor off (not for analysts)."""
    if not twofactor.is_verified(request) or twofactor.is_required_by_role(request.user):
        return HttpResponseForbidden()
    twofactor.twofactor_disable(request=request)
    return redirect("home")
