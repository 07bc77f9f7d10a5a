"""The probes' results, taken back by the monitor: the drain `probe-results` of runmonitor.

`drain_results()` takes up to `MAX_MESSAGES` messages from the queue `results.monitor` (monitor/
broker.py), records what they carry and acknowledges them once recorded; it returns whether more
may be waiting. Several monitors may share the queue: recording decides by the lease alone.

1. **Who sent it.** The AMQP `user_id` property, validated by RabbitMQ against the connection's
   user, names the probe (`probe-NAME`); a message from any other user is dropped and logged.
2. **What it may report.** Each result carries the ticket it was given (monitor/check_dispatch.py): a
   result whose ticket is not the monitor's, or names another vantage than the sender's, is
   rejected (counted on the probe's status, logged): a probe cannot report a check it was not given.
3. **Record once.** Accepted results go through the check drain's own classify and record
   (monitor/check_drain.py), grouped by lease token: a notice is recorded only while its lease is the
   ticket's, and the record releases it, so a result that comes twice (a batch redelivered after a
   probe died or lost its connection) is discarded the second time. A result that comes after the
   lease expired is discarded too; the notice was due again and checked from another vantage.
4. **Heartbeats** update the probe's `ProbeStatus` (monitor/check_dispatch.py gives a silent probe no
   checks; /monitor/health/ shows it stale).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from monitor import broker, check_dispatch, check_drain
from monitor.models import ProbeStatus

log = logging.getLogger("monitor.probe_results")

MAX_MESSAGES = 50  # per call; each holds up to a few thousand results
WAIT_S = 0.2  # for the first message of a call
GATHER_S = 0.1  # then for more, so that one record covers several of a probe's messages
CLASSIFIER_MAX_AGE_S = 5.0  # a placeholder hash an analyst adds applies to results within this


def drain_results(*, max_messages: int = MAX_MESSAGES, wait_s: float = WAIT_S) -> bool:
    """Record one round of the probes' results; True if more may be waiting. See the module docstring."""
    if not settings.MONITOR_BROKER_URL or not any(v.is_probe for v in settings.MONITOR_VANTAGES):
        return False
    messages = _consumer.fetch(max_messages, wait_s)
    if not messages:
        return False
    result = handle(messages)
    _consumer.ack(messages)
    if result.rejected:
        log.warning("probe results: %d rejected (%s)", sum(result.rejected.values()), dict(result.rejected))
    return len(messages) >= max_messages


class Handled:
    def __init__(self) -> None:
        self.batch = check_drain.BatchResult()
        self.rejected: Counter[str] = Counter()
        self.accepted = 0


def handle(messages) -> Handled:
    """Steps 1-4 of the module docstring for these messages (anything with `.properties`, `.body`)."""
    now = timezone.now()
    users = {v.broker_user: v.name for v in settings.MONITOR_VANTAGES if v.is_probe}
    out = Handled()
    groups: dict = {}
    heartbeats: dict[str, tuple[str, int]] = {}
    results_from: set[str] = set()
    for message in messages:
        user = message.properties.get("user_id")
        vantage = users.get(user)
        if vantage is None:
            log.warning("probe results: a message from %r, who is no configured probe, was dropped", user)
            continue
        try:
            payload = broker.loads(message.body)
            probe_id = str(payload.get("probe", ""))[:100]
        except Exception:
            out.rejected[vantage] += 1
            continue
        if "heartbeat" in payload:
            in_flight = payload["heartbeat"].get("in_flight", 0) if isinstance(payload["heartbeat"], dict) else 0
            heartbeats[vantage] = (probe_id, in_flight if isinstance(in_flight, int) and in_flight >= 0 else 0)
            continue
        results = payload.get("results")
        if not isinstance(results, list):
            out.rejected[vantage] += 1
            continue
        for item in results:
            claimed, observation = _accept(item, vantage=vantage, probe_id=probe_id)
            if claimed is None:
                out.rejected[vantage] += 1
                continue
            groups.setdefault(claimed.token, {}).setdefault(claimed.id, (claimed, observation))
            results_from.add(vantage)
    classifier = _classifier()
    for token, by_notice in groups.items():
        claimed = [c for c, _o in by_notice.values()]
        observations = [o for _c, o in by_notice.values()]
        classifications = classifier.classify(claimed, observations)
        check_drain.record(claimed, observations, classifications, token=token, result=out.batch)
        out.accepted += len(claimed)
    _statuses(heartbeats, results_from, out.rejected, now=now)
    return out


def _accept(item, *, vantage: str, probe_id: str):
    """(Claimed, Observation | None) for a result this vantage was given, else (None, None)."""
    if not isinstance(item, list) or len(item) != 2:
        return None, None
    ticket = check_dispatch.read_ticket(item[0])
    if ticket is None or ticket.vantage != vantage:
        return None, None
    try:
        observation = broker.decode_observation(item[1])
    except (ValueError, TypeError, KeyError, OverflowError):
        return None, None
    claimed = check_drain.Claimed(
        id=ticket.notice_id,
        url="",
        hoster_id=ticket.hoster_id,
        content_sha256=ticket.content_sha256,
        due_at=ticket.due_at,
        trigger=ticket.trigger,
        reported_removed_at=ticket.reported_removed_at,
        check_requested_at=ticket.check_requested_at,
        vantage=vantage,
        worker=probe_id,
    )
    claimed.token = ticket.token
    return claimed, observation


_classifier_state: list = [None, 0.0]  # (the classifier, when it was made)


def _classifier():
    """The check drain's classifier (placeholder hashes, the registry), reused for a few seconds:
    results come in many small messages, and loading both per message cost more than recording."""
    if _classifier_state[0] is None or time.monotonic() - _classifier_state[1] > CLASSIFIER_MAX_AGE_S:
        _classifier_state[:] = [check_drain._BatchClassifier(), time.monotonic()]
    return _classifier_state[0]


_results_noted: dict[str, float] = {}


def _statuses(heartbeats, results_from: set[str], rejected: Counter, *, now) -> None:
    for vantage, (probe_id, in_flight) in heartbeats.items():
        values = {"probe": probe_id, "last_seen_at": now, "in_flight": in_flight}
        if vantage in results_from:
            values["results_at"] = now
            _results_noted[vantage] = time.monotonic()
        ProbeStatus.objects.update_or_create(vantage=vantage, defaults=values)
    for vantage in results_from - heartbeats.keys():
        # Results are a sign of life too; noted every few seconds (not per message: one more write each).
        if time.monotonic() - _results_noted.get(vantage, 0.0) >= broker.HEARTBEAT_S:
            _results_noted[vantage] = time.monotonic()
            ProbeStatus.objects.filter(vantage=vantage).update(results_at=now, last_seen_at=now)
    for vantage, n in rejected.items():
        if not ProbeStatus.objects.filter(vantage=vantage).update(rejected=F("rejected") + n):
            ProbeStatus.objects.create(vantage=vantage, last_seen_at=now, rejected=n)


# --- The consuming connection -------------------------------------------------------------------


class _Consumer:
    """The monitor's connection for results (the results drain's thread only; the lock guards others)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conn = None
        self.url = ""
        self.consumer = None
        self.inbox: list = []
        self.warned_at = -1e9

    def _connect(self) -> None:
        from kombu import Consumer

        if self.conn is not None and self.url == settings.MONITOR_BROKER_URL:
            return
        self.close()
        self.url = settings.MONITOR_BROKER_URL
        self.conn = broker.connection(self.url)
        self.conn.ensure_connection(max_retries=1)
        channel = self.conn.channel()
        broker.declare(channel, [v.name for v in settings.MONITOR_VANTAGES if v.is_probe])
        channel.basic_qos(prefetch_size=0, prefetch_count=MAX_MESSAGES, a_global=False)
        self.consumer = Consumer(
            channel, queues=[broker.results_queue()], on_message=self.inbox.append, auto_declare=False
        )
        self.consumer.consume()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.release()
            except Exception:  # a dead connection: nothing to release
                pass
        self.conn = self.consumer = None
        self.inbox.clear()  # unacknowledged: the broker hands them out again

    def fetch(self, limit: int, wait_s: float) -> list:
        with self.lock:
            try:
                self._connect()
                first_by, gather_until = time.monotonic() + wait_s, None
                while len(self.inbox) < limit:
                    now = time.monotonic()
                    if self.inbox and gather_until is None:
                        # Once one message is here, gather what comes within GATHER_S: a probe sends
                        # its results every 50 ms, and recording costs much per call, little per result.
                        gather_until = now + GATHER_S
                    until = gather_until or first_by
                    if now >= until:
                        break
                    try:
                        self.conn.drain_events(timeout=until - now)
                    except TimeoutError:
                        pass
            except Exception:
                # Said once a minute at most: the drain runs every second while the broker is away.
                if time.monotonic() - self.warned_at > 60:
                    self.warned_at = time.monotonic()
                    log.warning("probe results: no broker connection; retrying every second", exc_info=True)
                self.close()
                return []
            taken, self.inbox[:] = self.inbox[:limit], self.inbox[limit:]
            return taken

    def ack(self, messages) -> None:
        with self.lock:
            try:
                for message in messages:
                    message.ack()
            except Exception:
                # Recorded already: redelivered, they are discarded (the leases were released).
                log.warning("probe results: acknowledgement failed; reconnecting", exc_info=True)
                self.close()


_consumer = _Consumer()


def close() -> None:
    _consumer.close()
