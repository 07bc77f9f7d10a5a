"""Origin ASN, routed prefix and AS name of an address, in Team Cymru's DNS TXT format.

All queries go through monitor/dns.py (so to `MONITOR_NAMESERVERS`), on the zones of the settings:

- IPv4 `192.0.2.7` -> `7.2.0.192.<MONITOR_ASN_ZONE>` TXT `"64500 | 192.0.2.0/24 | NL | ripencc | 2010-01-01"`
- IPv6 -> 32 nibbles, least significant first, `.<MONITOR_ASN_ZONE6>`, the same format
- `AS64500.<MONITOR_ASN_NAME_ZONE>` TXT `"64500 | NL | ripencc | 2010-01-01 | NAME-AS Name, NL"`

An address can be covered by several announced prefixes (one TXT record each) and a prefix can be
announced by several ASNs at once (`"20738 20773 | ..."`, multi-origin): the ASNs are split, and
the most specific prefix wins (`OriginAnswer.origin`); all are kept (`OriginAnswer.origins`).

Answers are cached per exact address (monitor/dns.py caches per exact query name, and the query
name is the whole address): never per prefix, which gave wrong answers in other tools.

    answer = await asn.lookup_origin("192.0.2.7")
    answer.found          # True when some prefix covers the address
    answer.origin.asns    # (64500,); .prefix "192.0.2.0/24"; .country, .registry, .allocated
    answer.is_transient   # SERVFAIL/timeout: nothing known, try later
    name = await asn.lookup_as_name(64500)   # ASName(asn, country, registry, allocated, name) or None
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from django.conf import settings

from monitor import dns
from monitor.dns import Outcome


@dataclass(frozen=True)
class Origin:
    """One TXT record of the origin zone: a routed prefix and the AS(es) announcing it."""

    asns: tuple[int, ...]
    prefix: str
    country: str = ""
    registry: str = ""
    allocated: str = ""

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.prefix).prefixlen

    @property
    def asn(self) -> int | None:
        return self.asns[0] if self.asns else None


@dataclass(frozen=True)
class ASName:
    asn: int
    name: str
    country: str = ""
    registry: str = ""
    allocated: str = ""


@dataclass(frozen=True)
class OriginAnswer:
    ip: str
    outcome: Outcome  # RESOLVED: TXT found; NXDOMAIN/NO_ANSWER: not routed; SERVFAIL/TIMEOUT: unknown
    origins: tuple[Origin, ...] = ()  # most specific first
    error: str = ""

    @property
    def origin(self) -> Origin | None:
        """The most specific routed prefix covering the address."""
        return self.origins[0] if self.origins else None

    @property
    def found(self) -> bool:
        return bool(self.origins)

    @property
    def is_transient(self) -> bool:
        return self.outcome in dns.TRANSIENT


# --- Pure parsing ------------------------------------------------------------------------------


def _fields(text: str) -> list[str]:
    return [part.strip().strip('"').strip() for part in text.split("|")]


def parse_origin_txt(text: str) -> Origin | None:
    """`"20738 20773 | 192.0.2.0/24 | GB | ripencc | 2003-01-01"` -> Origin; None if malformed."""
    parts = _fields(text)
    if len(parts) < 2:
        return None
    try:
        asns = tuple(dict.fromkeys(int(a) for a in parts[0].replace(",", " ").split()))
        prefix = str(ipaddress.ip_network(parts[1], strict=False))
    except ValueError:
        return None
    if not asns or any(not 0 < a < 2**32 for a in asns):
        return None
    country, registry, allocated = (parts[2:5] + ["", "", ""])[:3]
    return Origin(asns, prefix, country.upper()[:2], registry.lower(), allocated)


def parse_as_name_txt(text: str) -> ASName | None:
    """`"64500 | NL | ripencc | 2010-01-01 | NAME-AS Name, NL"` -> ASName; None if malformed."""
    parts = _fields(text)
    if len(parts) < 5:
        return None
    try:
        asn = int(parts[0])
    except ValueError:
        return None
    # The name itself may contain "|"; everything after the fourth separator is the name.
    name = "|".join(text.split("|")[4:]).strip().strip('"').strip()
    return ASName(asn, name, parts[1].upper()[:2], parts[2].lower(), parts[3])


def most_specific_first(origins: list[Origin]) -> tuple[Origin, ...]:
    """Longest prefix first; ties keep the order of the answer."""
    return tuple(sorted(origins, key=lambda o: -o.prefixlen))


def origin_query_name(ip: str) -> str:
    """The query name for an address in the configured origin zones."""
    return _origin_query_name(ip, settings.MONITOR_ASN_ZONE, settings.MONITOR_ASN_ZONE6)


# Memoised pure helpers: a batch asks about the same few thousand addresses again and again,
# and `ipaddress` costs tens of microseconds per parse.
@functools.lru_cache(maxsize=65536)
def _origin_query_name(ip: str, zone: str, zone6: str) -> str:
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return ".".join(reversed(str(address).split("."))) + "." + zone.rstrip(".")
    nibbles = address.exploded.replace(":", "")
    return ".".join(reversed(nibbles)) + "." + zone6.rstrip(".")


@functools.lru_cache(maxsize=65536)
def _normal_ip(ip: str) -> str:
    return str(ipaddress.ip_address(ip))


@functools.lru_cache(maxsize=65536)
def _origins_for(ip: str, texts: tuple[str, ...]) -> tuple[Origin, ...]:
    """The parsed records that cover the address, most specific first. A record for a prefix that
    does not cover the address is a broken answer and is ignored."""
    address = ipaddress.ip_address(ip)
    origins = []
    for text in texts:
        origin = parse_origin_txt(text)
        if origin is not None and address in ipaddress.ip_network(origin.prefix):
            origins.append(origin)
    return most_specific_first(origins)


def as_name_query_name(asn: int) -> str:
    return f"AS{int(asn)}.{settings.MONITOR_ASN_NAME_ZONE.rstrip('.')}"


# --- Lookups -----------------------------------------------------------------------------------


async def lookup_origin(ip: str) -> OriginAnswer:
    """Origin ASNs and routed prefixes of one address (see the module docstring)."""
    ip = _normal_ip(ip)
    return _origin_answer(ip, await dns.resolve_txt(origin_query_name(ip)))


def cached_origin(ip: str) -> OriginAnswer | None:
    """The origin of an address from the cache, without a query (None: not cached)."""
    ip = _normal_ip(ip)
    answer = dns.cached_txt(origin_query_name(ip))
    return _origin_answer(ip, answer) if answer is not None else None


def _origin_answer(ip: str, answer: dns.TxtAnswer) -> OriginAnswer:
    if answer.outcome is not Outcome.RESOLVED:
        return OriginAnswer(ip, answer.outcome, (), answer.error)
    origins = _origins_for(ip, answer.texts)
    if not origins:
        return OriginAnswer(ip, Outcome.NO_ANSWER, (), "no parseable origin record")
    return OriginAnswer(ip, Outcome.RESOLVED, origins)


async def lookup_as_name(asn: int) -> ASName | None:
    """The registered name of an AS, or None when the zone has none (or the lookup failed)."""
    return _as_name(asn, await dns.resolve_txt(as_name_query_name(asn)))


def cached_as_name(asn: int) -> tuple[bool, ASName | None]:
    """(is cached, name) without a query."""
    answer = dns.cached_txt(as_name_query_name(asn))
    return (answer is not None, _as_name(asn, answer) if answer is not None else None)


def _as_name(asn: int, answer: dns.TxtAnswer) -> ASName | None:
    if answer.outcome is not Outcome.RESOLVED:
        return None
    for text in answer.texts:
        parsed = parse_as_name_txt(text)
        if parsed is not None and parsed.asn == int(asn):
            return parsed
    return None
