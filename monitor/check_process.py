"""The check process: the checks of runmonitor's batches run in a child process of their own.

A check is network work in aiohttp, and each costs a few hundred microseconds of Python; the
batch's database work (claim, classify, record) costs about a hundred more per check. In one
process both share one GIL, so the monitor used one core while the machine has more: measured on
the benchmark machine, the process was busy nearly all the time and the check thread waited for
the database thread's Python and the other way round. With the checks in a process of their
own, the two run in parallel (bench/README.md has the figures).

The child (`python -m monitor.check_process FD`) never touches the database, has none of the monitor's
secrets in its environment (no DATABASE_URL, SECRET_KEY, EMAIL_URL) and never gets a body to keep:
it runs monitor/check_client.py's `CheckClient` (every SSRF rule is there) and sends back `Observation`s,
which carry no body. It is started on the first batch and kept for the life of the monitor
process, so its client (its connections, their TLS contexts) and its DNS cache serve many batches.
One per monitor process; the check drain (check_drain.py) uses it through `batch()`:

    with check_process.batch() as checks:    # sends the monitor's settings, as they are now
        checks.submit(claimed, start_by=...)  # notices (check_drain.Claimed) to check
        done = checks.finished(at_least=10, wait=True)   # [(claimed, Observation | None), ...]

Messages (pickled, over a socket pair; multiprocessing.connection framing):
- to the child: `("config", batch, settings, dns_generation)` at the start of each batch: the
  `MONITOR_*` settings (tests change them) and whether the DNS cache was cleared since; the child
  answers `(batch, "ready")` once its client is up, and the batch claims nothing before that;
  `("check", batch, [(notice_id, url, start_by, vantage), ...])`, each checked by the client of
  its local vantage (monitor/vantages.py: its source address and resolvers; one client per local
  vantage, `MONITOR_BROKER_URL` is never sent); `("cancel", batch)` for a batch given up;
- to the parent: `(batch, [(notice_id, observation), ...])` as checks finish, several at once.

Lifetime and signals: the child ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process
group): the parent decides when the checks stop, finishing the batch in flight as it does without
a child. The child exits when its socket closes: the parent exited or was killed (`kill -9`
included), so it never outlives the monitor. If the child dies, the batch in flight fails like any
batch whose checks failed (its notices stay leased until the lease expires, then are due again:
nothing is lost) and the next batch starts a new child.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

log = logging.getLogger("monitor.check_process")

ROOT = Path(__file__).resolve().parent.parent
# A client lives across batches; it is renewed after this many checks (at a batch's start, when
# none is in flight), so what it remembers per host and per address stays bounded.
CLIENT_MAX_CHECKS = 100_000
START_TIMEOUT_S = 60.0  # for the child to start (imports) and open its client


# --- The parent's side ---------------------------------------------------------------------------

_lock = threading.Lock()
_process: CheckProcess | None = None


def batch() -> CheckBatch:
    """The check process's next batch (a context manager); starts the process if there is none."""
    global _process
    with _lock:
        if _process is None or not _process.is_alive():
            if _process is not None:
                _process.close()
            _process = CheckProcess()
        return CheckBatch(_process)


def stop() -> None:
    """Stop the check process, if there is one (at exit it stops by itself)."""
    global _process
    with _lock:
        if _process is not None:
            _process.close()
            _process = None


class CheckProcess:
    """The child process and the thread that reads its results."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor.check_process", str(theirs.fileno())],
                cwd=ROOT,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=_child_environment(),
            )
        finally:
            theirs.close()
        # The socket object stays ours for `shutdown`: closing a descriptor that the reader thread
        # is blocked on would neither wake the reader nor tell the child.
        self.sock = mine
        self.conn = Connection(os.dup(mine.fileno()))
        self.send_lock = threading.Lock()
        self.batch_lock = threading.Lock()  # one batch at a time
        self.current: CheckBatch | None = None
        self.dead = threading.Event()
        self.reader = threading.Thread(target=self._read, name="monitor-check-results", daemon=True)
        self.reader.start()
        atexit.register(self.close)

    def is_alive(self) -> bool:
        return not self.dead.is_set() and self.proc.poll() is None

    def send(self, message: tuple) -> None:
        try:
            with self.send_lock:
                self.conn.send(message)
        except OSError as exc:
            self.dead.set()
            raise RuntimeError("the check process is gone") from exc

    def _read(self) -> None:
        try:
            while True:
                batch_id, results = self.conn.recv()
                current = self.current
                if current is not None and current.id == batch_id:
                    if results == "ready":
                        current.ready.set()
                    else:
                        current.results.put(results)
                # else: a batch given up (its notices stay leased until the lease expires)
        except (EOFError, OSError):
            pass
        except Exception:
            log.exception("check process: unreadable message; the process is given up")
        self.dead.set()
        current = self.current
        if current is not None:
            current.results.put(None)  # wakes a waiting `finished`
            current.ready.set()  # and a waiting start (which then finds the process dead)

    def close(self) -> None:
        atexit.unregister(self.close)
        self.dead.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # the child sees end of file and exits; our reader stops
        except OSError:
            pass
        self.reader.join(5)
        self.sock.close()
        self.conn.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# What the child may see of the monitor's environment. It fetches URLs of strangers and needs no
# secret: no DATABASE_URL, SECRET_KEY or EMAIL_URL, and no DJANGO_SETTINGS_MODULE either (its
# settings come from the monitor, message by message).
# Settings the child never gets (it has no use for the broker, and holds no credential).
_SECRET_SETTINGS = frozenset({"MONITOR_BROKER_URL"})
_CHILD_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "VIRTUAL_ENV")


def _child_environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name in _CHILD_ENVIRONMENT or (name.startswith("PYTHON") and name != "PYTHONSTARTUP")
    }


class CheckBatch:
    """One batch's checks in the check process: `submit` them, collect them with `finished`."""

    _ids = itertools.count(1)

    def __init__(self, process: CheckProcess) -> None:
        self.process = process
        self.id = next(self._ids)
        self.results: queue.SimpleQueue[list | None] = queue.SimpleQueue()
        self.ready = threading.Event()
        self.claimed: dict[int, object] = {}  # notice id -> check_drain.Claimed, while in flight
        self.held: list = []
        self.submitted = self.handed_back = 0

    def __enter__(self) -> CheckBatch:
        from django.conf import settings

        from monitor import dns

        self.process.batch_lock.acquire()
        try:
            self.process.current = self
            config = {
                name: getattr(settings, name)
                for name in dir(settings)
                if name.startswith("MONITOR_") and name not in _SECRET_SETTINGS
            }
            self.process.send(("config", self.id, config, dns.generation()))
            if not self.ready.wait(START_TIMEOUT_S) or not self.process.is_alive():
                raise RuntimeError("the check process did not start")
        except BaseException:
            self._leave()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.in_flight and self.process.is_alive():
                # After an error in the caller: the checks still running are abandoned (their
                # notices stay leased until the lease expires, as for a killed monitor).
                self.process.send(("cancel", self.id))
        except RuntimeError:
            pass
        finally:
            self._leave()

    def _leave(self) -> None:
        self.process.current = None
        self.process.batch_lock.release()

    def submit(self, claimed: list, *, start_by: float) -> None:
        """Start these checks; one not started by `start_by` (time.monotonic(), the same clock in
        both processes) comes back unchecked (observation None)."""
        if claimed:
            for c in claimed:
                self.claimed[c.id] = c
            self.submitted += len(claimed)
            self.process.send(("check", self.id, [(c.id, c.url, start_by, c.vantage) for c in claimed]))

    @property
    def in_flight(self) -> int:
        """Checks submitted and not yet handed back by `finished`."""
        return self.submitted - self.handed_back

    def finished(self, *, at_least: int, wait: bool = False) -> list:
        """The checks finished so far as (claimed, observation) pairs, if there are `at_least`
        (else none, kept for the next call). With `wait`, blocks until there are."""
        while True:
            try:
                if wait and len(self.held) < at_least:
                    part = self.results.get(timeout=1.0)
                else:
                    part = self.results.get_nowait()
            except queue.Empty:
                if not wait or len(self.held) >= at_least:
                    break
                if not self.process.is_alive():
                    raise RuntimeError("the check process died") from None
                continue
            if part is None:
                raise RuntimeError("the check process died")
            self.held.extend((self.claimed.pop(nid), observation) for nid, observation in part)
        if len(self.held) < at_least:
            return []
        out, self.held = self.held, []
        self.handed_back += len(out)
        return out


# --- The child's side ----------------------------------------------------------------------------


class _Worker:
    """Runs in the child: one CheckClient per local vantage (monitor/vantages.py: its source
    address and resolvers), kept across batches while the settings stay the same."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.clients: dict[str, object] = {}  # vantage name -> CheckClient
        self.client_config: dict | None = None  # the settings the client was made with
        self.client_checks = 0
        self.dns_generation: int | None = None
        self.tasks: dict[int, set[asyncio.Task]] = {}
        self.outbox: dict[int, list] = {}
        self.flush_scheduled = False

    async def handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "config":
            _kind, batch_id, config, dns_generation = message
            self.tasks = {b: tasks for b, tasks in self.tasks.items() if tasks}  # forget finished batches
            await self._configure(config, dns_generation)
            self.conn.send((batch_id, "ready"))
        elif kind == "check":
            _kind, batch_id, items = message
            tasks = self.tasks.setdefault(batch_id, set())
            for notice_id, url, start_by, vantage in items:
                task = asyncio.create_task(self._check(batch_id, notice_id, url, start_by, vantage))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            self.client_checks += len(items)
        elif kind == "cancel":
            for task in self.tasks.pop(message[1], set()):
                task.cancel()
            self.outbox.pop(message[1], None)

    async def _configure(self, config: dict, dns_generation: int) -> None:
        from django.conf import settings

        from monitor import dns
        from monitor.check_client import CheckClient

        if not settings.configured:
            settings.configure(**config)
        else:
            for name, value in config.items():
                setattr(settings, name, value)
        if dns_generation != self.dns_generation:
            dns.cache_clear()  # the parent's cache was cleared (tests do, between zones)
            self.dns_generation = dns_generation
        idle = not any(self.tasks.values())
        renew = idle and self.client_checks > CLIENT_MAX_CHECKS
        if self.clients and config == self.client_config and not renew:
            return
        if self.clients:
            await self._close_clients(wait=not idle)
        for vantage in settings.MONITOR_VANTAGES:
            if not vantage.is_probe:
                self.clients[vantage.name] = await CheckClient.for_vantage(vantage).__aenter__()
        self.client_config, self.client_checks = config, 0

    async def _close_clients(self, *, wait: bool) -> None:
        old, self.clients = self.clients, {}
        if wait:
            # Settings changed while checks of an earlier batch still run: they finish on the old clients.
            pending = [t for tasks in self.tasks.values() for t in tasks]
            await asyncio.gather(*pending, return_exceptions=True)
        for client in old.values():
            await client.__aexit__(None, None, None)

    async def _check(self, batch_id: int, notice_id: int, url: str, start_by: float, vantage: str) -> None:
        client = self.clients.get(vantage)
        observation = None
        try:
            if client is None:  # a vantage the settings no longer name: given back unchecked
                raise LookupError(f"no local vantage {vantage!r}")
            observation = await client.check(url, start_by=start_by)
        except asyncio.CancelledError:
            raise
        except Exception:  # check() never raises; should it, the notice is given back unchecked
            log.exception("check of notice %s failed", notice_id)
        self.outbox.setdefault(batch_id, []).append((notice_id, observation))
        if not self.flush_scheduled:
            # Every check that finishes in this turn of the event loop goes in one message.
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        outbox, self.outbox = self.outbox, {}
        try:
            for batch_id, results in outbox.items():
                self.conn.send((batch_id, results))
        except OSError:
            pass  # the parent is gone: the reader thread sees the end of file and stops the loop

    async def close(self) -> None:
        for tasks in self.tasks.values():
            for task in tasks:
                task.cancel()
        if self.clients:
            await self._close_clients(wait=False)


async def _serve(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue = asyncio.Queue()

    def read() -> None:
        try:
            while True:
                message = conn.recv()
                loop.call_soon_threadsafe(inbox.put_nowait, message)
        except (EOFError, OSError):
            pass
        loop.call_soon_threadsafe(inbox.put_nowait, None)

    threading.Thread(target=read, name="check-requests", daemon=True).start()
    worker = _Worker(conn)
    try:
        while (message := await inbox.get()) is not None:
            await worker.handle(message)
    finally:
        await worker.close()


def main(argv: list[str]) -> None:
    # The parent decides when checks stop (it finishes the batch in flight on SIGTERM/SIGINT);
    # the child ends when the parent closes the socket or dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    conn = Connection(int(argv[1]))
    asyncio.run(_serve(conn))


if __name__ == "__main__":
    main(sys.argv)
