"""How the pages write the product's codes and values in words: one home for display formatters.

Codes stay codes in the database, the API and the exports; pages (scorecards, the portal, the admin)
show them through these, in the reader's language.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

# Why a check was classified so, in words for the pages (the code stays in the database, the API
# and the exports). Codes not listed here (new error kinds) are shown as they are.
REASON_LABELS = {
    "online": _("the item is served"),
    "over_cap": _("a large body is served (too large to compare)"),
    "encoded": _("served compressed (cannot be compared)"),
    "http_404": _("not found (404)"),
    "http_410": _("gone (410)"),
    "http_451": _("blocked for legal reasons (451)"),
    "nxdomain": _("domain gone"),
    "content_changed": _("other content than the reported item"),
    "placeholder": _("a placeholder instead of the item"),
    "redirect_front_page": _("redirected to the front page"),
    "redirect_removed_page": _("redirected to a 'removed' page"),
    "moved": _("served from another hoster's network"),
    "timeout": _("no complete answer in time"),
    "slow_body": _("the body did not arrive in time"),
    "body_reset": _("connection reset during the body"),
    "body_disconnected": _("connection closed during the body"),
    "reset": _("connection reset"),
    "disconnected": _("connection closed early"),
    "connect_refused": _("connection refused"),
    "connect_error": _("could not connect"),
    "connect_timeout": _("connection timed out"),
    "tls": _("TLS error"),
    "dns_servfail": _("DNS server failure"),
    "dns_timeout": _("DNS timed out"),
    "dns_no_answer": _("the name has no address"),
    "redirect_dns": _("a redirect led to a name that does not resolve"),
    "too_many_redirects": _("too many redirects"),
    "bad_redirect": _("invalid redirect"),
    "protocol_error": _("HTTP protocol error"),
    "never_resolved": _("the name never resolved"),
    "client_error": _("error in the checker"),
}


def reason_label(reason: str) -> str:
    """`http_404` -> 'not found (404)', `refused:private` -> 'not a public address: not contacted'."""
    reason = reason or ""
    if reason in REASON_LABELS:
        return str(REASON_LABELS[reason])
    if reason.startswith("redirect_refused:"):
        return str(_("redirect to a non-public address: not followed"))
    if reason.startswith("refused:"):
        return str(_("not a public address: not contacted"))
    if re.fullmatch(r"http_\d{3}", reason):
        return str(_("HTTP status %(code)s") % {"code": reason[5:]})
    return reason


def duration_text(seconds: float) -> str:
    """A time left or overdue, for people: '2 d 3 h', '5 h 12 min', '42 min', 'under a minute'."""
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return gettext("%(d)d d %(h)d h") % {"d": days, "h": hours}
    if hours:
        return gettext("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
    if minutes:
        return gettext("%(m)d min") % {"m": minutes}
    return gettext("under a minute")
