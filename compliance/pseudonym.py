"""Keyed pseudonyms for URLs, host names and server addresses in the views and exports of roles
that may not see them (ministry users and researchers; docs/access-control.md).

HMAC-SHA256 under a key derived from the deployment's SECRET_KEY (or PSEUDONYM_KEY when set):
the same URL gets the same pseudonym in every export of one deployment, so rows stay linkable,
but without the key nobody can test a guessed URL against it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=1)
def _key() -> bytes:
    configured = getattr(settings, "PSEUDONYM_KEY", "") or settings.SECRET_KEY
    return hmac.new(configured.encode(), b"takedown-monitor pseudonym v1", hashlib.sha256).digest()


def pseudonymise(value: str) -> str:
    """32 hex characters (128 bits) standing for `value`. The one-shot `hmac.digest` is several
    times faster than building an HMAC object per value, which matters in million-row exports."""
    return hmac.digest(_key(), value.encode(), "sha256").hex()[:32]


def pseudonymise_address(ip: str) -> str:
    """The keyed pseudonym of a server address (a check's or an attribution's resolved address).

    Keyed like every pseudonym here, so hashing all 2^32 IPv4 addresses finds nothing without the
    key: this matters for an IP-literal URL, whose host *is* the address. The address is
    normalised first (one pseudonym per address, whatever its spelling) and domain-separated from
    host names, so an IP-literal notice's `host_hash` and its addresses' pseudonyms differ."""
    try:
        canonical = ipaddress.ip_address(ip).compressed
    except ValueError:
        canonical = ip
    return pseudonymise("address:" + canonical)


# A routed or registered prefix narrower than these could single out one server (a /32 is the
# address itself): roles that see no server address get it widened to this length.
SHOWN_PREFIX_MAX = {4: 24, 6: 48}


def coarse_network(value: str) -> str:
    """A prefix (or a single address) as shown to roles that see no server address: as is when it
    is at most /24 (IPv4) or /48 (IPv6) long, else the /24 or /48 that contains it. "" for a value
    that is neither (nothing is shown rather than something unvetted)."""
    if not value:
        return ""
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ""
    limit = SHOWN_PREFIX_MAX[network.version]
    if network.prefixlen > limit:
        network = network.supernet(new_prefix=limit)
    return network.compressed
