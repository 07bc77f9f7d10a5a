"""The probe: `manage.py runprobe --vantage NAME` checks a remote vantage's batches (no database).

A probe runs on another machine or network. It needs the broker URL (`MONITOR_BROKER_URL`, its own
RabbitMQ user `probe-NAME`) and its vantage's settings (`MONITOR_VANTAGES`, where its own entry may
name a source address and resolvers; the `MONITOR_*` check client settings): no database, no
`SECRET_KEY`, no e-mail settings (config/settings.py `IS_PROBE`). Messages: monitor/broker.py.

Two threads:

- the **event loop** (main thread) runs monitor/fetch.py's `CheckClient` for the vantage, with every
  SSRF rule applied here, where the connection is made, under the probe's own
  `MONITOR_ALLOWED_PRIVATE_NETWORKS` (a message cannot open a network to it);
- the **AMQP thread** owns the kombu connection (kombu is not thread-safe): it consumes the
  vantage's queue (`checks.NAME`, a few batches at a time), publishes the results every 50 ms with
  publisher confirms, acknowledges a batch once all its results are confirmed (late
  acknowledgement: a probe killed mid-batch loses nothing, the broker hands the batch out again),
  and says it is alive every few seconds (heartbeat). A dropped connection or a broker restart is
  retried with back-off for ever; batches whose acknowledgement died with the old connection are
  redelivered and checked again, and the monitor records each check once (the lease decides).

SIGTERM/SIGINT: stop taking batches, finish the checks in flight, publish, acknowledge, exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from django.conf import settings

from monitor import broker, vantages

log = logging.getLogger("monitor.probe")

PREFETCH = 4  # batches taken at once: enough that the next is here when one ends
FLUSH_S = 0.05
CLIENT_MAX_CHECKS = 100_000


@dataclass
class _Batch:
    message: object
    generation: int  # of the connection it came on: an acknowledgement is valid on that one only
    pending: int  # checks not yet published
    results: list = field(default_factory=list)


class Probe:
    def __init__(self, vantage: vantages.Vantage, *, url: str) -> None:
        self.vantage = vantage
        self.url = url
        self.stopping = threading.Event()
        self.outbox: deque = deque()  # (batch, ticket, encoded observation), from the event loop
        self.generation = 0
        self.in_flight = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client = None
        self.client_checks = 0
        self.tasks: set[asyncio.Task] = set()
        self.stats = {"batches": 0, "checks": 0, "reconnects": 0}

    # --- the event loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        from monitor.fetch import CheckClient

        self.loop = asyncio.get_running_loop()
        self.client = await CheckClient.for_vantage(self.vantage).__aenter__()
        amqp = threading.Thread(target=self._amqp, name="probe-amqp", daemon=True)
        amqp.start()
        try:
            while amqp.is_alive():
                await asyncio.sleep(0.2)
                if not self.tasks and self.client_checks > CLIENT_MAX_CHECKS:
                    await self.client.__aexit__(None, None, None)
                    self.client = await CheckClient.for_vantage(self.vantage).__aenter__()
                    self.client_checks = 0
        finally:
            for task in self.tasks:
                task.cancel()
            await self.client.__aexit__(None, None, None)

    def _submit(self, batch: _Batch, items: list) -> None:
        """On the event loop: start a batch's checks."""
        now_wall, now_mono = time.time(), time.monotonic()
        for _nid, url, start_by, ticket in items:
            task = self.loop.create_task(self._check(batch, url, now_mono + (float(start_by) - now_wall), ticket))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        self.client_checks += len(items)

    async def _check(self, batch: _Batch, url: str, start_by: float, ticket: str) -> None:
        observation = None
        try:
            observation = await self.client.check(url, start_by=start_by)
        except asyncio.CancelledError:
            raise
        except Exception:  # check() never raises; should it, the check goes back unchecked
            log.exception("a check failed")
        self.outbox.append((batch, ticket, broker.encode_observation(observation)))

    # --- the AMQP thread --------------------------------------------------------------------------

    def _amqp(self) -> None:
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                self._session()
                backoff = 0.5
            except Exception as exc:
                if self.stopping.is_set() and not self.in_flight:
                    break
                self.stats["reconnects"] += 1
                log.warning("probe %s: broker connection lost (%s); reconnecting", self.vantage.name, exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        log.info("probe %s: stopped (%s)", self.vantage.name, self.stats)

    def _session(self) -> None:
        from kombu import Consumer, Producer

        conn = broker.connection(self.url, heartbeat=broker.AMQP_HEARTBEAT_S)
        try:
            conn.ensure_connection(max_retries=1)
            self.generation += 1
            generation = self.generation
            channel = conn.channel()
            channel.basic_qos(prefetch_size=0, prefetch_count=PREFETCH, a_global=False)
            producer = Producer(conn.channel(), exchange=broker.exchanges()[1], auto_declare=False)
            user = conn.userid

            def on_message(message) -> None:
                try:
                    items = broker.loads(message.body)["checks"]
                except Exception:
                    log.warning("probe %s: an unreadable batch was dropped", self.vantage.name, exc_info=True)
                    message.reject(requeue=False)
                    return
                batch = _Batch(message=message, generation=generation, pending=len(items))
                self.in_flight += len(items)
                self.stats["batches"] += 1
                if not items:
                    message.ack()
                    return
                self.loop.call_soon_threadsafe(self._submit, batch, items)

            consumer = Consumer(
                channel, queues=[broker.checks_queue(self.vantage.name)], on_message=on_message, auto_declare=False
            )
            consumer.consume()
            log.info("probe %s: consuming %s as %s", self.vantage.name, self.vantage.queue, user)
            beat_at = 0.0
            while True:
                if self.stopping.is_set() and consumer is not None:
                    consumer.cancel()  # take no more batches; finish those in flight
                    consumer = None
                if self.stopping.is_set() and not self.in_flight and not self.outbox:
                    return
                try:
                    conn.drain_events(timeout=FLUSH_S)
                except TimeoutError:
                    pass
                conn.heartbeat_check()
                self._publish_results(producer, user, generation)
                if time.monotonic() - beat_at >= broker.HEARTBEAT_S:
                    beat = {"probe": broker.PROBE_ID, "heartbeat": {"in_flight": self.in_flight}}
                    self._publish(producer, user, beat)
                    beat_at = time.monotonic()
        finally:
            try:
                conn.release()
            except Exception:
                pass

    def _publish(self, producer, user: str, payload: dict) -> None:
        producer.publish(
            broker.dumps(payload),
            content_type=broker.CONTENT_TYPE,
            content_encoding="utf-8",
            delivery_mode=2,
            user_id=user,  # RabbitMQ refuses a user_id that is not the connection's: the monitor trusts it
        )

    def _publish_results(self, producer, user: str, generation: int) -> None:
        if not self.outbox:
            return
        taken = []
        while self.outbox and len(taken) < 5000:
            taken.append(self.outbox.popleft())
        try:
            self._publish(producer, user, {"probe": broker.PROBE_ID, "results": [[t, o] for _b, t, o in taken]})
        except Exception:
            self.outbox.extendleft(reversed(taken))  # published again on the next connection
            raise
        self.stats["checks"] += len(taken)
        self.in_flight -= len(taken)
        done = []
        for batch, _t, _o in taken:
            batch.pending -= 1
            if batch.pending == 0:
                done.append(batch)
        for batch in done:
            if batch.generation == generation:
                batch.message.ack()
            # else: its delivery died with an old connection; the broker hands it out again


def run(vantage_name: str) -> Probe:
    """Run the probe of `vantage_name` until SIGTERM/SIGINT (the runprobe command)."""
    vantage = vantages.by_name(settings.MONITOR_VANTAGES, vantage_name)
    if vantage is None:
        vantage = vantages.Vantage(vantage_name, vantages.PROBE)  # no source, the system's resolvers
    if not settings.MONITOR_BROKER_URL:
        raise RuntimeError("MONITOR_BROKER_URL is not set")
    probe = Probe(vantage, url=settings.MONITOR_BROKER_URL)

    def stop(signum, frame):
        log.info("probe %s: signal %s, finishing the checks in flight", vantage.name, signum)
        probe.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    asyncio.run(probe.run())
    return probe
