"""A real HTTP server on loopback with scripted behaviour per path, for tests, the benchmark and the demo.

It runs aiohttp.web in a background thread with its own event loop, so synchronous tests (and
the Django code under test) talk to it over real sockets. Nothing here is a mock: the checker
connects, sends, reads and times out exactly as it would against a hoster.

Usage::

    from demo.sandbox.httpserver import HttpServer, ok, status, redirect, reset, slow, large, flap

    with HttpServer() as server:                      # 127.0.0.1, an ephemeral port
        server.set("/a.jpg", ok(b"the reported item"))
        server.set("/gone.jpg", status(404))
        server.set("/flaky.jpg", flap(status(503), ok(b"x")))   # alternates per request
        server.url("/a.jpg")                           # "http://127.0.0.1:<port>/a.jpg"
        server.hits("/a.jpg")                          # requests seen for that path
        server.set("/a.jpg", status(410))             # change the script at runtime

`HttpServer(host="127.10.0.5", port=8080)` binds a given loopback address and port (the demo
builds a fictional hosting market on 127.x addresses). `ssl_context=` serves HTTPS; the SNI names
clients sent are in `server.sni_names`. A path without a script gets `default` (404 unless given).

Behaviours (each a small object with `async respond(request)`; all accept `headers=`):

- `ok(body=b"...", content_type=..., delay_s=0)`: 200 with that body, after `delay_s` (use it for
  placeholders and changed content too: the checker only sees bytes and their SHA-256);
- `status(code, body=b"", delay_s=0)`: any status, e.g. 404, 410, 451, 429, 500, 503;
- `redirect(location, code=302)`: `location` absolute (`http://...`), or a path on this server;
- `reset()`: the connection is reset (RST) before any response;
- `hang()`: accepts and never answers;
- `slow(body, delay_s)`: headers at once, then the body one chunk per `delay_s` seconds;
- `large(size)`: a 200 body of `size` bytes, streamed (for the checker's byte cap);
- `sequence(a, b, ...)`: one behaviour per request in turn, the last one repeating;
- `flap(a, b, ...)`: the same, cycling forever;
- `by_source({"127.0.0.2": status(404)}, default=ok(body))`: per client (source) address, for a
  hoster that hides content from one vantage point and serves it to the others.

`server.requests` lists every request seen (`path`, `host` header, `user_agent`, `peer`, `at`);
`server.max_in_flight(path)` is the most requests for a path it handled at once.

Run standalone (the benchmark does, in a process of its own)::

    python -m demo.sandbox.httpserver --bind 127.0.0.1:0 --body hello
    # prints "listening http://127.0.0.1:<port>" and answers every path with 200 "hello"
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Behaviour:
    headers: dict[str, str] = field(default_factory=dict)

    async def respond(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError


@dataclass
class Ok(Behaviour):
    body: bytes = b"content"
    code: int = 200
    content_type: str = "application/octet-stream"
    delay_s: float = 0.0

    async def respond(self, request):
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.Response(body=self.body, status=self.code, content_type=self.content_type, headers=self.headers)


@dataclass
class Redirect(Behaviour):
    location: str = "/"
    code: int = 302

    async def respond(self, request):
        location = self.location
        if location.startswith("/"):
            location = f"{request.scheme}://{request.host}{location}"
        return web.Response(status=self.code, headers={**self.headers, "Location": location})


@dataclass
class Reset(Behaviour):
    async def respond(self, request):
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        return web.Response(status=500)  # never sent: the transport is gone


@dataclass
class Hang(Behaviour):
    async def respond(self, request):
        for _ in range(36000):  # until the client gives up (or an hour)
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            await asyncio.sleep(0.1)
        return web.Response(status=500)  # never sent: the client is gone


@dataclass
class Slow(Behaviour):
    body: bytes = b"slow content"
    delay_s: float = 1.0
    chunk: int = 1

    async def respond(self, request):
        response = web.StreamResponse(status=200, headers=self.headers)
        response.content_length = len(self.body)
        await response.prepare(request)
        try:
            for i in range(0, len(self.body), self.chunk):
                await asyncio.sleep(self.delay_s)
                await response.write(self.body[i : i + self.chunk])
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client gave up at its timeout
        return response


@dataclass
class Large(Behaviour):
    size: int = 32 * 1024 * 1024

    async def respond(self, request):
        response = web.StreamResponse(status=200, headers=self.headers)
        response.content_length = self.size
        await response.prepare(request)
        block = b"\0" * 65536
        sent = 0
        try:
            while sent < self.size:
                n = min(len(block), self.size - sent)
                await response.write(block[:n])
                sent += n
        except (ConnectionResetError, ConnectionError):
            pass  # the checker hung up at its byte cap: that is the point
        return response


@dataclass
class Sequence(Behaviour):
    steps: tuple[Behaviour, ...] = ()
    cycle: bool = False
    _iter: object = None
    _last: Behaviour | None = None

    def __post_init__(self):
        self._iter = itertools.cycle(self.steps) if self.cycle else iter(self.steps)

    async def respond(self, request):
        step = next(self._iter, None)  # type: ignore[call-overload]
        if step is None:
            step = self._last
        self._last = step
        return await step.respond(request)


def ok(
    body: bytes = b"content", *, content_type: str = "application/octet-stream", delay_s: float = 0.0, headers=None
) -> Ok:
    return Ok(body=body, content_type=content_type, delay_s=delay_s, headers=headers or {})


def status(code: int, body: bytes = b"", *, delay_s: float = 0.0, headers=None) -> Ok:
    return Ok(body=body, code=code, content_type="text/plain", delay_s=delay_s, headers=headers or {})


def redirect(location: str, code: int = 302, *, headers=None) -> Redirect:
    return Redirect(location=location, code=code, headers=headers or {})


def reset() -> Reset:
    return Reset()


def hang() -> Hang:
    return Hang()


def slow(body: bytes = b"slow content", delay_s: float = 1.0, *, chunk: int = 1) -> Slow:
    return Slow(body=body, delay_s=delay_s, chunk=chunk)


@dataclass
class BySource(Behaviour):
    """Per client address: a hoster that serves content to some networks and not to others."""

    by_peer: dict[str, Behaviour] = field(default_factory=dict)
    default: Behaviour | None = None

    async def respond(self, request):
        peer = request.transport.get_extra_info("peername") if request.transport else None
        behaviour = self.by_peer.get(peer[0] if peer else "", self.default) or Ok(code=404, body=b"")
        return await behaviour.respond(request)


def by_source(by_peer: dict[str, Behaviour], *, default: Behaviour | None = None) -> BySource:
    return BySource(by_peer=dict(by_peer), default=default)


def large(size: int) -> Large:
    return Large(size=size)


def sequence(*steps: Behaviour) -> Sequence:
    return Sequence(steps=steps)


def flap(*steps: Behaviour) -> Sequence:
    return Sequence(steps=steps, cycle=True)


@dataclass(frozen=True)
class SeenRequest:
    path: str
    host: str
    user_agent: str
    peer: str
    at: float


class HttpServer:
    """See the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        default: Behaviour | None = None,
        ssl_context: ssl.SSLContext | None = None,
        log_requests: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.default = default or status(404)
        self.ssl_context = ssl_context
        self.log_requests = log_requests
        self.scripts: dict[str, Behaviour] = {}
        self.requests: list[SeenRequest] = []
        self.sni_names: list[str | None] = []
        self._counts: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._max_in_flight: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- scripting ---------------------------------------------------------------------------

    def set(self, path: str, behaviour: Behaviour) -> str:
        """Script a path (replacing its script); returns its URL."""
        self.scripts[path] = behaviour
        return self.url(path)

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        scheme = "https" if self.ssl_context else "http"
        name = host or self.host
        if ":" in name:
            name = f"[{name}]"
        return f"{scheme}://{name}:{self.port}{path}"

    def hits(self, path: str) -> int:
        """Requests seen for `path` ("/p?q" exactly; "/p" with any query string)."""
        return self._counts[path]

    def clear_log(self) -> None:
        self.requests.clear()
        self._counts.clear()
        self._max_in_flight.clear()

    def max_in_flight(self, path: str) -> int:
        """The most requests for `path` handled at once (since `clear_log()`)."""
        return self._max_in_flight[path]

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self._run, name=f"httpserver-{self.host}", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._startup())
        except BaseException as exc:  # surfaced in start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _startup(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        if self.ssl_context is not None:
            self.ssl_context.sni_callback = self._record_sni
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context, reuse_address=True)
        await site.start()
        sockets = site._server.sockets  # the bound port when port 0 was asked for
        self.port = sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _record_sni(self, ssl_object, server_name, context) -> None:
        self.sni_names.append(server_name)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path_qs if request.query_string else request.path
        self._counts[path] += 1
        if path != request.path:
            self._counts[request.path] += 1  # hits("/p") counts "/p?1", "/p?2", ... too
        if self.log_requests:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.requests.append(
                SeenRequest(
                    path=path,
                    host=request.headers.get("Host", ""),
                    user_agent=request.headers.get("User-Agent", ""),
                    peer=peer[0] if peer else "",
                    at=time.time(),
                )
            )
        behaviour = self.scripts.get(path) or self.scripts.get(request.path) or self.default
        self._in_flight[path] += 1
        self._max_in_flight[path] = max(self._max_in_flight[path], self._in_flight[path])
        try:
            return await behaviour.respond(request)
        finally:
            self._in_flight[path] -= 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve 200 with a fixed body on every path (benchmark, demo).")
    parser.add_argument("--bind", action="append", default=[], help="host:port (repeatable); default 127.0.0.1:0")
    parser.add_argument("--body", default="content", help="the body of every response")
    args = parser.parse_args(argv)
    servers = []
    for bind in args.bind or ["127.0.0.1:0"]:
        host, _sep, port = bind.rpartition(":")
        server = HttpServer(host.strip("[]"), int(port), default=ok(args.body.encode()), log_requests=False).start()
        servers.append(server)
        print(f"listening {server.url('')}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
