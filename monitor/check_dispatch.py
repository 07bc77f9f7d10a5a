"""Which vantage checks each claimed notice, and handing remote checks to the probes (monitor side).

The check drain (monitor/check_drain.py) calls, per claimed chunk:

    plan = check_dispatch.Plan.now()               # the vantages that may take checks now
    check_dispatch.assign(claimed, plan)            # sets each Claimed.vantage
    local, remote = check_dispatch.split(claimed, plan)
    check_dispatch.publish(remote, token=..., start_by=...)   # one message per probe vantage

1. **Rotation.** A notice's next check goes to the first available vantage after the vantage of
   its latest check, in the order of `MONITOR_VANTAGES`, so consecutive checks rotate over them
   and a removal seen from one is confirmed from another (compliance/rules.py). With one vantage
   there is nothing to choose and nothing is read.
2. **Availability.** A local vantage is always available. A probe is available when it was heard
   within `MONITOR_PROBE_STALE` seconds (its heartbeat, monitor/probe_results.py) and fewer than
   `MONITOR_PROBE_BACKLOG` of its batches wait in its queue: a silent probe's checks and a slow
   probe's share go to the other vantages, so neither holds back the rest.
3. **Tickets.** Each remote check carries a ticket: the vantage, the lease token and the claim's
   fields that recording needs, with an HMAC under a key derived from `SECRET_KEY`. The probe
   echoes it; the monitor takes back a result only with a valid ticket whose vantage is the
   broker-validated sender's (monitor/probe_results.py), and records it only while the lease is still
   the ticket's (monitor/check_drain.py), so each (check, vantage) is recorded once and a probe can
   report no check it was not given.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from compliance import bulk
from compliance.models import Check
from monitor import broker, vantages
from monitor.models import ProbeStatus

log = logging.getLogger("monitor.check_dispatch")


@dataclass(frozen=True)
class Plan:
    order: tuple[str, ...]  # every configured vantage, in MONITOR_VANTAGES order
    available: tuple[str, ...]  # those that may take checks now
    probes: frozenset[str]  # the remote ones
    backlogged: frozenset[str] = frozenset()  # probes heard recently whose queue is full for now

    @classmethod
    def now(cls) -> Plan:
        configured = settings.MONITOR_VANTAGES
        probes = frozenset(v.name for v in configured if v.is_probe)
        heard = _heard_probes(probes) if probes else set()
        ready = {name for name in heard if _publisher.backlog(name) < settings.MONITOR_PROBE_BACKLOG}
        available = tuple(v.name for v in configured if not v.is_probe or v.name in ready)
        return cls(tuple(v.name for v in configured), available, probes, frozenset(heard - ready))


def _heard_probes(probes: frozenset[str]) -> set[str]:
    """Probes heard within MONITOR_PROBE_STALE (the others are silent: stale)."""
    since = timezone.now() - timedelta(seconds=settings.MONITOR_PROBE_STALE)
    return set(
        ProbeStatus.objects.filter(vantage__in=probes, last_seen_at__gte=since).values_list("vantage", flat=True)
    )


def assign(claimed: list, plan: Plan) -> None:
    """Set each claimed notice's `vantage` (step 1 of the module docstring)."""
    if not plan.available:
        raise RuntimeError("no vantage is available")
    if len(plan.order) == 1 or len(plan.available) == 1:
        for c in claimed:
            c.vantage = plan.available[0]
        return
    last = _last_vantages([c.id for c in claimed])
    for c in claimed:
        c.vantage = vantages.next_after(last.get(c.id), plan.order, plan.available, seed=c.id)


def _last_vantages(notice_ids: list[int]) -> dict[int, str]:
    """The vantage of each notice's latest check (one index probe per notice: check_notice_time)."""
    from compliance.models import Notice

    latest = Check.objects.filter(notice_id=OuterRef("pk")).order_by("-checked_at", "-id").values("vantage")[:1]
    out: dict[int, str] = {}
    for chunk in bulk.chunks(notice_ids):
        rows = Notice.objects.filter(pk__in=chunk).annotate(last=Subquery(latest)).order_by().values_list("pk", "last")
        out.update((pk, last) for pk, last in rows if last)
    return out


def split(claimed: list, plan: Plan) -> tuple[list, dict[str, list]]:
    """(checks for the local check process, {probe vantage: checks})."""
    local, remote = [], {}
    for c in claimed:
        if c.vantage in plan.probes:
            remote.setdefault(c.vantage, []).append(c)
        else:
            local.append(c)
    return local, remote


def publish(remote: dict[str, list], *, token: uuid.UUID, start_by: float) -> None:
    """One check batch per probe vantage (`start_by`: a UNIX time). A batch the broker does not
    take is logged; its notices stay leased until the lease expires, then are due again."""
    for name, claimed in remote.items():
        payload = {"checks": [[c.id, c.url, start_by, ticket(c, vantage=name, token=token)] for c in claimed]}
        try:
            _publisher.send(name, broker.dumps(payload))
        except Exception:
            log.warning("probe %s: a batch of %d checks could not be published", name, len(claimed), exc_info=True)


# --- Tickets ----------------------------------------------------------------------------------------


@cache
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"monitor.check_dispatch.ticket:" + secret.encode()).digest()


def _sign(text: str) -> str:
    return hmac.new(_key(settings.SECRET_KEY), text.encode(), hashlib.sha256).hexdigest()[:32]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _us(at: datetime | None) -> str:
    """Microseconds since the epoch, exactly (recording compares these times with the notice's)."""
    return "" if at is None else str((at - _EPOCH) // _US)


def _at(text: str) -> datetime | None:
    return None if not text else _EPOCH + int(text) * _US


def ticket(c, *, vantage: str, token: uuid.UUID) -> str:
    text = "|".join(
        (
            vantage,
            token.hex,
            str(c.id),
            _us(c.due_at),
            c.trigger,
            _us(c.reported_removed_at),
            _us(c.check_requested_at),
            "" if c.hoster_id is None else str(c.hoster_id),
            c.content_sha256 or "",
        )
    )
    return f"{text}|{_sign(text)}"


@dataclass(frozen=True)
class Ticket:
    vantage: str
    token: uuid.UUID
    notice_id: int
    due_at: datetime | None
    trigger: str
    reported_removed_at: datetime | None
    check_requested_at: datetime | None
    hoster_id: int | None
    content_sha256: str


def read_ticket(text: object) -> Ticket | None:
    """The ticket, if the monitor signed it; None for anything else."""
    if not isinstance(text, str) or len(text) > 400:
        return None
    body, _sep, mac = text.rpartition("|")
    if not hmac.compare_digest(mac, _sign(body)):
        return None
    vantage, token, nid, due, trigger, rr, cr, hoster, sha = body.split("|")
    return Ticket(
        vantage, uuid.UUID(token), int(nid), _at(due), trigger, _at(rr), _at(cr), int(hoster) if hoster else None, sha
    )


# --- The publishing connection ----------------------------------------------------------------------


class _Publisher:
    """The monitor's connection for check batches: declared topology, reconnects once on failure.

    Used by the check drain's thread only (APScheduler runs one check drain at a time); the lock
    guards against a test or a shell using it from another thread meanwhile.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn = None
        self.url = ""
        self.producer = None
        self.declared: frozenset[str] = frozenset()
        self.backlogs: dict[str, tuple[float, int]] = {}

    def _connect(self):
        from kombu import Producer

        if self.conn is not None and self.url == settings.MONITOR_BROKER_URL:
            return self.conn
        self.close()
        self.url = settings.MONITOR_BROKER_URL
        self.conn = broker.connection(self.url)
        self.conn.ensure_connection(max_retries=1)
        probes = frozenset(v.name for v in settings.MONITOR_VANTAGES if v.is_probe)
        broker.declare(self.conn.default_channel, probes)
        self.declared = probes
        self.producer = Producer(self.conn.default_channel, exchange=broker.exchanges()[0])
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.release()
            except Exception:  # a dead connection: nothing to release
                pass
        self.conn = self.producer = None

    def _retrying(self, action):
        with self.lock:
            for attempt in (1, 2):
                try:
                    self._connect()
                    return action()
                except Exception:
                    self.close()
                    if attempt == 2:
                        raise
                    time.sleep(0.2)

    def send(self, vantage: str, body: bytes) -> None:
        def action():
            if vantage not in self.declared:
                broker.checks_queue(vantage)(self.conn.default_channel).declare()
                self.declared |= {vantage}
            self.producer.publish(
                body,
                routing_key=vantage,
                content_type=broker.CONTENT_TYPE,
                content_encoding="utf-8",
                delivery_mode=2,
            )

        self._retrying(action)

    def backlog(self, vantage: str) -> int:
        """Check batches waiting in the vantage's queue (asked at most every 0.2 s)."""
        cached = self.backlogs.get(vantage)
        if cached is not None and time.monotonic() - cached[0] < 0.2:
            return cached[1]

        def action():
            _name, messages, _consumers = self.conn.default_channel.queue_declare(
                queue=f"checks.{vantage}", passive=True
            )
            return messages

        try:
            count = self._retrying(action)
        except Exception:
            log.warning("probe %s: its queue cannot be read; it gets no checks now", vantage, exc_info=True)
            count = 1 << 30
        self.backlogs[vantage] = (time.monotonic(), count)
        return count


_publisher = _Publisher()


def close() -> None:
    _publisher.close()
