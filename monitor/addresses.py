"""Vetting of destination addresses: may the checker connect to this IP? (pure, no I/O)

The checker fetches URLs that strangers reported. Every address it would connect to, whether an
IP literal in a URL, a DNS answer or a redirect hop, is judged here first, and only a public
address (or one inside `MONITOR_ALLOWED_PRIVATE_NETWORKS`) passes.

Refused, each with the reason recorded on the check:

- IPv4: `this_network` (0.0.0.0/8), `unspecified`, `loopback` (127/8), `private` (RFC 1918 and the
  other special-purpose blocks Python lists: documentation, benchmarking, ...), `cgnat`
  (100.64.0.0/10), `link_local` (169.254/16), `multicast` (224/4), `reserved` (240/4, broadcast),
  `not_global` (anything else not globally reachable);
- IPv6: `unspecified` (::), `loopback` (::1), `ula` (fc00::/7), `link_local` (fe80::/10),
  `site_local` (fec0::/10, deprecated), `multicast` (ff00::/8), `private`, `reserved`, `not_global`;
- IPv4 hidden inside IPv6 is unwrapped and the IPv4 address judged: IPv4-mapped (::ffff:a.b.c.d,
  judged exactly as the IPv4 address it is), IPv4-compatible (::a.b.c.d: deprecated, never a real
  server, always refused), 6to4 (2002::/16), Teredo (2001::/32: server and client) and NAT64
  (64:ff9b::/96; the local-use 64:ff9b:1::/48 is always refused). The reason then reads e.g.
  `6to4:loopback`. NAT64 addresses are refused even around a public IPv4 (Python calls the block
  reserved): the checker's DNS answers carry the IPv4 address itself.

Python 3.11's `is_global` alone is not enough: it calls multicast, `::127.0.0.1`,
`64:ff9b::7f00:1` and `fec0::1` global. Hence the explicit order below.

An allowed network (tests and the demo open 127.0.0.0/8 this way) admits exactly the addresses
inside it; the unspecified address and multicast are never admitted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PUBLIC = "public"
ALLOWED_PRIVATE = "allowed_private"
INVALID = "invalid"

_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_ULA = ipaddress.IPv6Network("fc00::/7")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


@dataclass(frozen=True)
class Vetting:
    """The judgement on one address: `is_allowed`, and `reason` (`public`, `allowed_private`, or why not)."""

    address: str
    is_allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.is_allowed


@lru_cache(maxsize=65536)
def parse_ip(text: str) -> IPAddress | None:
    """An IP address in canonical notation, or None (host names, odd spellings, zone ids)."""
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    return None if getattr(ip, "scope_id", None) else ip  # fe80::1%eth0 names an interface: not for us


def allowed_networks() -> list[IPNetwork]:
    from django.conf import settings

    return list(settings.MONITOR_ALLOWED_PRIVATE_NETWORKS)


def vet(address: str | IPAddress, allowed: Iterable[IPNetwork] | None = None) -> Vetting:
    """Judge one address. `allowed` defaults to `MONITOR_ALLOWED_PRIVATE_NETWORKS`."""
    nets = list(allowed_networks() if allowed is None else allowed)
    ip = address if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address) else parse_ip(str(address))
    if ip is None:
        return Vetting(str(address), False, INVALID)
    reason = _refusal(ip, nets)
    if reason is None:
        return Vetting(str(ip), True, PUBLIC)
    if reason == ALLOWED_PRIVATE:
        return Vetting(str(ip), True, ALLOWED_PRIVATE)
    return Vetting(str(ip), False, reason)


def _refusal(ip: IPAddress, nets: list[IPNetwork]) -> str | None:
    """None for a public address, ALLOWED_PRIVATE for an opened one, else the reason for refusal."""
    if ip.version == 6:
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            kind, inner = embedded
            if kind in ("ipv4_compatible", "nat64_local"):
                return kind
            if kind == "ipv4_mapped":
                # ::ffff:a.b.c.d *is* a.b.c.d on the wire: judged as it, allowed networks included.
                reason = _refusal(inner[0], nets)
                return reason if reason in (None, ALLOWED_PRIVATE) else f"{kind}:{reason}"
            for v4 in inner:
                # Tunnels go through relays: the IPv4 inside must be public, an allowed network is no excuse.
                reason = _refusal(v4, [])
                if reason is not None:
                    return f"{kind}:{reason}"
            # 6to4, Teredo, NAT64 with a public IPv4 inside: the IPv6 address itself decides below.
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if any(ip.version == net.version and ip in net for net in nets):
        return ALLOWED_PRIVATE
    if ip.version == 4:
        if ip in _THIS_NETWORK:
            return "this_network"
        if ip in _CGNAT:
            return "cgnat"
    else:
        if ip in _ULA:
            return "ula"
        if ip in _SITE_LOCAL:
            return "site_local"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link_local"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not_global"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, list[ipaddress.IPv4Address]] | None:
    if ip in _MAPPED:
        return "ipv4_mapped", [ip.ipv4_mapped]
    if ip in _COMPATIBLE and int(ip) > 1:  # :: and ::1 are IPv6's own unspecified and loopback
        return "ipv4_compatible", [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in _NAT64_LOCAL:  # RFC 8215: the IPv4 sits at a prefix-dependent place; never a server
        return "nat64_local", []
    if ip.sixtofour is not None:
        return "6to4", [ip.sixtofour]
    if ip.teredo is not None:
        server, client = ip.teredo
        return "teredo", [server, client]
    if ip in _NAT64:
        return "nat64", [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return None
