"""The drain jobs that `runmonitor` runs. Each owner registers its drain here with one line.

A drain handles one batch and returns whether more work is waiting (STYLE.md: the database rows
are the schedule; APScheduler only wakes the drains). Drains are named by dotted path, imported
when the monitor starts, so this module imports nothing heavy and has no import cycles.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from django.utils.module_loading import import_string

# Set when SIGTERM/SIGINT arrives: drains finish the batch in flight and stop looping.
stopping = threading.Event()


@dataclass(frozen=True)
class Drain:
    name: str
    path: str  # dotted path of a function () -> bool: handle one batch, return True if more is waiting
    interval_s: float  # how often runmonitor wakes it (it keeps draining while it returns True)

    @cached_property
    def func(self) -> Callable[[], bool]:
        return import_string(self.path)


# In the order `runmonitor --once` runs them (attribution feeds checks, checks feed rollups).
DRAINS: list[Drain] = [
    Drain("attribution", "monitor.attribute.drain_attribution", interval_s=2.0),  # issue 3: monitor/attribute.py
    Drain("rdap", "monitor.attribute.drain_rdap", interval_s=10.0),  # issue 3: RDAP detail, never blocks the above
    Drain("checks", "monitor.recheck.drain_checks", interval_s=1.0),  # issue 4: monitor/recheck.py
    Drain("probe-results", "monitor.probes.drain_results", interval_s=1.0),  # issue 13: remote vantages' checks
    Drain("notifications", "compliance.notifications.drain_notifications", interval_s=5.0),  # issue 6
    Drain("evidence_digest", "monitor.evidence.drain_digest", interval_s=300.0),  # daily digest of the chains
    # issue 5 and 11: reports/rollups.py, keep last; pages may lag the checks by at most 60 s.
    Drain("rollups", "reports.rollups.drain", interval_s=20.0),
]
