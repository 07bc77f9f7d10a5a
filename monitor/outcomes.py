"""Classification of one observation: online, removed, transient or refused, and why (pure).

The outcome says what one check saw; what that means for the notice (confirmation, server gone,
reappearance) is the accounting's business (compliance/rules.py), which reads `outcome` and `reason`.

- **online**: a 2xx whose body is the reported item: the same SHA-256 where the notice has
  `content_sha256`, and not a hash an analyst marked as a placeholder (for the notice's hoster, or
  globally). Reasons: `online`; `over_cap` (the body passed the byte cap, so its hash cannot be
  compared: a big body is there, we count it as there); `encoded` (the server compressed the body
  although we asked for `identity`: the hash of the encoded bytes cannot be compared with the item).
- **removed** (a definitive observation of absence): `http_404`, `http_410`, `http_451`;
  `nxdomain` (only for a host that resolved before: the domain is gone); `content_changed` (2xx
  with another hash where `content_sha256` is known); `placeholder`; `redirect_front_page` and
  `redirect_removed_page` (redirected away, to a site's front page or a page whose address says
  "removed", "deleted", "not found", ...); `moved` (still served, but from an address registered to
  another hoster than the notice's: displacement, not compliance).
- **transient** (never a takedown by itself): `timeout`, `slow_body` (2xx headers came, the body
  did not arrive within the timeout), `reset`, `disconnected`, `connect_refused`, `connect_error`,
  `tls`, `dns_servfail`, `dns_timeout`, `dns_no_answer` (the name exists without addresses),
  `redirect_dns` (a redirect target did not resolve), `http_429`, `http_5xx` as `http_503` etc.,
  other 4xx as `http_403` etc. (forbidden is not proof of removal: it may be a bot wall),
  `too_many_redirects`, `bad_redirect`, `protocol_error`, `never_resolved` (NXDOMAIN or no
  address for a host that never resolved: attribution's case, "unresolvable at notice time", not a
  takedown, and no evidence of unreachability either), `client_error`.
- **refused**: the destination was not public (`refused:<why>` for the URL's own address,
  `redirect_refused:<why>` for a redirect target): the checker never connected. A refused
  observation counts like a transient one (unreachable), so a host name whose DNS now points at
  127.0.0.1 (a sinkhole) becomes "server gone" only after the server-gone streak, never at once.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy as _

from compliance.rules import ONLINE, REFUSED, REMOVED, TRANSIENT
from monitor.fetch import Observation

REASON_MAX = 40

# Landing pages that announce a removal (matched on the path and query of the redirect target).
REMOVED_PAGE = re.compile(
    r"(removed|deleted|delete[ds]?|not[-_ ]?found|notfound|unavailable|no[-_]?longer|taken[-_]?down|takedown"
    r"|gone|disabled|suspended|blocked|violation|dmca|abuse|terminated|expired|(^|[/_.-])(404|410|451)([/_.-]|$))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Classification:
    outcome: str
    reason: str


def classify(
    obs: Observation,
    *,
    content_sha256: str = "",
    placeholder_hashes: Collection[str] = (),
    resolved_before: bool = True,
    is_moved: bool = False,
) -> Classification:
    """The outcome of one observation of a notice's URL.

    `resolved_before`: the notice's host resolved at some earlier moment (attribution, or a check
    with an address). `is_moved`: the address answered belongs to another hoster than the notice's.
    """
    kind = obs.error_kind
    if kind:
        return _failure(obs, resolved_before=resolved_before)

    code = obs.http_status or 0
    if code in (404, 410, 451):
        return Classification(REMOVED, f"http_{code}")
    if 200 <= code < 300:
        landing = _redirect_landing(obs)
        if landing:
            return Classification(REMOVED, landing)
        if obs.is_body_complete and obs.body_sha256 in placeholder_hashes:
            return Classification(REMOVED, "placeholder")
        if content_sha256 and not obs.is_truncated and obs.content_encoding in ("", "identity"):
            if obs.body_sha256 != content_sha256.lower():
                return Classification(REMOVED, "content_changed")
        if is_moved:
            return Classification(REMOVED, "moved")
        if obs.is_truncated:
            return Classification(ONLINE, "over_cap")
        if content_sha256 and obs.content_encoding not in ("", "identity"):
            return Classification(ONLINE, "encoded")
        return Classification(ONLINE, "online")
    # Anything else: 429, 5xx, other 4xx (401, 403, ...), 1xx/3xx without a Location.
    return Classification(TRANSIENT, f"http_{code}")


def _failure(obs: Observation, *, resolved_before: bool) -> Classification:
    kind = obs.error_kind
    if kind == "refused_address":
        prefix = "redirect_refused" if obs.error_hop else "refused"
        return Classification(REFUSED, f"{prefix}:{obs.refused_reason}"[:REASON_MAX])
    if kind.startswith("dns_"):
        if obs.error_hop:
            return Classification(TRANSIENT, "redirect_dns")
        if kind in ("dns_nxdomain", "dns_no_answer") and not resolved_before:
            return Classification(TRANSIENT, "never_resolved")
        if kind == "dns_nxdomain":
            return Classification(REMOVED, "nxdomain")
        return Classification(TRANSIENT, kind)
    if kind == "timeout" and obs.http_status is not None and 200 <= obs.http_status < 300:
        return Classification(TRANSIENT, "slow_body")
    return Classification(TRANSIENT, kind[:REASON_MAX])


def _redirect_landing(obs: Observation) -> str:
    """`redirect_front_page` / `redirect_removed_page` when a redirect led away from the resource."""
    if not obs.redirect_count or not obs.final_url:
        return ""
    original, final = urlsplit(obs.url), urlsplit(obs.final_url)
    if (original.path, original.query) == (final.path, final.query):
        return ""  # the same resource elsewhere (http -> https, another host name): judge the body
    if final.path in ("", "/") and not final.query and (original.path not in ("", "/") or original.query):
        return "redirect_front_page"
    if REMOVED_PAGE.search(f"{final.path}?{final.query}") and not REMOVED_PAGE.search(
        f"{original.path}?{original.query}"
    ):
        return "redirect_removed_page"
    return ""


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
    "timeout": _("timed out"),
    "slow_body": _("the body did not arrive in time"),
    "reset": _("connection reset"),
    "disconnected": _("connection closed early"),
    "connect_refused": _("connection refused"),
    "connect_error": _("could not connect"),
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
