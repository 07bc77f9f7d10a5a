"""The SSRF-safe check client: URL -> Observation, never a body.

A check asks one question (is the reported content still served at this URL?) of a server run by
strangers, so the client trusts nothing it is told:

1. **Resolve and vet first.** The host name is resolved through monitor/dns.py (the product's
   nameservers) and every address judged by monitor/addresses.py. Only vetted addresses go to
   aiohttp, through a resolver of ours (`_VettedResolver`) that answers from the vetted set and
   never asks the DNS a second time: a name that rebinds to a refused address between our lookup
   and the connection cannot steer the connection there. IP-literal URLs (which aiohttp connects
   to without asking any resolver) are vetted here before the request.
2. **Redirects are ours.** `allow_redirects=False`; each `Location` is resolved against the hop's
   URL, normalised like an intake URL (compliance/urlnorm.py: http/https only, no user info, odd
   IPv4 spellings rewritten), and its host resolved and vetted like the first. At most
   `MONITOR_MAX_REDIRECTS` (5) hops.
3. **Bounded.** One timeout for the whole check, connect to last byte, all hops included
   (`MONITOR_TIMEOUT`). The body is streamed into SHA-256 up to `MONITOR_MAX_BYTES`, and the
   connection is dropped at the cap. At most `MONITOR_CONCURRENCY` checks at once and
   `MONITOR_PER_IP_CONCURRENCY` per destination address.
4. **Nothing kept.** Chunks go into the hash and are dropped; no byte of a body is written to the
   database, a file, a log or a cache. No cookies are kept, content is not decompressed (we ask
   for `identity`), no proxy from the environment is used.
5. **Polite and identifiable.** A User-Agent naming the monitor (`MONITOR_USER_AGENT`).

TLS: the client connects to the vetted IP and sends the host name as SNI (aiohttp does, since
the URL keeps its host name), but does not verify certificates: a site's broken certificate says
nothing about whether the content is there, and the checker sends no secrets. Handshake failures
are recorded as `tls` errors.

Use it as an async context manager; one client serves one batch (its vetted answers live as long
as the batch):

    async with CheckClient.from_settings() as client:
        observations = await asyncio.gather(*(client.check(url) for url in urls))
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from compliance.urlnorm import InvalidURL, normalize_url
from monitor import addresses
from monitor import dns as mdns

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024
CONNECT_SHARE = 0.75  # of the check's timeout a TCP (and TLS-less) connection may take to establish


@dataclass(frozen=True)
class Observation:
    """What one check saw. No body: only its SHA-256 and length."""

    url: str
    started_at: datetime
    duration_ms: int = 0
    # The DNS outcome for the URL's own host (hop 0): "" for an IP literal, else monitor.dns.Outcome.
    dns_outcome: str = ""
    resolved_ip: str | None = None  # the address the last request went to
    http_status: int | None = None  # of the last response received
    # "" when a final response was received; else what went wrong (see `ERROR_KINDS` in docs/monitor.md)
    error_kind: str = ""
    error_hop: int = 0  # which hop failed: 0 is the URL itself, 1.. the redirect targets
    refused_reason: str = ""  # addresses.vet's reason when a destination was refused
    body_sha256: str = ""
    byte_count: int = 0
    is_truncated: bool = False
    is_body_complete: bool = False
    content_encoding: str = ""
    redirect_count: int = 0
    final_url: str = ""  # after redirects; "" when there were none
    error_detail: str = field(default="", compare=False)  # for logs of analysts only

    @property
    def is_http_response(self) -> bool:
        return self.error_kind == "" and self.http_status is not None


class _Refused(Exception):
    def __init__(self, reason: str, ip: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.ip = ip


class _DnsFailure(Exception):
    def __init__(self, outcome: str, detail: str = ""):
        super().__init__(outcome)
        self.outcome = outcome
        self.detail = detail


class _VettedResolver(AbstractResolver):
    """aiohttp's resolver for one client: answers only from the addresses the client vetted."""

    def __init__(self) -> None:
        self.vetted: dict[str, tuple[str, ...]] = {}

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        ips = self.vetted.get(host.lower().rstrip("."))
        if not ips:
            # Never reached by CheckClient (it vets before every request); refuse rather than look up.
            raise OSError(errno.EHOSTUNREACH, f"{host} has no vetted address")
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in ips
        ]

    async def close(self) -> None:
        return None


Resolve = Callable[[str], Awaitable[mdns.HostAnswer]]


class CheckClient:
    def __init__(
        self,
        *,
        timeout_s: float,
        max_bytes: int,
        max_redirects: int,
        user_agent: str,
        concurrency: int,
        per_ip_concurrency: int,
        allowed_networks=None,
        resolve: Resolve | None = None,
        local_addr: str | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        self.concurrency = concurrency
        self.per_ip_concurrency = per_ip_concurrency
        self.allowed = list(addresses.allowed_networks() if allowed_networks is None else allowed_networks)
        self._resolve = resolve or mdns.resolve_host
        self.local_addr = local_addr  # a vantage's source address (monitor/vantages.py); None: the system's
        self._resolver = _VettedResolver()
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._per_ip: dict[str, asyncio.Semaphore] = {}
        self._verdicts: dict[str, addresses.Vetting] = {}  # IP literals judged in this batch

    @classmethod
    def from_settings(cls, **overrides) -> CheckClient:
        from django.conf import settings

        kwargs = {
            "timeout_s": settings.MONITOR_TIMEOUT,
            "max_bytes": settings.MONITOR_MAX_BYTES,
            "max_redirects": settings.MONITOR_MAX_REDIRECTS,
            "user_agent": settings.MONITOR_USER_AGENT,
            "concurrency": settings.MONITOR_CONCURRENCY,
            "per_ip_concurrency": settings.MONITOR_PER_IP_CONCURRENCY,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    @classmethod
    def for_vantage(cls, vantage, **overrides) -> CheckClient:
        """A client that checks from `vantage` (monitor/vantages.py): its connections leave from its
        source address, its lookups go to its resolvers from that address. Every rule is the same."""
        if vantage.source is not None or vantage.nameservers is not None:
            overrides.setdefault(
                "resolve", functools.partial(mdns.resolve_host, nameservers=vantage.nameservers, source=vantage.source)
            )
        overrides.setdefault("local_addr", vantage.source)
        return cls.from_settings(**overrides)

    async def __aenter__(self) -> CheckClient:
        connector = aiohttp.TCPConnector(
            limit=self.concurrency,
            limit_per_host=0,  # per-IP limits are ours (a host may have several IPs, an IP many hosts)
            resolver=self._resolver,
            use_dns_cache=False,  # ours decides, from what was vetted
            ssl=False,  # see the module docstring: SNI is sent, certificates are not verified
            local_addr=(self.local_addr, 0) if self.local_addr else None,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            # The one timeout per check is ours; a connection not established within most of it is
            # `connect_timeout` (network-level: the server may be gone), told apart from a server that
            # accepted the connection and then stalled (`timeout`: no evidence).
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s * CONNECT_SHARE),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            headers={"User-Agent": self.user_agent, "Accept": "*/*", "Accept-Encoding": "identity"},
        )
        self._slots = asyncio.Semaphore(self.concurrency)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- one check ------------------------------------------------------------------------------

    async def check(self, url: str, *, start_by: float | None = None) -> Observation | None:
        """Observe `url` (a normalised URL). Never raises for anything the network or server does.

        With `start_by` (a `time.monotonic()` value), a check that could not start by then (waiting
        for a free slot) is not made: None. Waiting for a slot never counts against the timeout.
        """
        async with self._slots:
            if start_by is not None and time.monotonic() > start_by:
                return None
            state = _CheckState(url, start_by=start_by)
            try:
                async with asyncio.timeout(self.timeout_s) as deadline:
                    state.deadline = deadline
                    await self._follow(url, state)
            except _NotStarted:
                return None
            except TimeoutError:
                state.fail("timeout", "no complete answer within the check's timeout")
            except Exception as exc:  # a bug of ours or of a library: recorded, never raised into the batch
                state.fail("client_error", f"{type(exc).__name__}: {exc}")
            return state.observation()

    async def _follow(self, url: str, state: _CheckState) -> None:
        current = url
        for hop in range(self.max_redirects + 1):
            state.hop = hop
            # The notice's own URL was normalised at intake; a redirect target is normalised here.
            target = _stored_target(current) if hop == 0 else None
            if target is None:
                try:
                    normalized = normalize_url(current)
                except InvalidURL as exc:
                    state.fail("bad_redirect" if hop else "bad_url", str(exc))
                    return
                target = _Target(normalized.url, normalized.host, URL(normalized.url, encoded=True))
            if hop:
                state.set(redirect_count=hop, final_url=target.url)
            try:
                ips = await self._vetted_ips(target.host, state)
            except _DnsFailure as exc:
                state.fail(f"dns_{exc.outcome}", exc.detail)
                return
            except _Refused as exc:
                state.set(refused_reason=exc.reason, resolved_ip=exc.ip or None)
                state.fail("refused_address", f"{exc.ip} is {exc.reason}")
                return
            location = await self._request(target.yurl, ips, state)
            if location is None:
                return
            current = urljoin(target.url, location)
        state.fail("too_many_redirects", f"more than {self.max_redirects} redirects")

    async def _vetted_ips(self, host: str, state: _CheckState) -> tuple[str, ...]:
        literal = addresses.parse_ip(host)
        if literal is not None:
            verdict = self._verdicts.get(host)
            if verdict is None:
                verdict = self._verdicts[host] = addresses.vet(literal, self.allowed)
            if not verdict.is_allowed:
                raise _Refused(verdict.reason, verdict.address)
            return (verdict.address,)
        answer = await self._resolve(host)
        if state.hop == 0:
            state.set(dns_outcome=str(answer.outcome))
        if not answer.is_resolved:
            raise _DnsFailure(str(answer.outcome), answer.error)
        verdicts = [addresses.vet(ip, self.allowed) for ip in answer.ips]
        allowed = tuple(v.address for v in verdicts if v.is_allowed)
        if not allowed:
            # Every address is non-public: never connect. Mixed answers use the public ones only.
            raise _Refused(verdicts[0].reason, verdicts[0].address)
        self._resolver.vetted[host.lower().rstrip(".")] = allowed
        return allowed

    async def _request(self, url: URL, ips: tuple[str, ...], state: _CheckState) -> str | None:
        """One request to a vetted destination. Returns the Location to follow, or None when done."""
        if self.per_ip_concurrency >= self.concurrency:
            return await self._request_in_slot(url, ips, state)  # the per-IP cap cannot bind
        slot = self._per_ip.get(ips[0])
        if slot is None:
            slot = self._per_ip[ips[0]] = asyncio.Semaphore(self.per_ip_concurrency)
        waited_from = time.monotonic()
        async with slot:
            waited = time.monotonic() - waited_from
            if waited > 0.001:
                # Queueing behind other checks of the same address is not the server's slowness.
                state.deadline.reschedule(state.deadline.when() + waited)
                if state.hop == 0:
                    if state.start_by is not None and time.monotonic() > state.start_by:
                        raise _NotStarted
                    state.restart_clock()
            return await self._request_in_slot(url, ips, state)

    async def _request_in_slot(self, url: URL, ips: tuple[str, ...], state: _CheckState) -> str | None:
        state.set(resolved_ip=ips[0])
        try:
            async with self._session.get(url, allow_redirects=False) as resp:
                peer = _peer_ip(resp)
                if peer is not None:
                    if peer not in ips and addresses.parse_ip(peer) not in {addresses.parse_ip(i) for i in ips}:
                        # Cannot happen with _VettedResolver; checked because the stakes are high.
                        resp.close()
                        state.fail("refused_address", f"connected to unvetted {peer}")
                        state.set(refused_reason="unvetted", resolved_ip=peer)
                        return None
                    state.set(resolved_ip=peer)
                state.set(http_status=resp.status)
                location = resp.headers.get("Location")
                if resp.status in REDIRECT_STATUSES and location:
                    resp.close()  # never read a redirect's body
                    return location
                await self._hash_body(resp, state)
                return None
        except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
            state.fail("tls", str(exc))
        except aiohttp.ConnectionTimeoutError as exc:
            state.fail("connect_timeout", str(exc))
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, ConnectionRefusedError)
            state.fail("connect_refused" if refused else "connect_error", str(exc))
        except aiohttp.ServerDisconnectedError as exc:
            state.fail("disconnected", str(exc))
        except aiohttp.ClientPayloadError as exc:
            state.fail("reset" if "reset" in str(exc).lower() else "payload_error", str(exc))
        except aiohttp.ClientOSError as exc:
            state.fail("reset" if exc.errno == errno.ECONNRESET else "os_error", str(exc))
        except aiohttp.ClientResponseError as exc:
            state.fail("protocol_error", str(exc))
        except (aiohttp.InvalidURL, ValueError) as exc:
            state.fail("bad_url", str(exc))
        except aiohttp.ClientError as exc:
            state.fail("client_error", f"{type(exc).__name__}: {exc}")
        except ConnectionResetError as exc:
            state.fail("reset", str(exc))
        return None

    async def _hash_body(self, resp: aiohttp.ClientResponse, state: _CheckState) -> None:
        digest = hashlib.sha256()
        count = 0
        truncated = False
        async for chunk in resp.content.iter_chunked(CHUNK):
            room = self.max_bytes - count
            if len(chunk) > room:
                digest.update(chunk[:room])
                count += room
                truncated = True
                break
            digest.update(chunk)
            count += len(chunk)
            del chunk  # the only copy of the bytes: gone as soon as they are hashed
        if truncated:
            resp.close()  # drop the connection at the cap
        state.set(
            body_sha256=digest.hexdigest(),
            byte_count=count,
            is_truncated=truncated,
            is_body_complete=not truncated,
            content_encoding=resp.headers.get("Content-Encoding", "").lower().strip(),
        )


class _NotStarted(Exception):
    """The batch's time to start checks ran out while this one waited for its address's slot."""


class _CheckState:
    """What a check has seen so far; the Observation is built once, at the end."""

    def __init__(self, url: str, *, start_by: float | None = None) -> None:
        self.url = url
        self.fields: dict[str, object] = {}
        self.started_at = datetime.now(UTC)
        self.hop = 0
        self.t0 = time.monotonic()
        self.start_by = start_by
        self.deadline: asyncio.Timeout | None = None

    def set(self, **fields) -> None:
        self.fields.update(fields)

    def restart_clock(self) -> None:
        """The check really starts now (after waiting for a slot): its time and duration count from here."""
        self.t0 = time.monotonic()
        self.started_at = datetime.now(UTC)

    def fail(self, kind: str, detail: str = "") -> None:
        self.fields.update(error_kind=kind[:40], error_hop=self.hop, error_detail=detail[:500])

    def observation(self) -> Observation:
        duration_ms = int((time.monotonic() - self.t0) * 1000)
        return Observation(url=self.url, started_at=self.started_at, duration_ms=duration_ms, **self.fields)


@dataclass(frozen=True)
class _Target:
    url: str
    host: str
    yurl: URL  # sent as is (encoded=True): the normalised URL, not re-quoted by yarl


def _stored_target(url: str) -> _Target | None:
    """A URL as intake stored it (already normalised): its host, without normalising it again.

    None when it does not look like one (then normalize_url judges it and says why).
    """
    try:
        yurl = URL(url, encoded=True)
    except ValueError:
        return None
    if yurl.scheme not in ("http", "https") or yurl.raw_user is not None or not yurl.raw_host:
        return None
    return _Target(url, yurl.raw_host, yurl)


def _peer_ip(resp: aiohttp.ClientResponse) -> str | None:
    connection = resp.connection
    transport = connection.transport if connection is not None else None
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if peer else None


async def check_urls(urls: list[str], **overrides) -> list[Observation]:
    """Check several URLs with a client made from the settings (for scripts and the shell)."""
    async with CheckClient.from_settings(**overrides) as client:
        return list(await asyncio.gather(*(client.check(u) for u in urls)))
