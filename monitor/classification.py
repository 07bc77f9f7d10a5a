"""Classification of one observation, and why (pure): what one check saw.

What that means for the notice (confirmation, server gone, annulment, reappearance) is the
accounting's business (compliance/rules.py, `evidence` and `apply_check`), which reads `outcome`
and `reason`. The outcomes (Check.Outcome):

- **online**: a 2xx whose body is the reported item: the same SHA-256 where the notice has
  `content_sha256`, and not a hash an analyst marked as a placeholder (for the notice's hoster, or
  globally). Reasons: `online`; `over_cap` (the body passed the byte cap, so its hash cannot be
  compared: a big body is there, we count it as there); `encoded` (the server compressed the body
  although we asked for `identity`: the hash of the encoded bytes cannot be compared with the item).
- **removed** (evidence of absence): `http_404`, `http_410`, `http_451`; `nxdomain` (only for a host
  that resolved before: the domain is gone); `never_resolved` (the name never resolved, for a notice
  that has a hoster: the hotline saw the content when it was reported, so this is decided as a 404
  at the first check would be); `content_changed` (2xx with another hash where `content_sha256` is
  known); `placeholder`; `redirect_front_page` and `redirect_removed_page` (redirected away, to a
  site's front page or a page whose address says "removed", "deleted", "not found", ...); `moved`
  (still served, but from an address registered to another hoster than the notice's:
  displacement, not compliance).
- **transient** (unreachable: a network-level failure before any response; only a long enough
  streak of these is "server gone", and that is provisional): `connect_refused`, `connect_error`
  (no route, ...), `connect_timeout`, `reset` and `disconnected` before any response,
  `dns_no_answer` (the name exists without addresses), `os_error`.
- **refused**: the destination was not public (`refused:<why>` for the URL's own address,
  `redirect_refused:<why>` for a redirect target): the checker never connected. Counted like an
  unreachable observation, so a host name whose DNS now points at 127.0.0.1 (a sinkhole) becomes
  "server gone" only after the server-gone streak, never at once.
- **no_evidence** (never a takedown, however long it lasts): an answer that is neither the content
  nor its absence: `http_403`, `http_429`, `http_5xx` as `http_503`, other 4xx, 1xx/3xx without a
  Location; a 2xx whose body did not arrive in time (`slow_body`) or broke off (`body_reset`,
  `body_disconnected`, `payload_error`); `timeout` (connected, no complete answer in time: a stall);
  `tls`, `protocol_error`, `too_many_redirects`, `bad_redirect`, `redirect_dns` (a redirect target
  did not resolve); and what says nothing about the content at all: `dns_servfail`, `dns_timeout`
  (the resolver failed), `never_resolved` for a notice without hoster (attribution's case,
  "unresolvable at notice time"), `client_error` (the checker failed).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from compliance.rules import NETWORK_REASONS, NEVER_RESOLVED, NO_EVIDENCE, ONLINE, REFUSED, REMOVED, TRANSIENT
from monitor.check_client import Observation

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
    has_hoster: bool = False,
    is_moved: bool = False,
) -> Classification:
    """The outcome of one observation of a notice's URL.

    `resolved_before`: the notice's host resolved at some earlier moment (attribution, or a check
    with an address). `has_hoster`: the notice has a hoster (named by the hotline, attributed, or
    set by an analyst). `is_moved`: the address answered belongs to another hoster than the notice's.
    """
    kind = obs.error_kind
    if kind:
        return _failure(obs, resolved_before=resolved_before, has_hoster=has_hoster)

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
    return Classification(NO_EVIDENCE, f"http_{code}")


# A failure after the response began: the server answered, the body did not (fully) arrive.
_BODY_FAILURES = {"timeout": "slow_body", "reset": "body_reset", "disconnected": "body_disconnected"}


def _failure(obs: Observation, *, resolved_before: bool, has_hoster: bool) -> Classification:
    kind = obs.error_kind
    if kind == "refused_address":
        prefix = "redirect_refused" if obs.error_hop else "refused"
        return Classification(REFUSED, f"{prefix}:{obs.refused_reason}"[:REASON_MAX])
    if kind.startswith("dns_"):
        if obs.error_hop:
            return Classification(NO_EVIDENCE, "redirect_dns")
        if kind in ("dns_nxdomain", "dns_no_answer") and not resolved_before:
            return Classification(REMOVED if has_hoster else NO_EVIDENCE, NEVER_RESOLVED)
        if kind == "dns_nxdomain":
            return Classification(REMOVED, "nxdomain")
        return Classification(TRANSIENT if kind in NETWORK_REASONS else NO_EVIDENCE, kind)
    if obs.http_status is not None and kind in _BODY_FAILURES:
        return Classification(NO_EVIDENCE, _BODY_FAILURES[kind])
    if kind in NETWORK_REASONS:
        return Classification(TRANSIENT, kind)
    return Classification(NO_EVIDENCE, kind[:REASON_MAX])


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
