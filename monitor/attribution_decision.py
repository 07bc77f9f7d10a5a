"""The attribution decision (pure): a host name's addresses and their routing data -> who hosts it.

No ORM, no I/O: monitor/attribution_drain.py gathers the answers (monitor/dns.py, asn.py) and the
registered networks, calls `decide`, and writes the evidence. The rules (docs/attribution.md):

1. Per address: the most specific registered prefix (`HosterPrefix`) that contains it names the
   hoster. Otherwise the origin ASN of the most specific routed prefix (Team Cymru): a registered
   ASN (`HosterASN`) names its hoster; with several origin ASNs (multi-origin), the first one that
   is registered, and if they name different hosters the address is ambiguous. An ASN nobody
   registered names an *unknown AS*: a hoster is created for it, named after the AS, unreviewed.
   An address with neither a registered prefix nor a routed prefix names nobody.
2. A `cdn` match is an intermediary: the notice is *behind a CDN* and the CDN is recorded as such,
   never as the hoster. Addresses of CDNs do not vote for the hoster.
3. The hoster is the one most of the remaining addresses name (IPv4 and IPv6 alike). Ties go to
   the stronger match (prefix before ASN before unknown AS), then to the order of the answer. When
   the addresses name more than one hoster the notice is *ambiguous*; every candidate is kept.
4. An address whose origin lookup failed transiently (and that no prefix matched) leaves the
   decision incomplete (`needs_retry`): the caller retries while time allows, then decides with
   what it has.

Scheduling of retries for host names that do not resolve (`retry_at`, `give_up`) lives here too.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.asn import ASName, Origin

# Match strength, strongest first (tie-breaks between hosters with as many addresses).
MATCHED_PREFIX = "prefix"
MATCHED_ASN = "asn"
MATCHED_UNKNOWN_AS = "unknown_as"
MATCHED_NONE = "none"
_STRENGTH = {MATCHED_PREFIX: 0, MATCHED_ASN: 1, MATCHED_UNKNOWN_AS: 2, MATCHED_NONE: 3}

LOOKUP_FOUND = "found"
LOOKUP_NOT_ROUTED = "not_routed"
LOOKUP_FAILED = "failed"  # transient: SERVFAIL or timeout


@dataclass(frozen=True)
class UnknownAS:
    """A hoster to create (or find) for an AS that no registered hoster claims."""

    asn: int
    name: str = ""
    country: str = ""

    @property
    def slug(self) -> str:
        return f"as{self.asn}"

    @property
    def display_name(self) -> str:
        return self.name or f"AS{self.asn}"


HosterRef = int | UnknownAS  # a registered hoster's id, or an AS to create a hoster for


class RegisteredNetworks:
    """The curated registry in memory: prefixes (longest match) and ASNs, and each hoster's kind."""

    def __init__(
        self,
        *,
        prefixes: Iterable[tuple[str, int]] = (),
        asns: Iterable[tuple[int, int]] = (),
        kinds: dict[int, str] | None = None,
    ) -> None:
        # version -> [(prefixlen, {network address as int: (hoster id, prefix text)})], longest first
        by_len: dict[tuple[int, int], dict[int, tuple[int, str]]] = {}
        for text, hoster_id in prefixes:
            net = ipaddress.ip_network(text, strict=False)
            by_len.setdefault((net.version, net.prefixlen), {})[int(net.network_address)] = (hoster_id, str(net))
        self._prefixes: dict[int, list[tuple[int, dict[int, tuple[int, str]]]]] = {4: [], 6: []}
        for (version, length), table in sorted(by_len.items(), key=lambda kv: -kv[0][1]):
            self._prefixes[version].append((length, table))
        self.asns: dict[int, int] = dict(asns)
        self.kinds: dict[int, str] = dict(kinds or {})

    def match_prefix(self, ip: str) -> tuple[int, str] | None:
        """(hoster id, prefix) of the most specific registered prefix containing the address."""
        address = ipaddress.ip_address(ip)
        bits = 32 if address.version == 4 else 128
        value = int(address)
        for length, table in self._prefixes[address.version]:
            mask = ((1 << length) - 1) << (bits - length) if length else 0
            hit = table.get(value & mask)
            if hit is not None:
                return hit
        return None

    def is_cdn(self, hoster: HosterRef | None) -> bool:
        return isinstance(hoster, int) and self.kinds.get(hoster) == "cdn"


@dataclass(frozen=True)
class AddressFacts:
    """What the lookups said about one resolved address (input of `decide`)."""

    ip: str
    lookup: str = LOOKUP_FOUND  # LOOKUP_FOUND / LOOKUP_NOT_ROUTED / LOOKUP_FAILED
    origins: tuple[Origin, ...] = ()  # most specific first
    as_names: dict[int, ASName] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """One address, and the hoster it names (kept in the evidence, chosen or not)."""

    ip: str
    matched_by: str
    hoster: HosterRef | None
    is_cdn: bool = False
    registered_prefix: str = ""
    asn: int | None = None
    asns: tuple[int, ...] = ()
    routed_prefix: str = ""
    as_name: str = ""
    as_country: str = ""
    registry: str = ""
    lookup: str = LOOKUP_FOUND
    asn_hosters: tuple[HosterRef, ...] = ()  # what the origin ASN(s) alone would have said
    is_ambiguous: bool = False  # multi-origin ASNs registered to different hosters

    def as_evidence(self, slug_of: dict[int, str]) -> dict:
        """JSON for Attribution.candidates: hosters by slug (an unknown AS by its future slug)."""

        def slug(ref):
            if ref is None:
                return None
            return ref.slug if isinstance(ref, UnknownAS) else slug_of.get(ref, str(ref))

        return {
            "ip": self.ip,
            "hoster": slug(self.hoster),
            "is_cdn": self.is_cdn,
            "matched_by": self.matched_by,
            "registered_prefix": self.registered_prefix,
            "asn": self.asn,
            "asns": list(self.asns),
            "routed_prefix": self.routed_prefix,
            "as_name": self.as_name,
            "as_country": self.as_country,
            "registry": self.registry,
            "lookup": self.lookup,
            "asn_hosters": [slug(h) for h in self.asn_hosters],
            "is_ambiguous": self.is_ambiguous,
        }


@dataclass(frozen=True)
class Decision:
    hoster: HosterRef | None
    cdn: int | None
    is_behind_cdn: bool
    is_ambiguous: bool
    chosen: Candidate | None
    candidates: tuple[Candidate, ...]
    needs_retry: bool  # some address's origin lookup failed and no prefix matched it
    reason: str

    @property
    def hosters(self) -> list[HosterRef]:
        """Every distinct hoster the addresses name (not CDNs), in order of first appearance."""
        return list(dict.fromkeys(c.hoster for c in self.candidates if c.hoster is not None and not c.is_cdn))


def candidate_for(facts: AddressFacts, registry: RegisteredNetworks) -> Candidate:
    """Rule 1 for one address."""
    origin = facts.origins[0] if facts.origins else None
    routing = {}
    if origin is not None:
        asn = origin.asns[0]
        name = facts.as_names.get(asn)
        routing = {
            "asn": asn,
            "asns": origin.asns,
            "routed_prefix": origin.prefix,
            "as_name": name.name if name else "",
            "as_country": (name.country if name and name.country else origin.country),
            "registry": origin.registry,
        }
    asn_hosters: tuple[HosterRef, ...] = ()
    if origin is not None:
        asn_hosters = tuple(dict.fromkeys(registry.asns[a] for a in origin.asns if a in registry.asns))

    prefix_hit = registry.match_prefix(facts.ip)
    if prefix_hit is not None:
        hoster_id, prefix = prefix_hit
        return Candidate(
            facts.ip,
            MATCHED_PREFIX,
            hoster_id,
            is_cdn=registry.is_cdn(hoster_id),
            registered_prefix=prefix,
            lookup=facts.lookup,
            asn_hosters=asn_hosters,
            **routing,
        )
    if origin is None:
        return Candidate(facts.ip, MATCHED_NONE, None, lookup=facts.lookup)
    if asn_hosters:
        # Multi-origin: the first registered ASN in the answer's order names the hoster.
        first = next(registry.asns[a] for a in origin.asns if a in registry.asns)
        routing["asn"] = next(a for a in origin.asns if a in registry.asns)
        name = facts.as_names.get(routing["asn"])
        if name:
            routing["as_name"] = name.name
        return Candidate(
            facts.ip,
            MATCHED_ASN,
            first,
            is_cdn=registry.is_cdn(first),
            lookup=facts.lookup,
            asn_hosters=asn_hosters,
            is_ambiguous=len(asn_hosters) > 1,
            **routing,
        )
    asn = origin.asns[0]
    name = facts.as_names.get(asn)
    unknown = UnknownAS(asn, name.name if name else "", (name.country if name else "") or origin.country)
    return Candidate(facts.ip, MATCHED_UNKNOWN_AS, unknown, lookup=facts.lookup, **routing)


def decide(addresses: Iterable[AddressFacts], registry: RegisteredNetworks) -> Decision:
    """Rules 1-4 over all the addresses of one host name (see the module docstring)."""
    candidates = tuple(candidate_for(f, registry) for f in addresses)
    needs_retry = any(c.lookup == LOOKUP_FAILED and c.matched_by != MATCHED_PREFIX for c in candidates)

    cdn_candidates = [c for c in candidates if c.is_cdn]
    voters = [c for c in candidates if c.hoster is not None and not c.is_cdn]

    cdn = None
    if cdn_candidates:
        cdn = Counter(c.hoster for c in cdn_candidates).most_common(1)[0][0]

    hoster: HosterRef | None = None
    chosen: Candidate | None = None
    if voters:
        votes = Counter(c.hoster for c in voters)
        best_strength = {}
        first_seen = {}
        for index, c in enumerate(voters):
            best_strength[c.hoster] = min(best_strength.get(c.hoster, 9), _STRENGTH[c.matched_by])
            first_seen.setdefault(c.hoster, index)
        hoster = min(votes, key=lambda h: (-votes[h], best_strength[h], first_seen[h]))
        chosen = next(c for c in voters if c.hoster == hoster)
    elif cdn_candidates:
        chosen = next(c for c in cdn_candidates if c.hoster == cdn)

    distinct = list(dict.fromkeys(c.hoster for c in voters))
    is_ambiguous = len(distinct) > 1 or any(c.is_ambiguous for c in voters)

    if not candidates:
        reason = "no addresses"
    elif hoster is not None:
        reason = f"{len([c for c in voters if c.hoster == hoster])} of {len(candidates)} address(es) name the hoster"
        if is_ambiguous:
            reason += f"; ambiguous: {len(distinct)} hosters named"
    elif cdn is not None:
        reason = "behind a CDN; the origin hoster is not known from DNS"
    else:
        reason = "no registered prefix and no routed prefix for any address"
    if cdn is not None and hoster is not None:
        reason += "; behind a CDN"
    if needs_retry:
        reason += "; origin lookup failed for some address(es)"
    return Decision(
        hoster=hoster,
        cdn=cdn,
        is_behind_cdn=cdn is not None,
        is_ambiguous=is_ambiguous,
        chosen=chosen,
        candidates=candidates,
        needs_retry=needs_retry,
        reason=reason,
    )


# --- When to try again -------------------------------------------------------------------------

RETRY_DIVISOR = 96  # a host name that does not resolve is tried again every deadline/96 (15 min of 24 h)
MIN_RETRY_S = 1.0


def retry_at(*, now: datetime, deadline_at: datetime, deadline_s: int) -> datetime:
    """Next attempt for a host name that did not resolve (or whose lookups failed): every
    deadline/96, and one last attempt exactly at the deadline."""
    step = timedelta(seconds=max(MIN_RETRY_S, deadline_s / RETRY_DIVISOR))
    nxt = now + step
    if now < deadline_at < nxt:
        return deadline_at
    return nxt


def give_up(*, now: datetime, deadline_at: datetime, deadline_s: int, is_definitive: bool) -> bool:
    """Stop retrying a host name that never resolved: at the deadline after a definitive negative
    answer (NXDOMAIN, no address); after twice the deadline when every answer was transient
    (a transient failure is no evidence, so it gets longer before the name is given up)."""
    if is_definitive:
        return now >= deadline_at
    return now >= deadline_at + timedelta(seconds=deadline_s)
