"""The audit trail: who did what, when (docs/access-control.md).

Three sources write `AuditEvent` rows:

1. the services, for the actions that mean something (`notice.acknowledge`, `notice.report_removed`,
   `dispute.raise`, `dispute.answer`, ...), through `audit_record`;
2. Django's authentication signals, for `login`, `logout` and `login.failed` (the attempted user
   name, never the password);
3. `AuditMiddleware`, for every other state-changing request (POST, PUT, PATCH, DELETE) of a
   signed-in user, e.g. an analyst's change in the admin: so a write added later by anyone is in
   the trail without anyone remembering to add it.

The trail is visible to analysts only (admin). It holds request paths, never query strings or
bodies, so no raw notice URL gets into it through a search box or a form.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.utils import timezone

from compliance.models import AuditEvent, Hoster, Notice
from compliance.selectors import role_of

log = logging.getLogger("compliance.audit")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Writes that change nothing worth a row: the language switch.
NOT_AUDITED_URL_NAMES = frozenset({"set_language"})


def client_ip(request) -> str | None:
    """The client's address; behind `TRUSTED_PROXY_COUNT` proxies, taken from X-Forwarded-For.

    Used by django-axes (AXES_CLIENT_IP_CALLABLE) and the trail. Only the last N entries of the
    header were written by our own proxies; anything left of them is the client's to forge.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    if count:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= count:
            candidate = forwarded[-count]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                log.warning("X-Forwarded-For entry is not an address; using the peer address")
    return remote


def audit_record(
    *,
    actor,
    action: str,
    notice: Notice | None = None,
    hoster: Hoster | None = None,
    detail: dict | None = None,
    request=None,
    status_code: int | None = None,
) -> AuditEvent:
    """Append one event. With `request`, the middleware knows this request is already recorded."""
    is_user = actor is not None and getattr(actor, "is_authenticated", False)
    event = AuditEvent(
        at=timezone.now(),
        actor=actor if is_user else None,
        actor_username=actor.get_username() if is_user else "",
        actor_role=(role_of(actor) or "") if is_user else "",
        action=action,
        notice=notice,
        hoster=hoster if hoster is not None else (notice.hoster if notice is not None else None),
        detail=detail or {},
    )
    if request is not None:
        event.ip_address = client_ip(request)
        event.method = (request.method or "")[:10]
        event.path = (request.path or "")[:500]
        event.status_code = status_code
        request._audit_recorded = True
    event.save()
    return event


class AuditMiddleware:
    """Record state-changing requests of signed-in users that no service recorded."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method in WRITE_METHODS and not getattr(request, "_audit_recorded", False):
            # DRF sets request.user on the Django request when it authenticates a token.
            user = getattr(request, "user", None)
            match = getattr(request, "resolver_match", None)
            url_name = match.view_name if match is not None else ""
            if user is not None and user.is_authenticated and url_name not in NOT_AUDITED_URL_NAMES:
                try:
                    audit_record(
                        actor=user,
                        action="request",
                        detail={"url_name": url_name},
                        request=request,
                        status_code=response.status_code,
                    )
                except Exception:
                    # The response is already made; a lost trail row must be visible in the log.
                    log.exception("could not record the audit event of a %s request", request.method)
        return response


# --- Authentication signals (connected in ComplianceConfig.ready) --------------------------------


def _on_login(sender, request, user, **kwargs):
    audit_record(actor=user, action="login", request=request, status_code=302)


def _on_logout(sender, request, user, **kwargs):
    if user is not None:
        audit_record(actor=user, action="logout", request=request)


def _on_login_failed(sender, credentials, request=None, **kwargs):
    # Django has already replaced the password in `credentials` by asterisks; keep the name only.
    username = str(credentials.get("username", ""))[:150]
    event = AuditEvent(at=timezone.now(), action="login.failed", actor_username=username, detail={})
    if request is not None:
        event.ip_address = client_ip(request)
        event.method = (request.method or "")[:10]
        event.path = (request.path or "")[:500]
        request._audit_recorded = True
    event.save()


def connect_signals() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="compliance.audit.login")
    user_logged_out.connect(_on_logout, dispatch_uid="compliance.audit.logout")
    user_login_failed.connect(_on_login_failed, dispatch_uid="compliance.audit.login_failed")
