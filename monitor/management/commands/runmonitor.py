"""runmonitor [--once]: APScheduler wiring for the drain jobs of monitor/jobs.py, and nothing else.

Shaped after healthchecks' sendalerts: the rows are the schedule, the scheduler only wakes drains.
SIGTERM and SIGINT finish the batch in flight and exit. One failing batch is logged and the loop
goes on; a killed process loses nothing because claims are leases (monitor/recheck.py).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections

from compliance import measurements
from monitor import jobs

log = logging.getLogger("monitor.runmonitor")

# --once repeats the round of drains until none has work; this bounds a drain that always says "more".
ONCE_MAX_ROUNDS = 10_000


def run_drain(drain: jobs.Drain, *, max_seconds: float | None = None) -> int:
    """Call the drain until it has no more work, time is up, or the monitor is stopping.

    Returns the number of batches handled. Errors are logged with their traceback, never raised:
    a bad batch must not stop the monitor (the drain itself pushes bad rows forward).
    """
    started = time.monotonic()
    batches = 0
    try:
        while not jobs.stopping.is_set():
            close_old_connections()
            try:
                more = drain.func()
            except Exception:
                log.exception("drain %s failed; it runs again at its next wake-up", drain.name)
                return batches
            finally:
                close_old_connections()
            batches += 1
            if not more or (max_seconds is not None and time.monotonic() - started >= max_seconds):
                break
        return batches
    finally:
        if threading.current_thread() is not threading.main_thread():
            # A scheduler thread's connection would otherwise stay open while the thread idles, and
            # outlive the monitor's shutdown: close it at the end of every wake-up.
            connections.close_all()


class Command(BaseCommand):
    help = "Run the monitor: attribution, due checks, rollups and notifications, until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="do all work due now, then exit")

    def handle(self, *args, once: bool, **options):
        jobs.stopping.clear()
        # APScheduler logs every wake-up of every drain at INFO (several lines a second): keep its warnings.
        logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
        measurements.methodology_record()  # the methodology, with its settings, is in use from now
        if once:
            self.run_once()
            return
        scheduler = BlockingScheduler(
            timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        for drain in jobs.DRAINS:
            drain.func  # noqa: B018 (import now: a typo in a path fails at start, not at 3 a.m.)
            scheduler.add_job(
                run_drain,
                "interval",
                seconds=drain.interval_s,
                args=[drain],
                kwargs={"max_seconds": max(drain.interval_s, 30.0)},
                id=drain.name,
                name=drain.name,
                next_run_time=datetime.now(UTC),
            )

        stoppers: list[threading.Thread] = []

        def stop(signum, frame):
            if jobs.stopping.is_set():
                return  # a second Ctrl-C while the batch in flight finishes
            log.info("signal %s: finishing the batches in flight, then exiting", signal.Signals(signum).name)
            jobs.stopping.set()
            # Race: the handler runs in the main thread, which may be inside the scheduler's job
            # processing, holding its re-entrant lock; a shutdown here would empty the job store
            # under it (JobLookupError, exit 1). A thread waits for that lock, then for the running
            # drains; start() returns once the scheduler is stopped.
            stopper = threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, name="monitor-stop")
            stoppers.append(stopper)
            stopper.start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("monitor running with drains: %s", ", ".join(d.name for d in jobs.DRAINS) or "none")
        scheduler.start()
        for stopper in stoppers:
            stopper.join()  # the batches in flight are finished and written
        log.info("monitor stopped")

    def run_once(self) -> None:
        for _round in range(ONCE_MAX_ROUNDS):
            batches = [run_drain(drain) for drain in jobs.DRAINS]  # every drain, every round
            if not any(n > 1 for n in batches) or jobs.stopping.is_set():
                return
        log.warning("runmonitor --once stopped after %d rounds with work still waiting", ONCE_MAX_ROUNDS)
