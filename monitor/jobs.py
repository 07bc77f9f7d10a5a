"""The drains that `runmonitor` runs, from `settings.MONITOR_DRAINS` (like MIDDLEWARE: an app adds its
drain there, so the monitor never names the apps above or beside it).

A drain handles one batch and returns whether more work is waiting (the database rows are the
schedule; APScheduler only wakes the drains). Drains are named by dotted path, imported
when the monitor starts, so this module imports nothing heavy and has no import cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from django.conf import settings
from django.utils.module_loading import import_string

from compliance.drains import stopping  # noqa: F401  (the drains' shared stop flag; runmonitor sets it)


@dataclass(frozen=True)
class Drain:
    name: str
    path: str  # dotted path of a function () -> bool: handle one batch, return True if more is waiting
    interval_s: float  # how often runmonitor wakes it (it keeps draining while it returns True)

    @cached_property
    def func(self) -> Callable[[], bool]:
        return import_string(self.path)


# In the order `runmonitor --once` runs them (attribution feeds checks, checks feed rollups).
DRAINS: list[Drain] = [Drain(name, path, interval_s=float(every)) for name, path, every in settings.MONITOR_DRAINS]
