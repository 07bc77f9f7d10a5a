"""Rollups: `scorecards.period_metrics` stored per period key, refreshed when stale.

At a million notices one period's figures take seconds to compute (FIELD-NOTES: whole-table
percentiles and grouping cost ~1 s each), so pages read rollups:

1. `figures(period, ...)` returns a period's figures: for a named period from its rollup,
   recomputing it first when missing or stale; for a custom period computed on the spot.
2. `drain()` (the monitor's rollup job, monitor/jobs.py) refreshes the stalest rollup that is past
   half its maximum age, so that pages normally find a fresh one; it returns True while more wait.

Staleness: a rollup is fresh while its period bounds are unchanged (rolling periods move at local
midnight), it was made under the current methodology version, and it is younger than
SCORECARD_ROLLUP_MAX_AGE, or SCORECARD_SETTLED_MAX_AGE for periods that ended more than 31 days ago
(their notices have left the re-check horizon of 30 deadlines, so they rarely change).
"""

from __future__ import annotations

import logging
import time
from dataclasses import fields
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from compliance.models import Hoster, Notice
from reports import periods, scorecards
from reports.models import Rollup, RollupRow
from reports.periods import Period
from reports.scorecards import HosterMetrics, PeriodMetrics

log = logging.getLogger(__name__)

SETTLED_AFTER = timedelta(days=31)
_METRIC_FIELDS = {f.name for f in fields(HosterMetrics)}


# --- JSON <-> HosterMetrics ---------------------------------------------------------------------


def metrics_to_json(m: HosterMetrics | None) -> dict | None:
    if m is None:
        return None
    data = {f: getattr(m, f) for f in _METRIC_FIELDS}
    if data["oldest_open_notified_at"] is not None:
        data["oldest_open_notified_at"] = data["oldest_open_notified_at"].isoformat()
    return data


def metrics_from_json(data: dict | None) -> HosterMetrics | None:
    if data is None:
        return None
    values = {k: v for k, v in data.items() if k in _METRIC_FIELDS}
    if values.get("oldest_open_notified_at"):
        values["oldest_open_notified_at"] = parse_datetime(values["oldest_open_notified_at"])
    return HosterMetrics(**values)


# --- Staleness ----------------------------------------------------------------------------------


def max_age(period: Period, now: datetime) -> timedelta:
    settled = period.end is not None and period.end < now - SETTLED_AFTER
    return timedelta(seconds=settings.SCORECARD_SETTLED_MAX_AGE if settled else settings.SCORECARD_ROLLUP_MAX_AGE)


def is_fresh(rollup: Rollup, period: Period, now: datetime, *, margin: float = 1.0) -> bool:
    return (
        rollup.start == period.start
        and rollup.end == period.end
        and rollup.methodology_version == settings.METHODOLOGY_VERSION
        and now - rollup.computed_at < max_age(period, now) * margin
    )


# --- Refresh ------------------------------------------------------------------------------------


def refresh(period: Period, *, now: datetime) -> Rollup:
    """Compute a named period's figures and store them, replacing the previous rollup."""
    if period.kind == "custom":
        raise ValueError("custom periods are computed on the spot, not stored")
    started = time.perf_counter()
    result = scorecards.period_metrics(period, now=now, with_charts=True)
    compute_ms = int((time.perf_counter() - started) * 1000)
    with transaction.atomic():
        rollup, _created = Rollup.objects.select_for_update().get_or_create(
            key=period.key,
            defaults={"computed_at": now, "methodology_version": settings.METHODOLOGY_VERSION, "national": {}},
        )
        rollup.start, rollup.end = period.start, period.end
        rollup.computed_at = now
        rollup.compute_ms = compute_ms
        rollup.methodology_version = result.methodology_version
        rollup.national = metrics_to_json(result.national)
        rollup.unattributed = metrics_to_json(result.unattributed)
        rollup.national_charts = result.curves.get(None, {})
        rollup.save()
        RollupRow.objects.filter(rollup=rollup).delete()
        RollupRow.objects.bulk_create(
            [
                RollupRow(
                    rollup=rollup,
                    hoster_id=m.hoster_id,
                    metrics=metrics_to_json(m),
                    charts=result.curves.get(m.hoster_id, {}),
                )
                for m in result.hosters
            ],
            batch_size=500,
        )
    log.info("rollup %s refreshed in %d ms (%d hosters)", period.key, compute_ms, len(result.hosters))
    return rollup


def ensure(period: Period, *, now: datetime) -> Rollup:
    """The period's rollup, recomputed first when missing or stale."""
    rollup = Rollup.objects.filter(key=period.key).first()
    if rollup is None or not is_fresh(rollup, period, now):
        rollup = refresh(period, now=now)
    return rollup


def ensure_many(keys: list[str], *, now: datetime) -> dict[str, Rollup]:
    """Several periods' rollups in one query, recomputing the stale ones."""
    existing = {r.key: r for r in Rollup.objects.filter(key__in=keys).defer("national_charts")}
    result = {}
    for key in keys:
        period = periods.resolve(key, now)
        rollup = existing.get(key)
        if rollup is None or not is_fresh(rollup, period, now):
            rollup = refresh(period, now=now)
        result[key] = rollup
    return result


def invalidate_all() -> None:
    """Forget every rollup (measurements were rewritten: settings.MEASUREMENTS_CHANGED_HOOKS); pages
    and the drain recompute them when next needed."""
    Rollup.objects.all().delete()


# --- Reading ------------------------------------------------------------------------------------


def figures(
    period: Period,
    *,
    now: datetime,
    hosters: QuerySet[Hoster],
    notices: QuerySet[Notice],
    charts_for: Hoster | None = None,
    national_charts: bool = False,
) -> PeriodMetrics:
    """A period's figures for the hosters in `hosters` (a selector's queryset: scoping).

    Named periods come from their rollup; custom periods are computed from `notices` (also a
    selector's queryset) on the spot. Charts only for `charts_for` (and the national ones if asked).
    """
    if period.kind == "custom":
        return scorecards.period_metrics(
            period, now=now, notices=notices, hosters=hosters, with_charts=charts_for is not None or national_charts
        )
    rollup = ensure(period, now=now)
    rows = RollupRow.objects.filter(rollup=rollup, hoster__in=hosters)
    if charts_for is None:
        rows = rows.defer("charts")
    hoster_metrics, curves = [], {}
    for row in rows:
        m = metrics_from_json(row.metrics)
        m.hoster_id = row.hoster_id
        hoster_metrics.append(m)
        if charts_for is not None and row.hoster_id == charts_for.pk:
            curves[row.hoster_id] = row.charts
    hoster_metrics.sort(key=lambda m: m.hoster or "")
    if national_charts:
        curves[None] = rollup.national_charts
    return PeriodMetrics(
        period=period,
        computed_at=rollup.computed_at,
        hosters=hoster_metrics,
        national=metrics_from_json(rollup.national),
        unattributed=metrics_from_json(rollup.unattributed),
        curves=curves,
        methodology_version=rollup.methodology_version,
    )


def monthly(
    *, now: datetime, months: int, hosters: QuerySet[Hoster]
) -> tuple[list[str], dict[int, list[HosterMetrics | None]], list[HosterMetrics]]:
    """The last `months` months: their keys, per hoster id a list of that hoster's monthly figures
    (None where it had no notices), and the national figures per month."""
    keys = periods.last_months(now, months)
    rollups = ensure_many(keys, now=now)
    by_hoster: dict[int, list[HosterMetrics | None]] = {}
    position = {rollups[k].pk: i for i, k in enumerate(keys)}
    rows = RollupRow.objects.filter(rollup_id__in=list(position), hoster__in=hosters).defer("charts")
    for row in rows:
        series = by_hoster.setdefault(row.hoster_id, [None] * len(keys))
        m = metrics_from_json(row.metrics)
        m.hoster_id = row.hoster_id
        series[position[row.rollup_id]] = m
    national = [metrics_from_json(rollups[k].national) for k in keys]
    return keys, by_hoster, national


def monthly_rates(
    *, now: datetime, months: int, hosters: QuerySet[Hoster]
) -> tuple[list[str], dict[int, list[float | None]], list[HosterMetrics]]:
    """The last `months` months' compliance rate per hoster id (None where undecided): the league
    table's sparklines. Reads one number per row from the rollups' JSON, not the whole figures."""
    keys = periods.last_months(now, months)
    rollups = ensure_many(keys, now=now)
    position = {rollups[k].pk: i for i, k in enumerate(keys)}
    by_hoster: dict[int, list] = {}
    rows = RollupRow.objects.filter(rollup_id__in=list(position), hoster__in=hosters).values_list(
        "rollup_id", "hoster_id", "metrics__compliance_rate"
    )
    for rollup_id, hoster_id, rate in rows:
        by_hoster.setdefault(hoster_id, [None] * len(keys))[position[rollup_id]] = rate
    return keys, by_hoster, [metrics_from_json(rollups[k].national) for k in keys]


# --- The monitor's drain ------------------------------------------------------------------------

# Periods kept fresh whether or not anybody looked at them: what the pages offer first.
MONTHS_KEPT = 13


def wanted_keys(now: datetime) -> list[str]:
    local = now.astimezone(periods.local_tz())
    return [*periods.ROLLING_DAYS, "all", str(local.year), *periods.last_months(now, MONTHS_KEPT)]


def drain() -> bool:
    """Refresh the stalest rollup past half its maximum age; True while more are waiting.

    1. The periods to keep: the pages' presets, the last 13 months, and every period a page asked for.
    2. Those whose rollup is missing or past half its age (so pages rarely find one expired).
    3. Refresh the stalest one (its own short transaction); the rest on the next call.
    """
    now = timezone.now()
    existing = {r.key: r for r in Rollup.objects.only("key", "start", "end", "computed_at", "methodology_version")}
    stale: list[tuple[datetime, str]] = []
    for key in dict.fromkeys([*wanted_keys(now), *existing]):
        try:
            period = periods.resolve(key, now)
        except periods.PeriodError:
            continue
        rollup = existing.get(key)
        if rollup is None:
            stale.append((datetime.min.replace(tzinfo=now.tzinfo), key))
        elif not is_fresh(rollup, period, now, margin=0.5):
            stale.append((rollup.computed_at, key))
    if not stale:
        return False
    stale.sort()
    for position, (_age, key) in enumerate(stale):
        try:
            refresh(periods.resolve(key, now), now=now)
        except Exception:
            # One bad period never stops the others: log it, go on to the next stale one.
            log.exception("rollup %s failed", key)
            continue
        return position + 1 < len(stale)
    return False
