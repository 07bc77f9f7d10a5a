"""Pure statistics for the scorecards: Kaplan-Meier, percentiles, Wilson intervals, histograms.

No ORM and no I/O: the inputs are the grouped counts that SQL produces (reports/scorecards.py),
so that every figure is computed the same way on PostgreSQL and SQLite.

- Kaplan-Meier follows lifelines (the reference implementation in the tests) operation for
  operation: S(t) = exp(cumsum(log(n - d) - log(n))) over the distinct times, with the exponential
  Greenwood interval; the median is the first time at which S(t) <= 0.5, None when never reached.
- Percentiles are linear interpolation between order statistics (numpy's default `linear`
  method, identical to PostgreSQL's `percentile_cont`): h = p (N - 1), x[floor h] + (x[ceil h] -
  x[floor h]) (h - floor h), rounded UP to 0.1 s.
- Times are whole milliseconds, each rounded up from the observation (reports/scorecards.py,
  `Milliseconds`); every published statistic is in seconds, rounded up to 0.1 s (`seconds_up`):
  a time to takedown is an upper bound, and no statistic over it is ever rounded below it.
- The compliance rate's interval is Wilson's score interval at 95 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054  # the standard normal's 97.5 % quantile


@dataclass(frozen=True)
class Grouped:
    """Observations grouped by distinct time: `times` ascending, `events` (takedowns) and `counts`
    (all observations, events and censored) at each time."""

    times: np.ndarray  # int64 milliseconds
    events: np.ndarray  # int64
    counts: np.ndarray  # int64

    @classmethod
    def empty(cls) -> Grouped:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z)

    @classmethod
    def merge(cls, parts: list[Grouped]) -> Grouped:
        """Several groups' observations as one (the national figures from the hosters')."""
        parts = [p for p in parts if len(p.times)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls.from_sorted_runs(
            np.concatenate([p.times for p in parts]),
            np.concatenate([p.events for p in parts]),
            np.concatenate([p.counts for p in parts]),
        )

    @classmethod
    def from_sorted_runs(cls, times: np.ndarray, events: np.ndarray, counts: np.ndarray) -> Grouped:
        """Grouped from concatenated groups (each sorted by time): a stable sort (timsort, which
        merges the sorted runs it finds) and a sum per distinct time. Several times faster than
        np.unique over a year's million observations."""
        order = np.argsort(times, kind="stable")
        times, events, counts = times[order], events[order], counts[order]
        starts = np.flatnonzero(np.concatenate(([True], times[1:] != times[:-1])))
        return cls(times[starts], np.add.reduceat(events, starts), np.add.reduceat(counts, starts))

    @classmethod
    def from_durations(cls, durations, observed) -> Grouped:
        """From one duration and one event flag per notice (tests, small inputs)."""
        durations = np.asarray(durations, dtype=np.int64)
        observed = np.asarray(observed, dtype=np.int64)
        if not len(durations):
            return cls.empty()
        unique, inverse = np.unique(durations, return_inverse=True)
        return cls(
            unique,
            np.bincount(inverse, weights=observed, minlength=len(unique)).astype(np.int64),
            np.bincount(inverse, minlength=len(unique)).astype(np.int64),
        )

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def event_count(self) -> int:
        return int(self.events.sum())


@dataclass(frozen=True)
class SurvivalCurve:
    """The Kaplan-Meier estimate at each distinct event time (S = 1 before the first)."""

    times: np.ndarray
    survival: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    at_risk: np.ndarray
    median: int | None  # milliseconds

    @property
    def median_s(self) -> float | None:
        """The median in seconds, rounded up to 0.1 s."""
        return None if self.median is None else seconds_up(self.median)

    def points(self, limit: int = 400) -> list[list[float]]:
        """At most `limit` steps [t, S, lower, upper] for a chart (t in seconds, to the
        millisecond): the step at each time-bucket's end, so the drawn curve never departs from
        the estimate by more than one bucket."""
        n = len(self.times)
        if n == 0:
            return []
        if n <= limit:
            idx = np.arange(n)
        else:
            buckets = np.floor(np.linspace(0, limit, n, endpoint=False)).astype(np.int64)
            last_of_bucket = np.flatnonzero(np.diff(buckets, append=limit))
            idx = last_of_bucket
        # Vectorised: a scorecard's rollup holds hundreds of curves.
        table = np.column_stack(
            [
                self.times[idx] / 1000,
                np.round(self.survival[idx], 6),
                np.round(self.lower[idx], 6),
                np.round(self.upper[idx], 6),
            ]
        )
        return table.tolist()


def kaplan_meier(grouped: Grouped, *, z: float = Z_95) -> SurvivalCurve:
    """Kaplan-Meier with right censoring, as lifelines' KaplanMeierFitter computes it."""
    if grouped.event_count == 0:
        empty = np.zeros(0)
        return SurvivalCurve(empty, empty, empty, empty, np.zeros(0, dtype=np.int64), None)
    # At risk at t: every observation with time >= t.
    at_risk = np.cumsum(grouped.counts[::-1])[::-1]
    deaths = grouped.events
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.cumsum(np.log(at_risk - deaths) - np.log(at_risk))
        # Greenwood's variance term, 0 where everyone at risk had the event (lifelines does the same).
        var_terms = deaths / (at_risk.astype(np.float64) * (at_risk - deaths))
        var_terms[~np.isfinite(var_terms)] = 0.0
        cumulative_sq = np.cumsum(var_terms)
        survival = np.exp(log_s)
        v = np.log(survival)
        lower = np.exp(-np.exp(np.log(-v) - z * np.sqrt(cumulative_sq) / v))
        upper = np.exp(-np.exp(np.log(-v) + z * np.sqrt(cumulative_sq) / v))
    lower = np.where(np.isnan(lower), 1.0, lower)
    upper = np.where(np.isnan(upper), 1.0, upper)
    keep = deaths > 0  # S only changes at event times
    times = grouped.times[keep]
    survival = survival[keep]
    reached = np.flatnonzero(survival <= 0.5)
    median = int(times[reached[0]]) if len(reached) else None
    return SurvivalCurve(times, survival, lower[keep], upper[keep], at_risk[keep], median)


def seconds_up(ms: float, step_ms: int = 100) -> float:
    """Milliseconds as seconds, rounded UP to `step_ms` (0.1 s): 4500 -> 4.5, 4501 -> 4.6, -4550 -> -4.5.

    Exact for whole milliseconds (integer arithmetic); an interpolated value between two whole
    milliseconds is first rounded up to the next millisecond, so float noise never rounds down."""
    whole_ms = math.ceil(round(ms, 6))  # 4500.0000001 from float noise is 4500, not 4501
    return -((-whole_ms) // step_ms) * step_ms / 1000


def percentile(times: np.ndarray, weights: np.ndarray, p: float) -> float | None:
    """The p-quantile (0 <= p <= 1) of a sample given as sorted distinct values (milliseconds) with
    multiplicities, by linear interpolation (numpy `linear`, PostgreSQL `percentile_cont`), in
    seconds rounded up to 0.1 s."""
    total = int(weights.sum())
    if total == 0:
        return None
    cumulative = np.cumsum(weights)
    h = p * (total - 1)
    lo_rank, hi_rank = math.floor(h), math.ceil(h)
    lo = float(times[np.searchsorted(cumulative, lo_rank, side="right")])
    hi = float(times[np.searchsorted(cumulative, hi_rank, side="right")])
    value = lo if lo_rank == hi_rank else lo + (hi - lo) * (h - lo_rank)
    return seconds_up(value)


def takedown_percentiles(grouped: Grouped, ps: tuple[float, ...] = (0.5, 0.9)) -> list[float | None]:
    """Percentiles of time to takedown over the taken-down notices (the events)."""
    keep = grouped.events > 0
    return [percentile(grouped.times[keep], grouped.events[keep], p) for p in ps]


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson's score interval for a proportion; None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


# Histogram of time to takedown: bin edges in seconds, chosen for a 24 h covenant and for 12 h and
# 1 h removal orders; the last bin is open-ended.
HISTOGRAM_EDGES_S = (0, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 7 * 86400)


def takedown_histogram(grouped: Grouped, edges: tuple[int, ...] = HISTOGRAM_EDGES_S) -> list[dict]:
    """Taken-down notices per bin [edge_i, edge_i+1) of time to takedown; negative times (gone
    before the notification) fall in the first bin, the last bin is open-ended."""
    keep = grouped.events > 0
    times, weights = grouped.times[keep], grouped.events[keep]
    # Times are milliseconds, edges seconds: a time of 3600.001 s lies in [1 h, 2 h).
    index = np.searchsorted(np.asarray(edges[1:], dtype=np.int64) * 1000, times, side="right")
    counts = np.bincount(index, weights=weights, minlength=len(edges)).astype(np.int64)
    bins = []
    for i, start in enumerate(edges):
        end = edges[i + 1] if i + 1 < len(edges) else None
        bins.append({"from_s": start, "to_s": end, "count": int(counts[i])})
    return bins
