"""The sandbox internet: a fictional hosting market on loopback, for the demo and end-to-end tests.

Everything here is fiction: `.test` names (RFC 2606), private AS numbers (64500-64599) and
127.0.0.0/8 addresses, which Linux routes to the loopback interface without any set-up (every
127.x.y.z can be bound). It is built on the two sandbox servers and never rewrites them:

- one `DNSServer` (demo/sandbox/dnsserver.py) answers A and CNAME records for the market's
  sites and Team Cymru-format TXT for the origin-ASN zones, so attribution works through it with
  `MONITOR_NAMESERVERS` pointing at it;
- one `HttpServer` (demo/sandbox/httpserver.py) per site address, all on one port, whose
  default behaviour is a `SiteBehaviour`: it serves every site on that address by `Host` header;
- optionally the hosters' mail server (aiosmtpd): with `smtp=(host, port)` a hoster's clock for an
  item starts when the product's notice e-mail naming it arrives (`NOTIFY_BY_EMAIL=on`,
  `EMAIL_URL=smtp://host:port`), as a real abuse desk acts on the notice, not on the fetch.

The market (`HOSTERS`, `SITES`) has distinct conducts: prompt hosters (Prompt Hosting, Steady
Servers), a slow one (Slowpoke), one that never acts (Never Acts Ltd), one that swaps in a
placeholder image (Pixelswap), a flaky one that answers 503 or resets a share of requests (Flaky
Cloud: never a takedown by itself), one that hides half of its items from one network while
serving them to the others (Cloakroom: selective serving, caught from the second vantage point),
a site fronted by a CDN (Shield CDN, an intermediary that is never blamed), a domain that
disappears (NXDOMAIN), and a site on an AS nobody registered (which attribution turns into an
unreviewed hoster).

**Items** are the reported files. An item's path carries a short tag that tells the site what it
is (`/img/1234-9f2c1a.jpg`); a path without a valid tag is a plain 404:

- `live`: served until its hoster acts, on the hoster's own clock: `removal_fraction(url)` times
  the live deadline after its notice e-mail arrived (with the mail server), or else after the site
  first served it (the first check of a notice comes right after its import, so this is close to
  the notification). The fraction is drawn from the hoster's conduct, seeded by the URL, so every
  process agrees on it without sharing state;
- `kept`: always served (back-filled history that was never taken down);
- `gone`: already removed, the hoster's way (404, 410 or its placeholder image).

A body is `item_body(host, path)`: a few deterministic bytes, never anything real, so the hotline
side can give each notice its `content_sha256` and a placeholder or another body counts as removed.

    world = World(http_port=8080, dns=("127.53.0.1", 10053), deadline_s=180).start()
    world.nameserver                   # "127.53.0.1:10053" for MONITOR_NAMESERVERS
    rows = world.live_batch("run1")    # LiveItem(url, reference, content_sha256, hoster, ...)
    world.stop()

`python manage.py sandbox` runs it in the foreground (demo/management/commands/sandbox.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from demo.sandbox.dnsserver import DNSServer
from demo.sandbox.httpserver import Behaviour, HttpServer

log = logging.getLogger("demo.sandbox")

DEFAULT_DNS = ("127.53.0.1", 10053)
DEFAULT_SMTP = ("127.53.0.1", 10025)
DEFAULT_HTTP_PORT = 8080
DEFAULT_LIVE_DEADLINE_S = 180
SITE_TTL = 60  # DNS TTL of the sites' records; a disappearing domain's is short
VANISHING_TTL = 5

LIVE, KEPT, GONE = "live", "kept", "gone"
KINDS = (LIVE, KEPT, GONE)


# --- The market ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conduct:
    """How a hoster acts on notices.

    Time to takedown is lognormal (as measured in the field: most removals early, a long tail),
    with `median` and `sigma` in multiples of the deadline; `never` is the share of notices it
    never acts on. `removal` is what a removed item answers: `404`, `410` or `placeholder` (a 200
    with the hoster's "removed" image). `failure_share` of all requests get a 503 or a reset;
    `latency_s` delays every answer.
    """

    median: float
    sigma: float
    never: float = 0.0
    removal: str = "404"
    failure_share: float = 0.0
    latency_s: float = 0.0
    # Back-filled history: the median per month, oldest first, as multiples of `median` (a trend).
    history_trend: tuple[float, ...] = (1.0,)
    reappearance_share: float = 0.0  # history: removed items that come back once, then go again
    # Selective serving: this share of items answers `hidden_status` to clients from these source
    # addresses (one vantage point of the monitor) and the item to everyone else.
    hides_from: tuple[str, ...] = ()
    hidden_share: float = 0.0
    hidden_status: int = 404


@dataclass(frozen=True)
class MarketHoster:
    slug: str
    name: str
    country: str
    asn: int
    as_name: str
    prefixes: tuple[str, ...]
    conduct: Conduct | None = None  # None for a CDN: it forwards, the origin hoster acts
    kind: str = "hoster"
    is_registered: bool = True  # in the hotline's registry (load_hosters); else an unknown AS
    history_share: float = 0.0  # share of the back-filled notices

    @property
    def abuse_email(self) -> str:
        return f"abuse@{self.slug}.test"


@dataclass(frozen=True)
class Site:
    host: str
    ip: str
    hoster: str  # slug of the origin hoster (who must act)
    path: str  # template of an item's path; {item} becomes "<id>-<tag>"
    cdn: str = ""  # slug of a CDN in front: the host is a CNAME to `edge` on the CDN's address
    edge: str = ""
    edge_ip: str = ""
    vanishes_at: float = 0.0  # > 0: the domain disappears (NXDOMAIN) this many deadlines after first use
    live_items: int = 2

    @property
    def served_ip(self) -> str:
        """The address clients connect to (the CDN's edge for a fronted site)."""
        return self.edge_ip or self.ip


HOSTERS: tuple[MarketHoster, ...] = (
    MarketHoster(
        "prompt",
        "Prompt Hosting B.V.",
        "NL",
        64500,
        "PROMPT-AS Prompt Hosting B.V., NL",
        ("127.10.0.0/16", "2001:db8:10::/48"),
        Conduct(median=0.08, sigma=0.9, removal="404", history_trend=(1.4, 1.2, 1.0, 1.0, 0.9, 0.8)),
        history_share=0.30,
    ),
    MarketHoster(
        "steady",
        "Steady Servers",
        "NL",
        64501,
        "STEADY-AS Steady Servers, NL",
        ("127.11.0.0/16",),
        Conduct(median=0.15, sigma=1.0, removal="410"),
        history_share=0.20,
    ),
    MarketHoster(
        "slowpoke",
        "Slowpoke Hosting",
        "NL",
        64502,
        "SLOWPOKE-AS Slowpoke Hosting, NL",
        ("127.20.0.0/16",),
        Conduct(
            median=0.9,
            sigma=0.55,
            removal="404",
            latency_s=0.4,
            # Named in the ministry's letter in month 4: it got faster.
            history_trend=(1.6, 1.5, 1.4, 0.9, 0.75, 0.7),
        ),
        history_share=0.15,
    ),
    MarketHoster(
        "neveract",
        "Never Acts Ltd",
        "SC",
        64503,
        "NEVERACT-AS Never Acts Ltd, SC",
        ("127.30.0.0/16",),
        Conduct(median=3.0, sigma=0.8, never=1.0, removal="404", reappearance_share=0.1),
        history_share=0.08,
    ),
    MarketHoster(
        "pixelswap",
        "Pixelswap Images",
        "NL",
        64504,
        "PIXELSWAP-AS Pixelswap Images, NL",
        ("127.40.0.0/16",),
        Conduct(median=0.25, sigma=0.8, removal="placeholder"),
        history_share=0.15,
    ),
    MarketHoster(
        "flaky",
        "Flaky Cloud",
        "DE",
        64505,
        "FLAKY-AS Flaky Cloud GmbH, DE",
        ("127.45.0.0/16",),
        Conduct(median=0.6, sigma=0.7, removal="404", failure_share=0.35, reappearance_share=0.05),
        history_share=0.12,
    ),
    MarketHoster(
        "cloakroom",
        "Cloakroom Hosting",
        "NL",
        64506,
        "CLOAKROOM-AS Cloakroom Hosting B.V., NL",
        ("127.46.0.0/16",),
        # Removes slowly, and meanwhile hides half of its items from one network: the demo's second
        # vantage point (127.0.0.2) gets a 404 where the first (127.0.0.1) still gets the item.
        Conduct(median=1.5, sigma=0.6, removal="404", hides_from=("127.0.0.2",), hidden_share=0.5),
    ),
    MarketHoster(
        "shieldcdn",
        "Shield CDN",
        "US",
        64510,
        "SHIELD-CDN Shield CDN Inc., US",
        ("127.50.0.0/16",),
        None,
        kind="cdn",
    ),
    MarketHoster(
        "offshore-nine",
        "Offshore Nine",
        "BZ",
        64599,
        "OFFSHORE-NINE Offshore Nine Ltd, BZ",
        ("127.60.0.0/16",),
        Conduct(median=1.0, sigma=0.5, never=1.0),
        is_registered=False,
    ),
)

SITES: tuple[Site, ...] = (
    Site("files.prompt-hosting.test", "127.10.0.10", "prompt", "/img/{item}.jpg", live_items=4),
    Site("snapshare.test", "127.10.1.20", "prompt", "/p/{item}", live_items=2),
    Site("cdn.steady-servers.test", "127.11.0.10", "steady", "/a/{item}.png", live_items=3),
    Site(
        "gallery.cdnfront.test",
        "127.11.0.20",
        "steady",
        "/photos/{item}.jpg",
        cdn="shieldcdn",
        edge="cdnfront.edge.shield-cdn.test",
        edge_ip="127.50.0.10",
        live_items=2,
    ),
    Site("slowpoke.test", "127.20.0.10", "slowpoke", "/gallery/{item}", live_items=4),
    Site("quickdrop.test", "127.20.0.30", "slowpoke", "/d/{item}", vanishes_at=0.4, live_items=2),
    Site("neveract.test", "127.30.0.10", "neveract", "/x/{item}", live_items=3),
    Site("img.pixelswap.test", "127.40.0.10", "pixelswap", "/i/{item}.jpg", live_items=3),
    Site("flaky-cloud.test", "127.45.0.10", "flaky", "/share/{item}", live_items=3),
    Site("offshore-nine.test", "127.60.0.10", "offshore-nine", "/f/{item}", live_items=1),
    Site("cloakroom.test", "127.46.0.10", "cloakroom", "/c/{item}", live_items=4),
)

HOSTERS_BY_SLUG = {h.slug: h for h in HOSTERS}
SITES_BY_HOST = {s.host: s for s in SITES}
PLACEHOLDER_BODY = b"SANDBOX PLACEHOLDER: this image was removed by Pixelswap Images (fictional)\n"
PLACEHOLDER_SHA256 = hashlib.sha256(PLACEHOLDER_BODY).hexdigest()

_ITEM = re.compile(r"(\d+)-([0-9a-f]{6})")


def hosters_csv_rows() -> list[dict[str, str]]:
    """The hotline's registry of the market (what `load_hosters` reads): registered hosters only."""
    return [
        {
            "slug": h.slug,
            "name": h.name,
            "country": h.country,
            "abuse_email": h.abuse_email,
            "asns": str(h.asn),
            "prefixes": " ".join(h.prefixes),
            "kind": h.kind,
        }
        for h in HOSTERS
        if h.is_registered
    ]


def item_tag(host: str, item_id: int, kind: str) -> str:
    return hashlib.sha256(f"sandbox-item:{kind}:{host}:{item_id}".encode()).hexdigest()[:6]


def item_path(site: Site, item_id: int, kind: str) -> str:
    return site.path.format(item=f"{item_id}-{item_tag(site.host, item_id, kind)}")


def item_kind(site: Site, path: str) -> str | None:
    """`live`, `kept` or `gone` for a path of an item of this site; None for any other path."""
    prefix, _sep, suffix = site.path.partition("{item}")
    if not (path.startswith(prefix) and path.endswith(suffix)) or len(path) <= len(prefix) + len(suffix):
        return None
    match = _ITEM.fullmatch(path[len(prefix) : len(path) - len(suffix)])
    if match is None:
        return None
    item_id, tag = int(match.group(1)), match.group(2)
    return next((kind for kind in KINDS if item_tag(site.host, item_id, kind) == tag), None)


def item_body(host: str, path: str) -> bytes:
    """The bytes of a reported item: fiction, deterministic, a few hundred bytes."""
    seed = hashlib.sha256(f"{host}{path}".encode()).hexdigest()
    return f"SANDBOX ITEM (fictional, no real content) {host}{path} {seed}\n".encode() * 4


def item_sha256(host: str, path: str) -> str:
    return hashlib.sha256(item_body(host, path)).hexdigest()


def url_of(site: Site, path: str, http_port: int) -> str:
    port = "" if http_port == 80 else f":{http_port}"
    return f"http://{site.host}{port}{path}"


def _rng(*parts: object) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big"))


def _spell(path: str, slot: int, share: float) -> bool:
    return _rng("fail", path, slot).random() < share


def removal_fraction(host: str, path: str) -> float | None:
    """When the hoster removes a live item: multiples of the deadline after first serving it
    (None: never). Deterministic per item, drawn from the hoster's conduct."""
    site = SITES_BY_HOST[host]
    if site.vanishes_at:
        return site.vanishes_at  # the whole domain goes
    conduct = HOSTERS_BY_SLUG[site.hoster].conduct
    rng = _rng("removal", host, path)
    if rng.random() < conduct.never:
        return None
    return rng.lognormvariate(math.log(conduct.median), conduct.sigma)


def _hidden_from(request: web.Request, path: str, conduct: Conduct) -> bool:
    """Selective serving: this item is hidden from the client's source address. Exactly
    `hidden_share` of consecutive item ids are (for 0.5: every odd id), so a demo run's few
    live items always include hidden ones."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    match = _ITEM.search(path)
    if not peer or peer[0] not in conduct.hides_from or match is None:
        return False
    item_id = int(match.group(1))
    return int((item_id + 1) * conduct.hidden_share) != int(item_id * conduct.hidden_share)


@dataclass(frozen=True)
class LiveItem:
    """One row of the live batch: what the hotline reports, and what the sandbox will do."""

    url: str
    reference: str
    content_sha256: str
    hoster: str  # given by the hotline when known from elsewhere (the origin behind a CDN), else ""
    site: str
    removal_fraction: float | None
    mechanism: str  # what removal looks like: 404, 410, placeholder, nxdomain, never


# --- Serving ---------------------------------------------------------------------------------


class SiteBehaviour(Behaviour):
    """The default behaviour of one address's HttpServer: every site on it, by Host header."""

    def __init__(self, world: World, sites: list[Site]) -> None:
        super().__init__()
        self.world = world
        self.sites = {s.host: s for s in sites}

    async def respond(self, request: web.Request) -> web.StreamResponse:
        host = (request.host or "").rsplit(":", 1)[0].lower().rstrip(".")
        site = self.sites.get(host)
        if site is None:
            return web.Response(status=404, text="no such site on this server\n")
        hoster = HOSTERS_BY_SLUG[site.hoster]
        conduct = hoster.conduct
        path = request.path
        kind = item_kind(site, path)
        now = time.time()
        if kind == LIVE and self.world.smtp is None:
            self.world.first_seen(site, path, now)  # without a mail server, the first fetch is the notice
        if conduct.latency_s:
            await asyncio.sleep(conduct.latency_s)
        if conduct.failure_share:
            # Failures come in short spells (one `flaky_spell_s` slot), never two slots in a row, so a
            # flaky server never looks gone; within a slot every request fails alike (a client
            # that retries at once sees the same fault).
            slot = int(now / self.world.flaky_spell_s)
            if _spell(path, slot, conduct.failure_share) and not _spell(path, slot - 1, conduct.failure_share):
                return await self._fail(request, slot)
        if path in ("/", ""):
            return web.Response(text=f"{site.host}: a fictional site of the sandbox internet\n")
        if kind is None:
            return web.Response(status=404, text="not found\n")
        removed = kind == GONE or (kind == LIVE and self.world.is_removed(site, path, now))
        if not removed and conduct.hides_from and _hidden_from(request, path, conduct):
            return web.Response(status=conduct.hidden_status, text="not found\n")
        if not removed:
            return web.Response(body=item_body(site.host, path), content_type="image/jpeg")
        if conduct.removal == "placeholder":
            return web.Response(body=PLACEHOLDER_BODY, content_type="image/png")
        if conduct.removal == "410":
            return web.Response(status=410, text="gone: removed after an abuse report\n")
        return web.Response(status=404, text="not found\n")

    async def _fail(self, request: web.Request, slot: int) -> web.StreamResponse:
        if slot % 2:
            return web.Response(status=503, text="service unavailable, try again later\n")
        transport = request.transport
        if transport is not None:
            import socket
            import struct

            sock = transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST (as httpserver.Reset does)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        return web.Response(status=500)  # never sent


@dataclass
class World:
    """The whole market: one DNS server and one HTTP server per site address."""

    http_port: int = DEFAULT_HTTP_PORT
    dns: tuple[str, int] = DEFAULT_DNS
    deadline_s: float = DEFAULT_LIVE_DEADLINE_S
    flaky_spell_s: float = 1.0  # length of one spell of failures of the flaky hoster
    # The hosters' mail server (host, port): when given, a hoster's clock for an item starts when
    # the notice e-mail naming its URL arrives there, not when the item is first fetched.
    smtp: tuple[str, int] | None = None
    mail_log: list[tuple[float, str, str]] = field(default_factory=list, init=False)  # (at, to, url)
    smtp_controller: object = field(default=None, init=False)
    asn_zone: str = "origin.asn.cymru.com"
    asn_zone6: str = "origin6.asn.cymru.com"
    asn_name_zone: str = "asn.cymru.com"
    dns_server: DNSServer | None = field(default=None, init=False)
    http_servers: dict[str, HttpServer] = field(default_factory=dict, init=False)
    _first_seen: dict[tuple[str, str], float] = field(default_factory=dict, init=False)
    _vanish_timers: dict[str, threading.Timer] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    # --- life cycle ---

    def start(self) -> World:
        self.dns_server = DNSServer(
            self.dns[0],
            self.dns[1],
            asn_zone=self.asn_zone,
            asn_zone6=self.asn_zone6,
            asn_name_zone=self.asn_name_zone,
        )
        self._fill_zone(self.dns_server)
        self.dns_server.start()
        try:
            by_ip: dict[str, list[Site]] = {}
            for site in SITES:
                by_ip.setdefault(site.served_ip, []).append(site)
            for ip, sites in by_ip.items():
                server = HttpServer(ip, self.http_port, default=SiteBehaviour(self, sites), log_requests=False)
                self.http_servers[ip] = server.start()
                self.http_port = server.port  # port 0 asked: every later server takes the same number
            if self.smtp is not None:
                self.smtp_controller = _start_smtp(self, *self.smtp)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for timer in self._vanish_timers.values():
            timer.cancel()
        if self.smtp_controller is not None:
            self.smtp_controller.stop()
            self.smtp_controller = None
        for server in self.http_servers.values():
            server.stop()
        self.http_servers.clear()
        if self.dns_server is not None:
            self.dns_server.stop()
            self.dns_server = None

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def nameserver(self) -> str:
        """`host:port` of the DNS server: the value of `MONITOR_NAMESERVERS`."""
        return f"{self.dns[0]}:{self.dns_server.port if self.dns_server else self.dns[1]}"

    def _fill_zone(self, dns: DNSServer) -> None:
        for site in SITES:
            ttl = VANISHING_TTL if site.vanishes_at else SITE_TTL
            if site.cdn:
                dns.set_cname(site.host, site.edge, ttl=ttl)
                dns.add_a(site.edge, site.edge_ip, ttl=ttl)
            else:
                dns.add_a(site.host, site.ip, ttl=ttl)
        for hoster in HOSTERS:
            for prefix in hoster.prefixes:
                dns.add_origin(prefix, hoster.asn, cc=hoster.country)
            dns.add_as_name(hoster.asn, hoster.as_name, cc=hoster.country)

    # --- the hosters' clocks ---

    def first_seen(self, site: Site, path: str, now: float) -> float:
        """When the site first served this live item (the clock of its hoster starts then)."""
        with self._lock:
            seen = self._first_seen.setdefault((site.host, path), now)
            if site.vanishes_at and site.host not in self._vanish_timers:
                timer = threading.Timer(site.vanishes_at * self.deadline_s, self.vanish, args=[site.host])
                timer.daemon = True
                timer.start()
                self._vanish_timers[site.host] = timer
        return seen

    def vanish(self, host: str) -> None:
        """The domain disappears: NXDOMAIN from now on."""
        if self.dns_server is not None:
            self.dns_server.nxdomain(host)

    def is_removed(self, site: Site, path: str, now: float) -> bool:
        fraction = removal_fraction(site.host, path)
        if fraction is None or site.vanishes_at:
            return False  # a vanishing domain keeps serving until DNS stops pointing at it
        seen = self._first_seen.get((site.host, path))
        return seen is not None and now >= seen + fraction * self.deadline_s

    def notice_received(self, url: str, to: str, now: float) -> None:
        """A notice e-mail for `url` reached the hoster's abuse desk: its clock starts."""
        self.mail_log.append((now, to, url))
        parts = urlsplit(url)
        site = SITES_BY_HOST.get((parts.hostname or "").lower())
        if site is not None and item_kind(site, parts.path) == LIVE:
            self.first_seen(site, parts.path, now)

    # --- what the hotline reports ---

    def live_batch(self, run: str, *, first_id: int = 1) -> list[LiveItem]:
        """The live notices of one demo run: `site.live_items` new items per site.

        Item ids are derived from `run` so that a new run reports new URLs (an open notice for
        the same URL would make the new one a repeat).
        """
        base = first_id + (int(hashlib.sha256(run.encode()).hexdigest()[:6], 16) % 900_000) * 10
        rows: list[LiveItem] = []
        for site in SITES:
            hoster = HOSTERS_BY_SLUG[site.hoster]
            for n in range(site.live_items):
                item_id = base + n
                path = item_path(site, item_id, LIVE)
                fraction = removal_fraction(site.host, path)
                if site.vanishes_at:
                    mechanism = "nxdomain"
                elif fraction is None:
                    mechanism = "never"
                else:
                    mechanism = hoster.conduct.removal
                rows.append(
                    LiveItem(
                        url=url_of(site, path, self.http_port),
                        reference=f"LIVE-{run}-{len(rows) + 1:03d}",
                        content_sha256=item_sha256(site.host, path),
                        hoster=site.hoster if site.cdn else "",
                        site=site.host,
                        removal_fraction=fraction,
                        mechanism=mechanism,
                    )
                )
        return rows


def address_in_market(ip: str) -> MarketHoster | None:
    """The market hoster whose prefix holds `ip` (most specific first), or None."""
    address = ipaddress.ip_address(ip)
    best: tuple[int, MarketHoster] | None = None
    for hoster in HOSTERS:
        for prefix in hoster.prefixes:
            network = ipaddress.ip_network(prefix)
            if address.version == network.version and address in network:
                if best is None or network.prefixlen > best[0]:
                    best = (network.prefixlen, hoster)
    return best[1] if best else None


# --- The hosters' mail server ----------------------------------------------------------------

_NOTICE_URL = re.compile(r"^URL: (\S+)\s*$", re.MULTILINE)


class _AbuseDesks:
    """aiosmtpd handler: every hoster's abuse desk. Accepts everything; a notice e-mail (header
    `X-Takedown-Kind: notice`) starts the clock of the item whose URL it names."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def handle_DATA(self, server, session, envelope):
        import email
        import email.policy

        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        kind = message.get("X-Takedown-Kind", "")
        log.info("%s e-mail to %s: %s", kind or "an", ", ".join(envelope.rcpt_tos), message.get("Subject", ""))
        if kind == "notice":
            body = message.get_body(preferencelist=("plain",))
            match = _NOTICE_URL.search(body.get_content() if body is not None else "")
            if match:
                self.world.notice_received(match.group(1), ", ".join(envelope.rcpt_tos), time.time())
        return "250 OK: the abuse desk has it"


def _start_smtp(world: World, host: str, port: int):
    from aiosmtpd.controller import Controller

    controller = Controller(_AbuseDesks(world), hostname=host, port=port, ready_timeout=10)
    controller.start()
    return controller
