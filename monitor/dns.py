"""DNS lookups for the monitor: host names to addresses, and TXT records (dnspython, async).

Every lookup of the product goes through here, to the servers of `settings.MONITOR_NAMESERVERS`
(`[(host, port), ...]`; the system resolver when empty). Use it from async code:

    from monitor import dns

    answer = await dns.resolve_host("files.example")      # A and AAAA, concurrently
    if answer.outcome is dns.Outcome.RESOLVED:
        answer.ips            # ("192.0.2.7", "2001:db8::7"): IPv4 first, then IPv6, as answered
        answer.cname_chain    # ("cdn.example", "edge.cdn.example"): aliases followed, in order
        answer.ttl            # seconds the answer is good for (the smallest TTL in the chain)
    elif answer.is_definitive:  # NXDOMAIN or NO_ANSWER: the DNS says there is nothing
        ...
    else:                       # SERVFAIL or TIMEOUT (answer.is_transient): retry later.
        ...                     # Never evidence of anything: not of removal, not of absence.

    txt = await dns.resolve_txt("4.3.2.1.origin.asn.cymru.com")   # TxtAnswer: outcome, texts, ttl
    answers = await dns.resolve_hosts(names, concurrency=100)     # {name: HostAnswer}
    dns.resolve_host_sync(name)                                   # outside an event loop only
    dns.cached_host(name), dns.cached_txt(name)   # what the cache holds, without a query (or None)

Outcomes (`Outcome`), and what they mean:
- RESOLVED: at least one address (from A or AAAA). If one of the two types failed transiently
  while the other answered, the answer is still RESOLVED (`partial_error` says what failed).
- NXDOMAIN: the name does not exist (definitive). A name that is not valid DNS is NXDOMAIN too.
- NO_ANSWER: the name exists but has no A/AAAA records (definitive; NOERROR with no data).
- SERVFAIL: the servers failed (SERVFAIL, REFUSED, or a broken answer): transient.
- TIMEOUT: no server answered within the time: transient.
Transient outcomes are retried here `MONITOR_DNS_ATTEMPTS` times (each attempt asks every
configured server, `MONITOR_DNS_TIMEOUT` seconds each) before they are returned; they are never
cached.

An IP literal (`"192.0.2.7"`, `"[2001:db8::1]"`) is RESOLVED to itself without a query; vetting
addresses (public or not) is the caller's job (monitor/fetch.py), not this module's.

Caching: per exact name (never per domain or prefix), keyed by the configured servers as well, for
the answer's TTL capped at `MONITOR_DNS_CACHE_MAX_TTL`; definitive negative answers for
`MONITOR_DNS_NEGATIVE_TTL` at most (less if the servers' SOA says so); TTL 0 is not cached.
Concurrent lookups of one name on one event loop share a single query. Pass `use_cache=False` for
an observation that must be fresh (e.g. confirming a removal); `answer.is_cached` tells which it
was. `cache_clear()` empties the cache (tests do, between zones). The cache is thread-safe: the
drains of runmonitor run in several threads, each with its own event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
from django.conf import settings

__all__ = [
    "HostAnswer",
    "Outcome",
    "TxtAnswer",
    "cache_clear",
    "generation",
    "cached_host",
    "cached_txt",
    "resolve_host",
    "resolve_host_sync",
    "resolve_hosts",
    "resolve_txt",
    "stats",
]


class Outcome(StrEnum):
    RESOLVED = "resolved"
    NXDOMAIN = "nxdomain"
    NO_ANSWER = "no_answer"
    SERVFAIL = "servfail"
    TIMEOUT = "timeout"


DEFINITIVE = frozenset({Outcome.RESOLVED, Outcome.NXDOMAIN, Outcome.NO_ANSWER})
TRANSIENT = frozenset({Outcome.SERVFAIL, Outcome.TIMEOUT})


@dataclass(frozen=True)
class HostAnswer:
    """What the DNS said about a host name's addresses (see the module docstring)."""

    name: str
    outcome: Outcome
    ips: tuple[str, ...] = ()
    cname_chain: tuple[str, ...] = ()
    ttl: int | None = None
    error: str = ""  # for SERVFAIL/TIMEOUT (and invalid names): what went wrong
    partial_error: str = ""  # RESOLVED, but A or AAAA failed transiently
    is_cached: bool = False

    @property
    def is_resolved(self) -> bool:
        return self.outcome is Outcome.RESOLVED

    @property
    def is_definitive(self) -> bool:
        """The DNS gave an answer that can be recorded as evidence (resolved or not there)."""
        return self.outcome in DEFINITIVE

    @property
    def is_transient(self) -> bool:
        """SERVFAIL or TIMEOUT: nothing is known; try again later."""
        return self.outcome in TRANSIENT

    @property
    def ipv4(self) -> tuple[str, ...]:
        return tuple(ip for ip in self.ips if ":" not in ip)

    @property
    def ipv6(self) -> tuple[str, ...]:
        return tuple(ip for ip in self.ips if ":" in ip)

    @property
    def canonical_name(self) -> str:
        return self.cname_chain[-1] if self.cname_chain else self.name


@dataclass(frozen=True)
class TxtAnswer:
    """TXT records of a name; each record's character-strings joined into one text."""

    name: str
    outcome: Outcome
    texts: tuple[str, ...] = ()
    ttl: int | None = None
    error: str = ""
    is_cached: bool = False

    @property
    def is_definitive(self) -> bool:
        return self.outcome in DEFINITIVE

    @property
    def is_transient(self) -> bool:
        return self.outcome in TRANSIENT


# --- The resolver ------------------------------------------------------------------------------

_resolvers: dict[tuple, dns.asyncresolver.Resolver] = {}
_resolvers_lock = threading.Lock()


def _config(nameservers=None) -> tuple:
    return (
        tuple(tuple(s) for s in (settings.MONITOR_NAMESERVERS if nameservers is None else nameservers)),
        float(settings.MONITOR_DNS_TIMEOUT),
    )


def _resolver(nameservers=None) -> dns.asyncresolver.Resolver:
    """One resolver per configuration (tests change the settings between servers; a vantage of
    monitor/vantages.py may name its own)."""
    key = _config(nameservers)
    with _resolvers_lock:
        resolver = _resolvers.get(key)
        if resolver is None:
            servers, timeout = key
            if servers:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port=port) for host, port in servers]
            else:
                try:
                    resolver = dns.asyncresolver.Resolver()  # /etc/resolv.conf
                except dns.resolver.NoResolverConfiguration as exc:
                    raise RuntimeError("no system resolver configured: set MONITOR_NAMESERVERS") from exc
            # Each attempt gives every server one try of `timeout` seconds; attempts are ours.
            resolver.timeout = timeout
            resolver.lifetime = timeout * max(1, len(resolver.nameservers))
            resolver.retry_servfail = False
            resolver.cache = None
            _resolvers[key] = resolver
        return resolver


def _ip_literal(name: str) -> str | None:
    text = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _normalise(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _chain(answer: dns.resolver.Answer) -> tuple[str, ...]:
    return tuple(rrset[0].target.to_text(omit_final_dot=True).lower() for rrset in answer.chaining_result.cnames)


def _chain_of_exception(exc: dns.resolver.NXDOMAIN) -> tuple[str, ...]:
    """The CNAMEs of an NXDOMAIN answer (a chain that ends in a name that does not exist)."""
    for response in exc.responses().values():
        try:
            result = response.resolve_chaining()
        except dns.exception.DNSException:
            continue
        return tuple(r[0].target.to_text(omit_final_dot=True).lower() for r in result.cnames)
    return ()


def _negative_ttl(exc: dns.resolver.NXDOMAIN) -> int | None:
    for response in exc.responses().values():
        try:
            return response.resolve_chaining().minimum_ttl
        except dns.exception.DNSException:
            continue
    return None


@dataclass(frozen=True)
class _Single:
    """The outcome of one query type, before A and AAAA are combined."""

    outcome: Outcome
    values: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()
    ttl: int | None = None
    error: str = ""


async def _query(name: str, rdtype: str, *, nameservers=None, source: str | None = None) -> _Single:
    """One query type, with `MONITOR_DNS_ATTEMPTS` attempts for transient failures."""
    resolver = _resolver(nameservers)
    attempts = max(1, int(settings.MONITOR_DNS_ATTEMPTS))
    result = _Single(Outcome.TIMEOUT, error="no attempt made")
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
        result = await _query_once(resolver, name, rdtype, source)
        stats["queries"] += 1
        if result.outcome not in TRANSIENT:
            return result
        stats["transient"] += 1
    return result


async def _query_once(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str, source: str | None) -> _Single:
    try:
        answer = await resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False, source=source)
    except dns.resolver.NXDOMAIN as exc:
        return _Single(Outcome.NXDOMAIN, chain=_chain_of_exception(exc), ttl=_negative_ttl(exc))
    except dns.resolver.LifetimeTimeout as exc:
        return _Single(Outcome.TIMEOUT, error=str(exc))
    except dns.resolver.NoNameservers as exc:
        # Every server answered SERVFAIL/REFUSED, or with something unusable.
        return _Single(Outcome.SERVFAIL, error=str(exc))
    except dns.exception.Timeout as exc:
        return _Single(Outcome.TIMEOUT, error=str(exc))
    except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel, dns.name.BadEscape) as exc:
        return _Single(Outcome.NXDOMAIN, error=f"not a valid DNS name: {exc}")
    except (dns.exception.DNSException, OSError) as exc:
        return _Single(Outcome.SERVFAIL, error=f"{type(exc).__name__}: {exc}")
    chain = _chain(answer)
    ttl = answer.chaining_result.minimum_ttl
    if answer.rrset is None:
        return _Single(Outcome.NO_ANSWER, chain=chain, ttl=ttl)
    if rdtype == "TXT":
        values = tuple(b"".join(r.strings).decode("utf-8", "replace") for r in answer.rrset)
    else:
        values = tuple(r.address for r in answer.rrset)
    return _Single(Outcome.RESOLVED, values=values, chain=chain, ttl=ttl)


def _combine(name: str, a: _Single, aaaa: _Single) -> HostAnswer:
    ips = tuple(dict.fromkeys(a.values + aaaa.values))
    chain = a.chain or aaaa.chain
    if ips:
        ttls = [s.ttl for s in (a, aaaa) if s.outcome is Outcome.RESOLVED and s.ttl is not None]
        partial = "; ".join(f"{t}: {s.outcome} {s.error}".strip() for t, s in (("A", a), ("AAAA", aaaa)) if s.error)
        return HostAnswer(name, Outcome.RESOLVED, ips, chain, min(ttls) if ttls else None, partial_error=partial)
    for single in (a, aaaa):
        if single.outcome in TRANSIENT:
            # One type failed and the other said "nothing": we don't know. Never evidence.
            return HostAnswer(name, single.outcome, (), chain, None, error=single.error)
    if Outcome.NXDOMAIN in (a.outcome, aaaa.outcome):
        error = a.error or aaaa.error
        ttls = [s.ttl for s in (a, aaaa) if s.ttl is not None]
        return HostAnswer(name, Outcome.NXDOMAIN, (), chain, min(ttls) if ttls else None, error=error)
    ttls = [s.ttl for s in (a, aaaa) if s.ttl is not None]
    return HostAnswer(name, Outcome.NO_ANSWER, (), chain, min(ttls) if ttls else None)


# --- The cache ---------------------------------------------------------------------------------

_cache: dict[tuple, tuple[float, HostAnswer | TxtAnswer]] = {}
_cache_lock = threading.Lock()
_inflight: dict[tuple, asyncio.Future] = {}  # keyed with the event loop's id: futures belong to one loop
stats = {"queries": 0, "transient": 0, "cache_hits": 0}


_generation = 0  # counts cache_clear() calls: the check process (monitor/checker.py) follows them


def cache_clear() -> None:
    global _generation
    with _cache_lock:
        _cache.clear()
        _generation += 1
    for key in list(stats):
        stats[key] = 0


def generation() -> int:
    """How many times the cache was cleared (monitor/checker.py clears the check process's too)."""
    return _generation


def _cache_get(key: tuple) -> HostAnswer | TxtAnswer | None:
    with _cache_lock:
        entry = _cache.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del _cache[key]
            return None
    stats["cache_hits"] += 1
    return replace(entry[1], is_cached=True)


def _cache_put(key: tuple, answer: HostAnswer | TxtAnswer) -> None:
    if answer.outcome is Outcome.RESOLVED:
        ttl = min(answer.ttl if answer.ttl is not None else 0, settings.MONITOR_DNS_CACHE_MAX_TTL)
    elif answer.outcome in (Outcome.NXDOMAIN, Outcome.NO_ANSWER):
        limit = settings.MONITOR_DNS_NEGATIVE_TTL
        ttl = min(answer.ttl, limit) if answer.ttl is not None else limit
    else:
        return  # transient: never cached
    if ttl <= 0:
        return
    now = time.monotonic()
    with _cache_lock:
        if len(_cache) >= settings.MONITOR_DNS_CACHE_SIZE:
            for k in [k for k, (expires, _a) in _cache.items() if expires <= now]:
                del _cache[k]
            while len(_cache) >= settings.MONITOR_DNS_CACHE_SIZE:
                del _cache[next(iter(_cache))]  # the oldest insertion
        _cache[key] = (now + ttl, answer)


async def _shared(key: tuple, make):
    """Run `make()` once per key on this event loop; concurrent callers await the same result."""
    loop_key = (id(asyncio.get_running_loop()), *key)
    future = _inflight.get(loop_key)
    if future is not None:
        return await asyncio.shield(future)
    future = asyncio.get_running_loop().create_future()
    _inflight[loop_key] = future
    try:
        result = await make()
    except asyncio.CancelledError:
        future.cancel()
        raise
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
        raise
    else:
        future.set_result(result)
        return result
    finally:
        _inflight.pop(loop_key, None)


# --- The API -----------------------------------------------------------------------------------


async def resolve_host(name: str, *, use_cache: bool = True, nameservers=None, source: str | None = None) -> HostAnswer:
    """A and AAAA of `name` (concurrently), with the CNAME chain. See the module docstring.

    A vantage (monitor/vantages.py) passes its own `nameservers` (None: `MONITOR_NAMESERVERS`) and
    the `source` address its queries go out from; both are part of the cache key, since a resolver
    may answer each source differently.
    """
    name = _normalise(name)
    literal = _ip_literal(name)
    if literal is not None:
        return HostAnswer(literal, Outcome.RESOLVED, (literal,))
    key = ("host", _config(nameservers)[0], name) if source is None else ("host", _config(nameservers)[0], name, source)
    if use_cache:
        cached = _cache_get(key)
        if cached is not None:
            return cached

    async def make() -> HostAnswer:
        a, aaaa = await asyncio.gather(
            _query(name, "A", nameservers=nameservers, source=source),
            _query(name, "AAAA", nameservers=nameservers, source=source),
        )
        answer = _combine(name, a, aaaa)
        _cache_put(key, answer)
        return answer

    return await _shared(key, make)


async def resolve_txt(name: str, *, use_cache: bool = True) -> TxtAnswer:
    """The TXT records of `name`; outcomes as for hosts (NO_ANSWER: the name has no TXT)."""
    name = _normalise(name)
    key = ("txt", _config()[0], name)
    if use_cache:
        cached = _cache_get(key)
        if cached is not None:
            return cached

    async def make() -> TxtAnswer:
        single = await _query(name, "TXT")
        answer = TxtAnswer(name, single.outcome, single.values, single.ttl, single.error)
        _cache_put(key, answer)
        return answer

    return await _shared(key, make)


async def resolve_hosts(names: Iterable[str], *, concurrency: int = 100) -> dict[str, HostAnswer]:
    """Many names at once, at most `concurrency` in flight: {normalised name: HostAnswer}."""
    unique = list(dict.fromkeys(_normalise(n) for n in names))
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(name: str) -> HostAnswer:
        async with semaphore:
            return await resolve_host(name)

    answers = await asyncio.gather(*(one(n) for n in unique))
    return dict(zip(unique, answers, strict=True))


def cached_host(name: str) -> HostAnswer | None:
    """The cached answer for a host name, without a query (None: not cached, or expired).
    For batch callers that skip the event loop for what they already know."""
    name = _normalise(name)
    literal = _ip_literal(name)
    if literal is not None:
        return HostAnswer(literal, Outcome.RESOLVED, (literal,))
    return _cache_get(("host", _config()[0], name))


def cached_txt(name: str) -> TxtAnswer | None:
    """The cached TXT answer for a name, without a query (None: not cached, or expired)."""
    return _cache_get(("txt", _config()[0], _normalise(name)))


def resolve_host_sync(name: str, *, use_cache: bool = True) -> HostAnswer:
    """`resolve_host` for synchronous code that is not inside an event loop (admin, shell)."""
    return asyncio.run(resolve_host(name, use_cache=use_cache))
