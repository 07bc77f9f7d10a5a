"""A real DNS server on loopback whose zone tests (and the demo) change at run time.

It answers every name it is asked about (it plays the whole DNS: root, recursive resolver and
authoritative servers at once), over UDP and TCP on the same port, from an in-memory zone that
any thread may change while it runs. Built on dnslib for the wire format and `socketserver`.

    from demo.sandbox.dnsserver import DNSServer

    with DNSServer() as dns:                       # 127.0.0.1, an ephemeral port, UDP + TCP
        dns.add_a("files.example", "127.10.0.5", ttl=60)
        dns.add_aaaa("files.example", "2001:db8:10::5")
        dns.set_cname("www.example", "files.example")
        dns.add_txt("note.example", "hello")
        dns.nxdomain("gone.example")               # NXDOMAIN even if it has records
        dns.servfail("broken.example")             # SERVFAIL
        dns.drop("blackhole.example")              # never answers (the query is dropped)
        dns.delay("slow.example", 0.5)             # answers, late
        dns.rotate("rebind.example", "A", [["203.0.113.7"], ["127.0.0.1"]], ttl=0)  # answer n, then n+1...
        dns.add_origin("127.10.0.0/16", 64500, cc="NL")          # Team Cymru origin TXT for every IP in it
        dns.add_as_name(64500, "PROMPT-AS Prompt Hosting, NL", cc="NL")
        settings.MONITOR_NAMESERVERS = [dns.address]             # ("127.0.0.1", port)

Semantics (those of a real recursive resolver's answers):
- a name with records of other types only, or with names below it: NOERROR with no data;
- a name nobody added: NXDOMAIN (`unknown="nxdomain"`; also "servfail", "drop" or "refused");
- a CNAME is followed inside the zone, the whole chain in the answer; a chain into an NXDOMAIN name
  answers NXDOMAIN with the CNAMEs (RFC 6604), into a SERVFAIL/dropped name fails the same way;
- `*.example` records answer for any name below `example` that has no records of its own;
- behaviours (nxdomain/servfail/drop/refused/delay) given with `subtree=True` cover every name below;
- an answer larger than the UDP limit (512, or the EDNS size the client offers) is sent truncated
  (TC), so the client retries over TCP. `tcp_only=True` truncates every UDP answer.
- negative answers carry a root SOA whose minimum is `negative_ttl` (what resolvers cache them for).

Team Cymru's zones (defaults as `settings.MONITOR_ASN_ZONE*`) are answered from prefix data:
`add_origin(prefix, asns)` makes `<reversed IPv4>.<asn_zone>` / `<IPv6 nibbles>.<asn_zone6>` answer
`"ASN [ASN...] | prefix | CC | registry | date"` for every address inside the prefix, one TXT
record per covering prefix, as the real service does; `add_as_name` answers
`AS64500.<asn_name_zone>` with `"64500 | CC | registry | date | NAME"`. Records added explicitly
with `add_txt` on such a name take precedence. `python -m demo.sandbox.dnsserver --help` runs it
stand-alone from a JSON zone file.

`queries` lists what was asked: `(name, type, protocol)` tuples, newest last (bounded);
`query_count` and `query_types` (a Counter by type) count every query.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import socketserver
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, SOA, TXT, A, DNSError, DNSRecord

Behaviour = str  # "nxdomain" | "servfail" | "drop" | "refused"
BEHAVIOURS = ("nxdomain", "servfail", "drop", "refused")
RTYPES = ("A", "AAAA", "CNAME", "TXT")
MAX_CNAME_CHAIN = 16


def _norm(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    if not name:
        raise ValueError("empty DNS name")
    return name


def reverse_name_v4(ip: str, zone: str) -> str:
    """`1.2.3.4` -> `4.3.2.1.<zone>` (Team Cymru's IPv4 origin format)."""
    return ".".join(reversed(str(ipaddress.IPv4Address(ip)).split("."))) + "." + _norm(zone)


def reverse_name_v6(ip: str, zone: str) -> str:
    """`2001:db8::1` -> 32 nibbles, least significant first, `.<zone>` (Team Cymru's IPv6 format)."""
    nibbles = ipaddress.IPv6Address(ip).exploded.replace(":", "")
    return ".".join(reversed(nibbles)) + "." + _norm(zone)


def _ip_from_reverse(labels: list[str], version: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a Team Cymru query name stands for; shortened names are padded with zeros."""
    try:
        if version == 4:
            if not 1 <= len(labels) <= 4:
                return None
            octets = list(reversed(labels)) + ["0"] * (4 - len(labels))
            return ipaddress.IPv4Address(".".join(str(int(o)) for o in octets))
        if not 1 <= len(labels) <= 32 or any(len(x) != 1 for x in labels):
            return None
        nibbles = "".join(reversed(labels)).ljust(32, "0")
        return ipaddress.IPv6Address(int(nibbles, 16))
    except ValueError:
        return None


@dataclass
class _Origin:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    text: str
    ttl: int


@dataclass
class _Rotation:
    answers: list[list[str]]
    ttl: int
    served: int = 0


@dataclass
class _Zone:
    records: dict[str, dict[str, list[tuple[str, int]]]] = field(default_factory=dict)
    rotations: dict[tuple[str, str], _Rotation] = field(default_factory=dict)
    behaviours: dict[str, tuple] = field(default_factory=dict)  # name -> (what, subtree, type or None)
    delays: dict[str, tuple[float, bool]] = field(default_factory=dict)
    origins: list[_Origin] = field(default_factory=list)
    as_names: dict[int, tuple[str, int]] = field(default_factory=dict)
    ancestors: dict[str, int] = field(default_factory=dict)  # names that exist because names below them do


class DNSServer:
    """A DNS server on `host:port` (UDP and TCP) answering from a zone changed at run time.

    Thread-safe: every zone change and every answer takes one lock. `port=0` picks a free port
    (the same number for UDP and TCP). Use `start()`/`stop()` or `with DNSServer() as dns:`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        asn_zone: str = "origin.asn.cymru.com",
        asn_zone6: str = "origin6.asn.cymru.com",
        asn_name_zone: str = "asn.cymru.com",
        unknown: Behaviour = "nxdomain",
        negative_ttl: int = 30,
        tcp_only: bool = False,
        query_log_size: int = 100_000,
    ) -> None:
        if unknown not in BEHAVIOURS:
            raise ValueError(f"unknown must be one of {BEHAVIOURS}")
        self.host, self._requested_port = host, port
        self.asn_zone, self.asn_zone6, self.asn_name_zone = _norm(asn_zone), _norm(asn_zone6), _norm(asn_name_zone)
        self.unknown = unknown
        self.negative_ttl = negative_ttl
        self.tcp_only = tcp_only
        self._lock = threading.RLock()
        self._zone = _Zone()
        self.queries: deque[tuple[str, str, str]] = deque(maxlen=query_log_size)
        self.query_count = 0
        self.query_types: Counter[str] = Counter()  # queries per type, never truncated
        self._udp: socketserver.UDPServer | None = None
        self._tcp: socketserver.TCPServer | None = None
        self._threads: list[threading.Thread] = []

    # --- Life cycle ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._udp is None:
            raise RuntimeError("the DNS server is not started")
        return self._udp.server_address[1]

    @property
    def address(self) -> tuple[str, int]:
        """`(host, port)`: the form of `settings.MONITOR_NAMESERVERS` entries."""
        return (self.host, self.port)

    @property
    def nameserver(self) -> str:
        """`host:port` (`[v6]:port`): the form of the `MONITOR_NAMESERVERS` environment variable."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self) -> DNSServer:
        if self._udp is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server = self

        class UDP(socketserver.UDPServer):
            # One thread answers every UDP query in turn (a thread per query is slower and drops
            # queries under load); a delayed answer is sent later by a timer thread.
            address_family = family
            allow_reuse_address = True

            def server_bind(self):
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
                super().server_bind()

        class TCP(socketserver.ThreadingTCPServer):
            address_family = family
            allow_reuse_address = True
            daemon_threads = True

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                reply, delay = server._answer(data, "udp")
                if reply is None:
                    return
                if delay:
                    timer = threading.Timer(delay, sock.sendto, args=(reply, self.client_address))
                    timer.daemon = True
                    timer.start()
                else:
                    sock.sendto(reply, self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                conn = self.request
                conn.settimeout(10)
                try:
                    while True:  # several queries may share one connection
                        head = _recv_exact(conn, 2)
                        if head is None:
                            return
                        data = _recv_exact(conn, struct.unpack("!H", head)[0])
                        if data is None:
                            return
                        reply, delay = server._answer(data, "tcp")
                        if reply is None:
                            continue  # dropped: the client times out
                        if delay:
                            time.sleep(delay)  # a thread per TCP connection
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

        # UDP first (port 0 picks one), then TCP on the same number; retry if TCP's is taken.
        for _attempt in range(20):
            udp = UDP((self.host, self._requested_port), UDPHandler)
            try:
                tcp = TCP((self.host, udp.server_address[1]), TCPHandler)
            except OSError:
                udp.server_close()
                if self._requested_port:
                    raise
                continue
            break
        else:
            raise OSError(f"no port free for both UDP and TCP on {self.host}")
        self._udp, self._tcp = udp, tcp
        for srv, name in ((udp, "udp"), (tcp, "tcp")):
            thread = threading.Thread(
                target=srv.serve_forever, kwargs={"poll_interval": 0.05}, name=f"dns-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for srv in (self._udp, self._tcp):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._udp = self._tcp = None
        self._threads = []

    def __enter__(self) -> DNSServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- Changing the zone ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every record, behaviour, origin and AS name, and the query log."""
        with self._lock:
            self._zone = _Zone()
            self.queries.clear()
            self.query_count = 0
            self.query_types.clear()

    def add(self, name: str, rtype: str, value: str, ttl: int = 300) -> None:
        """Add one record. Values: A/AAAA an address, CNAME a name, TXT a string."""
        name, rtype = _norm(name), rtype.upper()
        value = self._check_value(rtype, value)
        with self._lock:
            rrsets = self._zone.records.get(name)
            if rrsets is None:
                rrsets = self._zone.records[name] = {}
                self._add_ancestors(name, +1)
            if rtype == "CNAME" and any(t != "CNAME" for t in rrsets) or rtype != "CNAME" and "CNAME" in rrsets:
                raise ValueError(f"{name}: a CNAME cannot live beside other records")
            if rtype == "CNAME":
                rrsets["CNAME"] = [(value, ttl)]  # one CNAME per name
            else:
                rrsets.setdefault(rtype, []).append((value, ttl))

    def set(self, name: str, rtype: str, values: Iterable[str], ttl: int = 300) -> None:
        """Replace the records of one type of a name (an empty list removes them)."""
        name, rtype = _norm(name), rtype.upper()
        values = [self._check_value(rtype, v) for v in values]
        with self._lock:
            self.remove(name, rtype)
            for value in values:
                self.add(name, rtype, value, ttl)

    def remove(self, name: str, rtype: str | None = None) -> None:
        """Remove a name's records of one type, or all its records (and rotations)."""
        name = _norm(name)
        with self._lock:
            rrsets = self._zone.records.get(name)
            for key in [k for k in self._zone.rotations if k[0] == name and (rtype is None or k[1] == rtype.upper())]:
                del self._zone.rotations[key]
            if rrsets is None:
                return
            if rtype is None:
                rrsets.clear()
            else:
                rrsets.pop(rtype.upper(), None)
            if not rrsets:
                del self._zone.records[name]
                self._add_ancestors(name, -1)

    def add_a(self, name: str, *ips: str, ttl: int = 300) -> None:
        for ip in ips:
            self.add(name, "A", ip, ttl)

    def add_aaaa(self, name: str, *ips: str, ttl: int = 300) -> None:
        for ip in ips:
            self.add(name, "AAAA", ip, ttl)

    def add_host(self, name: str, *ips: str, ttl: int = 300) -> None:
        """A and AAAA records by address family."""
        for ip in ips:
            self.add(name, "AAAA" if ":" in ip else "A", ip, ttl)

    def set_cname(self, name: str, target: str, ttl: int = 300) -> None:
        self.set(name, "CNAME", [target], ttl)

    def add_txt(self, name: str, *texts: str, ttl: int = 300) -> None:
        for text in texts:
            self.add(name, "TXT", text, ttl)

    def rotate(self, name: str, rtype: str, answers: list[list[str]], ttl: int = 0) -> None:
        """Answer the n-th query for (name, type) with `answers[n]`; the last one sticks.

        For DNS rebinding tests: `rotate("evil.example", "A", [["203.0.113.7"], ["127.0.0.1"]])`.
        Takes precedence over records of that type added with `add`.
        """
        name, rtype = _norm(name), rtype.upper()
        answers = [[self._check_value(rtype, v) for v in answer] for answer in answers]
        if not answers:
            raise ValueError("rotate needs at least one answer")
        with self._lock:
            if name not in self._zone.records:
                self._zone.records[name] = {}
                self._add_ancestors(name, +1)
            self._zone.rotations[(name, rtype)] = _Rotation(answers, ttl)

    def set_behaviour(
        self, name: str, behaviour: Behaviour | None, *, subtree: bool = False, rtype: str | None = None
    ) -> None:
        """Make a name (with `subtree`, every name below it too) answer NXDOMAIN, SERVFAIL,
        REFUSED or nothing at all ("drop"), for queries of every type or of `rtype` only;
        `None` restores normal answers."""
        name = _norm(name)
        if behaviour is not None and behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {BEHAVIOURS} or None")
        with self._lock:
            if behaviour is None:
                self._zone.behaviours.pop(name, None)
            else:
                self._zone.behaviours[name] = (behaviour, subtree, rtype.upper() if rtype else None)

    def nxdomain(self, name: str, *, subtree: bool = False) -> None:
        self.set_behaviour(name, "nxdomain", subtree=subtree)

    def servfail(self, name: str, *, subtree: bool = False, rtype: str | None = None) -> None:
        self.set_behaviour(name, "servfail", subtree=subtree, rtype=rtype)

    def drop(self, name: str, *, subtree: bool = False, rtype: str | None = None) -> None:
        """Never answer queries for the name: the client times out."""
        self.set_behaviour(name, "drop", subtree=subtree, rtype=rtype)

    def delay(self, name: str, seconds: float | None, *, subtree: bool = False) -> None:
        """Answer queries for the name only after `seconds` (None: no delay)."""
        name = _norm(name)
        with self._lock:
            if seconds is None:
                self._zone.delays.pop(name, None)
            else:
                self._zone.delays[name] = (float(seconds), subtree)

    def add_origin(
        self,
        prefix: str,
        asns: int | Iterable[int],
        *,
        cc: str = "ZZ",
        registry: str = "ripencc",
        allocated: str = "2010-01-01",
        ttl: int = 300,
    ) -> str:
        """Announce `prefix` from `asns` in Team Cymru's origin format; returns the TXT text.

        Every address inside the prefix answers, one TXT record per covering prefix (so a /24
        inside a /16 gives two records, as routed more-specifics do on the real service).
        """
        network = ipaddress.ip_network(prefix, strict=False)
        asn_list = [asns] if isinstance(asns, int) else list(asns)
        text = f"{' '.join(str(a) for a in asn_list)} | {network} | {cc} | {registry} | {allocated}"
        with self._lock:
            self._zone.origins.append(_Origin(network, text, ttl))
        return text

    def add_as_name(
        self,
        asn: int,
        name: str,
        *,
        cc: str = "ZZ",
        registry: str = "ripencc",
        allocated: str = "2010-01-01",
        ttl: int = 300,
    ) -> str:
        """`AS<asn>.<asn_name_zone>` answers `"ASN | CC | registry | date | NAME"`; returns the text."""
        text = f"{asn} | {cc} | {registry} | {allocated} | {name}"
        with self._lock:
            self._zone.as_names[int(asn)] = (text, ttl)
        return text

    def origin_name(self, ip: str) -> str:
        """The query name of an address in the origin zones (IPv4 reversed octets, IPv6 nibbles)."""
        address = ipaddress.ip_address(ip)
        if address.version == 4:
            return reverse_name_v4(ip, self.asn_zone)
        return reverse_name_v6(ip, self.asn_zone6)

    def queried(self, name: str, rtype: str | None = None) -> int:
        """How many queries for the name (and type) arrived."""
        name = _norm(name)
        with self._lock:
            return sum(1 for n, t, _p in self.queries if n == name and (rtype is None or t == rtype.upper()))

    # --- Answering -----------------------------------------------------------------------------

    @staticmethod
    def _check_value(rtype: str, value: str) -> str:
        if rtype == "A":
            return str(ipaddress.IPv4Address(value))
        if rtype == "AAAA":
            return str(ipaddress.IPv6Address(value))
        if rtype == "CNAME":
            return _norm(value)
        if rtype == "TXT":
            return str(value)
        raise ValueError(f"record type {rtype!r} is not supported (use one of {RTYPES})")

    def _add_ancestors(self, name: str, delta: int) -> None:
        labels = name.split(".")
        for i in range(1, len(labels)):
            parent = ".".join(labels[i:])
            count = self._zone.ancestors.get(parent, 0) + delta
            if count > 0:
                self._zone.ancestors[parent] = count
            else:
                self._zone.ancestors.pop(parent, None)

    def _inherited(self, table: dict, name: str, qtype: str | None = None):
        """The entry for name itself, or for the nearest ancestor marked as covering its subtree
        (entries limited to one query type apply to that type only)."""
        labels = name.split(".")
        for i in range(len(labels)):
            entry = table.get(".".join(labels[i:]))
            if entry is None or (i and not entry[1]):
                continue
            if len(entry) > 2 and entry[2] is not None and entry[2] != qtype:
                continue
            return entry[0]
        return None

    def _answer(self, data: bytes, proto: str) -> tuple[bytes | None, float]:
        """Wire-format answer to one query (None: drop it), and how long to hold it back."""
        try:
            request = DNSRecord.parse(data)
        except (DNSError, Exception):  # noqa: BLE001 (garbage on the wire is not our problem)
            return None, 0.0
        if not request.questions:
            return None, 0.0
        question = request.questions[0]
        qname = _norm(str(question.qname)) if str(question.qname) not in (".", "") else "."
        qtype = QTYPE.get(question.qtype, str(question.qtype))
        delay = 0.0
        with self._lock:
            self.queries.append((qname, str(qtype), proto))
            self.query_count += 1
            self.query_types[str(qtype)] += 1
            reply = request.reply(ra=1, aa=0)
            outcome = self._resolve_into(reply, qname, str(qtype))
            if outcome != "drop" and qname != ".":
                delay = self._inherited(self._zone.delays, qname) or 0.0
        if outcome == "drop":
            return None, 0.0
        if outcome in ("nxdomain", "nodata"):
            reply.add_auth(
                RR(
                    ".",
                    QTYPE.SOA,
                    ttl=self.negative_ttl,
                    rdata=SOA("ns.sandbox.", "hostmaster.sandbox.", (1, 3600, 600, 86400, self.negative_ttl)),
                )
            )
        wire = reply.pack()
        if proto == "udp":
            limit = 512
            for rr in request.ar:
                if rr.rtype == QTYPE.OPT:
                    limit = max(512, rr.rclass)
            if self.tcp_only or len(wire) > limit:
                truncated = request.reply(ra=1, aa=0)
                truncated.header.tc = 1
                wire = truncated.pack()
        return wire, delay

    def _resolve_into(self, reply: DNSRecord, qname: str, qtype: str) -> str:
        """Fill `reply` for qname/qtype, following CNAMEs. Returns "answer", "nodata", "nxdomain",
        "servfail", "refused" or "drop" (caller holds the lock)."""
        name = qname
        for _hop in range(MAX_CNAME_CHAIN):
            behaviour = self._inherited(self._zone.behaviours, name, qtype) if name != "." else None
            if behaviour == "drop":
                return "drop"
            if behaviour == "servfail":
                reply.header.rcode = RCODE.SERVFAIL
                reply.rr = []
                return "servfail"
            if behaviour == "refused":
                reply.header.rcode = RCODE.REFUSED
                reply.rr = []
                return "refused"
            if behaviour == "nxdomain":
                reply.header.rcode = RCODE.NXDOMAIN
                return "nxdomain"

            rrsets = self._zone.records.get(name)
            if rrsets is None and name not in self._zone.ancestors:
                rrsets = self._wildcard(name)
            synthetic = self._cymru(name, qtype) if qtype in ("TXT", "ANY") else None
            if rrsets is None and synthetic is None and name not in self._zone.ancestors:
                if self._is_under_cymru(name):
                    reply.header.rcode = RCODE.NXDOMAIN
                    return "nxdomain"
                if self.unknown == "drop":
                    return "drop"
                reply.header.rcode = getattr(RCODE, self.unknown.upper())
                return "nxdomain" if self.unknown == "nxdomain" else self.unknown
            rrsets = rrsets or {}

            if "CNAME" in rrsets and qtype != "CNAME":
                target, ttl = rrsets["CNAME"][0]
                reply.add_answer(RR(name, QTYPE.CNAME, ttl=ttl, rdata=CNAME(target)))
                name = target
                continue

            records = self._records(name, qtype, rrsets)
            if qtype == "TXT" and not records.get("TXT") and synthetic:
                records = {"TXT": synthetic}
            added = False
            for rtype, values in records.items():
                for value, ttl in values:
                    reply.add_answer(RR(name, getattr(QTYPE, rtype), ttl=ttl, rdata=_rdata(rtype, value)))
                    added = True
            return "answer" if added else "nodata"
        reply.header.rcode = RCODE.SERVFAIL  # a CNAME loop
        reply.rr = []
        return "servfail"

    def _records(self, name: str, qtype: str, rrsets: dict) -> dict[str, list[tuple[str, int]]]:
        types = RTYPES if qtype == "ANY" else (qtype,)
        out = {}
        for rtype in types:
            rotation = self._zone.rotations.get((name, rtype))
            if rotation is not None:
                answer = rotation.answers[min(rotation.served, len(rotation.answers) - 1)]
                rotation.served += 1
                out[rtype] = [(v, rotation.ttl) for v in answer]
            elif rtype in rrsets:
                out[rtype] = list(rrsets[rtype])
        return out

    def _wildcard(self, name: str) -> dict | None:
        labels = name.split(".")
        for i in range(1, len(labels)):
            rrsets = self._zone.records.get("*." + ".".join(labels[i:]))
            if rrsets is not None:
                return rrsets
        return None

    def _is_under_cymru(self, name: str) -> bool:
        return any(name.endswith("." + z) for z in (self.asn_zone, self.asn_zone6, self.asn_name_zone))

    def _cymru(self, name: str, qtype: str) -> list[tuple[str, int]] | None:
        """TXT records synthesised from origins and AS names, or None if the name isn't one."""
        for zone, version in ((self.asn_zone, 4), (self.asn_zone6, 6)):
            if name.endswith("." + zone):
                address = _ip_from_reverse(name[: -len(zone) - 1].split("."), version)
                if address is None:
                    return None
                matches = [
                    o for o in self._zone.origins if address.version == o.network.version and address in o.network
                ]
                matches.sort(key=lambda o: o.network.prefixlen)
                return [(o.text, o.ttl) for o in matches] or None
        if name.endswith("." + self.asn_name_zone):
            label = name[: -len(self.asn_name_zone) - 1]
            if label.startswith("as") and label[2:].isdigit():
                entry = self._zone.as_names.get(int(label[2:]))
                return [entry] if entry else None
        return None


def _rdata(rtype: str, value: str):
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "CNAME":
        return CNAME(value)
    data = value.encode()
    return TXT([data[i : i + 255] for i in range(0, len(data), 255)] or [b""])


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    buf = b""
    while len(buf) < size:
        chunk = conn.recv(size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


# --- Stand-alone -------------------------------------------------------------------------------


def load_zone(server: DNSServer, spec: dict) -> None:
    """Fill a server from a JSON-able dict:

    {"records": [["files.example", "A", "127.10.0.5", 300], ["www.example", "CNAME", "files.example"]],
     "behaviours": [["gone.example", "nxdomain"], ["broken.example", "servfail", true]],
     "origins": [["127.10.0.0/16", [64500], "NL", "ripencc"]],
     "as_names": [[64500, "PROMPT-AS Prompt Hosting, NL", "NL", "ripencc"]]}
    """
    for rec in spec.get("records", []):
        server.add(rec[0], rec[1], rec[2], *(rec[3:4] or [300]))
    for beh in spec.get("behaviours", []):
        server.set_behaviour(beh[0], beh[1], subtree=bool(beh[2]) if len(beh) > 2 else False)
    for org in spec.get("origins", []):
        server.add_origin(org[0], org[1], **dict(zip(("cc", "registry"), org[2:4], strict=False)))
    for asn in spec.get("as_names", []):
        server.add_as_name(asn[0], asn[1], **dict(zip(("cc", "registry"), asn[2:4], strict=False)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the sandbox DNS server (loopback only) from a JSON zone.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--zone", help="JSON zone file (see load_zone)")
    args = parser.parse_args(argv)
    server = DNSServer(args.host, args.port)
    if args.zone:
        with open(args.zone) as f:
            load_zone(server, json.load(f))
    server.start()
    print(f"MONITOR_NAMESERVERS={server.nameserver}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
