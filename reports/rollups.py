"""Rollups: the pages' figures, kept fresh incrementally (pages lag the checks by at most
SCORECARD_ROLLUP_MAX_AGE, 60 s by default).

Two layers, both caches that can always be recomputed from the notices:

- **cells** (`RollupCell`): one local day's partial figures per hoster, regime and deadline:
  counts and the grouped observations (milliseconds, takedowns, observations) behind percentiles
  and Kaplan-Meier. Both are additive, so a period of whole days is the sum of its cells;
- **period rollups** (`Rollup` + `RollupRow`): a named period's merged figures (`365d`, `2026`,
  `2026-03`, ..., for all regimes or one), what the pages read.

`catch_up(now)` finds the days that changed notices touch and recomputes their cells:
1. notices changed since the last pass (`updated_at`: checks, attribution, analysts' edits) or
   notified since (`notified_at`: new notices, notice e-mails accepted), rescanning a margin
   (MARGIN) for transactions that commit after the pass with an earlier timestamp;
2. days whose verdicts change with time alone (a deadline passes: pending -> late; a provisional
   server-gone takedown settles): each cell stores when that next happens (`next_change_at`);
3. a sweep of the days least recently computed (SWEEP_DAYS per pass), at least every
   SCORECARD_SETTLED_MAX_AGE: a safety net for a change no timestamp shows;
4. everything, when there are no cells yet or the methodology version changed.
Then the period rollups holding a recomputed day are marked stale, and `drain()` merges them again.

`drain()` is the monitor's rollup job (monitor/jobs.py). A page that finds the drain overdue (no
monitor running) catches up itself before it reads (`figures`), so a page never lags by more.
"""

from __future__ import annotations

import logging
import time
from dataclasses import fields
from datetime import date, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from compliance import verdicts
from compliance.models import Hoster, Notice
from reports import periods, scorecards, survival
from reports.models import Rollup, RollupCell, RollupRow, RollupState
from reports.periods import Period
from reports.scorecards import HosterMetrics, PeriodMetrics

log = logging.getLogger(__name__)

# Race: the monitor stamps `updated_at` before its transaction commits; a change committed after
# a pass with an earlier stamp is found by the next pass, which looks back this far.
MARGIN = timedelta(minutes=2)
SWEEP_DAYS = 7
CELL_GROUP = ("day", "hoster_id", "regime", "deadline_s")
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


# --- Days and cells -----------------------------------------------------------------------------


def local_day(moment: datetime) -> date:
    return moment.astimezone(periods.local_tz()).date()


def _days_condition(days: set[date]) -> Q:
    """Notices notified on any of `days` (local), as few notified_at ranges as possible."""
    condition = Q(pk__in=[])
    ordered = sorted(days)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + timedelta(days=1):
            j += 1
        first, end = periods.midnight(ordered[i]), periods.midnight(ordered[j] + timedelta(days=1))
        condition |= Q(notified_at__gte=first, notified_at__lt=end)
        i = j + 1
    return condition


def _as_date(value) -> date:
    return value if isinstance(value, date) else parse_date(str(value))


def _pack(grouped: survival.Grouped | None) -> bytes:
    if grouped is None or not len(grouped.times):
        return b""
    return np.stack([grouped.times, grouped.events, grouped.counts], axis=1).astype("<i8").tobytes()


_CONTENT = (
    "hoster_id",
    "regime",
    "deadline_s",
    "oldest_open_notified_at",
    "next_change_at",
    "observations",
    *scorecards.CELL_COUNTS,
)


def _content(cell: RollupCell) -> tuple:
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in (getattr(cell, f) for f in _CONTENT))


def compute_cells(days: set[date] | None, *, now: datetime) -> set[date] | None:
    """Recompute the cells of `days` (None: every day) from the notices, and the month cells of the
    months holding a day whose figures changed. Returns the days whose figures changed (None: all):
    a day recomputed with the same figures (the sweep, mostly) leaves every period as it was."""
    base = Notice.objects.filter(notified_at__isnull=False)
    if days is not None:
        if not days:
            return set()
        base = base.filter(_days_condition(days))
    qs = base.annotate(day=TruncDate("notified_at", tzinfo=periods.local_tz()))
    rows = scorecards.aggregate_rows(qs, now, CELL_GROUP)
    grouped = {
        (_as_date(k[0]), *k[1:]): g
        for k, g in scorecards.grouped_observations(verdicts.measured_notices(qs), CELL_GROUP).items()
    }
    cells = []
    for row in rows:
        key = (_as_date(row["day"]), row["hoster_id"], row["regime"], row["deadline_s"])
        cells.append(
            RollupCell(
                day=key[0],
                hoster_id=key[1],
                regime=key[2],
                deadline_s=key[3],
                computed_at=now,
                methodology_version=settings.METHODOLOGY_VERSION,
                oldest_open_notified_at=row.get("oldest_open_notified_at"),
                next_change_at=row.get("next_change_at"),
                observations=_pack(grouped.get(key)),
                **{k: int(row.get(k) or 0) for k in scorecards.CELL_COUNTS},
            )
        )
    stale = RollupCell.objects.all() if days is None else RollupCell.objects.filter(is_month=False, day__in=days)
    changed = None
    if days is not None:
        before: dict[date, set[tuple]] = {}
        for cell in stale.defer("computed_at"):
            before.setdefault(cell.day, set()).add(_content(cell))
        after: dict[date, set[tuple]] = {}
        for cell in cells:
            after.setdefault(cell.day, set()).add(_content(cell))
        changed = {d for d in days if before.get(d, set()) != after.get(d, set())}
    stale.delete()
    _insert(cells)
    months = {d.replace(day=1) for d in (changed if changed is not None else {c.day for c in cells})}
    compute_months(months, now=now)
    return changed


def _insert(cells: list[RollupCell]) -> None:
    """Write cells: COPY on PostgreSQL (for a year's cells Django's multi-row INSERTs spend far longer
    building their SQL than COPY takes; bench/README.md), bulk_create elsewhere."""
    if connection.vendor != "postgresql":
        RollupCell.objects.bulk_create(cells, batch_size=500)
        return
    fields = [f for f in RollupCell._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {RollupCell._meta.db_table} ({columns}) FROM STDIN") as copy:
            for cell in cells:
                copy.write_row([getattr(cell, f.attname) for f in fields])


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def compute_months(months: set[date], *, now: datetime) -> int:
    """Recompute the month cells of `months` (first days) as the sums of their day cells."""
    written = 0
    for month in sorted(months):
        days = RollupCell.objects.filter(is_month=False, day__gte=month, day__lt=_next_month(month))
        sums = {k: Sum(k) for k in scorecards.CELL_COUNTS}
        rows = (
            days.order_by()
            .values("hoster_id", "regime", "deadline_s")
            .annotate(**sums, oldest=Min("oldest_open_notified_at"), next_change=Min("next_change_at"))
        )
        grouped = _observations(days)
        cells = [
            RollupCell(
                day=month,
                is_month=True,
                hoster_id=row["hoster_id"],
                regime=row["regime"],
                deadline_s=row["deadline_s"],
                computed_at=now,
                methodology_version=settings.METHODOLOGY_VERSION,
                oldest_open_notified_at=row["oldest"],
                next_change_at=row["next_change"],
                observations=_pack(grouped.get((row["hoster_id"], row["regime"], row["deadline_s"]))),
                **{k: int(row[k] or 0) for k in scorecards.CELL_COUNTS},
            )
            for row in rows
        ]
        RollupCell.objects.filter(is_month=True, day=month).delete()
        _insert(cells)
        written += len(cells)
    return written


def changed_days(since: datetime, now: datetime) -> set[date]:
    """Steps 1-3 of the module docstring: the days to recompute."""
    touched = (
        Notice.objects.filter(notified_at__isnull=False)
        .filter(Q(updated_at__gte=since) | Q(notified_at__gte=since))
        .annotate(day=TruncDate("notified_at", tzinfo=periods.local_tz()))
        .order_by()
        .values_list("day", flat=True)
        .distinct()
    )
    days = {_as_date(d) for d in touched}
    day_cells = RollupCell.objects.filter(is_month=False)
    days |= set(day_cells.filter(next_change_at__lte=now).values_list("day", flat=True).distinct())
    sweep_before = now - timedelta(seconds=settings.SCORECARD_SETTLED_MAX_AGE)
    oldest = (
        day_cells.filter(computed_at__lt=sweep_before)
        .values("day")
        .annotate(at=Min("computed_at"))
        .order_by("at")
        .values_list("day", flat=True)[:SWEEP_DAYS]
    )
    days |= set(oldest)
    return days


def catch_up(now: datetime | None = None) -> set[date] | None:
    """Recompute the cells of the days changed since the last pass (None: all were recomputed) and
    mark the period rollups holding them stale. One pass at a time (the state row is locked)."""
    now = now or timezone.now()
    started = time.perf_counter()
    with transaction.atomic():
        state = RollupState.objects.select_for_update().first()
        rebuild = (
            state is None
            or state.methodology_version != settings.METHODOLOGY_VERSION
            or RollupCell.objects.exclude(methodology_version=settings.METHODOLOGY_VERSION).exists()
        )
        if rebuild:
            days = None
            compute_cells(None, now=now)
            Rollup.objects.update(is_stale=True)
        else:
            looked_at = changed_days(state.scanned_until - MARGIN, now)
            days = compute_cells(looked_at, now=now)
            _mark_stale(days)
        if state is None:
            state = RollupState(pk=1)
        state.scanned_until = now
        state.methodology_version = settings.METHODOLOGY_VERSION
        state.save()
    if days is None or days:
        log.info(
            "rollup cells: %s days changed in %d ms",
            "all" if days is None else len(days),
            (time.perf_counter() - started) * 1000,
        )
    return days


def _mark_stale(days: set[date]) -> None:
    if not days:
        return
    first, last = periods.midnight(min(days)), periods.midnight(max(days) + timedelta(days=1))
    Rollup.objects.filter(Q(start__isnull=True) | Q(start__lt=last), Q(end__isnull=True) | Q(end__gt=first)).update(
        is_stale=True
    )


def is_overdue(now: datetime) -> bool:
    """True when no pass looked at the notices within SCORECARD_ROLLUP_MAX_AGE (no monitor running)."""
    scanned = RollupState.objects.values_list("scanned_until", flat=True).first()
    return scanned is None or now - scanned > timedelta(seconds=settings.SCORECARD_ROLLUP_MAX_AGE)


def invalidate_all() -> None:
    """Measurements were rewritten (settings.MEASUREMENTS_CHANGED_HOOKS: recompute_measurements, a
    withdrawal, an attribution override): every figure may be stale now. Every such writer stamps
    `updated_at`, so the incremental pass finds the changed notices; this only makes the next page
    (or drain pass) catch up at once instead of within SCORECARD_ROLLUP_MAX_AGE. A new methodology
    version recomputes every cell by itself (`catch_up`); `rebuild_all` forgets everything."""
    overdue = timedelta(seconds=settings.SCORECARD_ROLLUP_MAX_AGE + 1)
    for state in RollupState.objects.all():
        RollupState.objects.filter(pk=state.pk).update(scanned_until=state.scanned_until - overdue)


def rebuild_all() -> None:
    """Forget every rollup and cell: the next pass of the drain, or the next page, recomputes them
    all from the notices (a year's million notices take a while: bench/README.md)."""
    with transaction.atomic():
        RollupState.objects.all().delete()
        RollupCell.objects.all().delete()
        Rollup.objects.all().delete()


# --- Merging cells into a period ----------------------------------------------------------------


def _cells_of(period: Period, regime: str | None) -> QuerySet[RollupCell]:
    """The cells that make up a period of whole days: month cells for the whole months in it, day
    cells for the days before the first and after the last whole month."""
    start = local_day(period.start) if period.start is not None else None
    end = local_day(period.end) if period.end is not None else None
    first_month = None if start is None else (start if start.day == 1 else _next_month(start))
    end_month = None if end is None else end.replace(day=1)  # months end by the period's end
    if first_month is not None and end_month is not None and end_month < first_month:
        end_month = first_month  # no whole month inside: days only
    months = Q(is_month=True)
    if first_month is not None:
        months &= Q(day__gte=first_month)
    if end_month is not None:
        months &= Q(day__lt=end_month)
    condition = months
    if start is not None and first_month is not None and start < first_month:
        lead_end = first_month if end is None else min(first_month, end)
        condition |= Q(is_month=False, day__gte=start, day__lt=lead_end)
    if end is not None and end_month is not None and end_month < end:
        tail_start = end_month if start is None else max(end_month, start)
        condition |= Q(is_month=False, day__gte=tail_start, day__lt=end)
    cells = RollupCell.objects.filter(condition)
    if regime:
        cells = cells.filter(regime=regime)
    return cells


def _combine(chunks: list[bytes]) -> survival.Grouped:
    arr = np.frombuffer(b"".join(chunks), dtype="<i8").reshape(-1, 3)
    times, events, counts = arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy()
    if len(chunks) == 1:
        return survival.Grouped(times, events, counts)
    return survival.Grouped.from_sorted_runs(times, events, counts)


def _observations(cells: QuerySet[RollupCell], *, per_deadline: bool = True) -> dict[tuple, survival.Grouped]:
    """The cells' grouped observations per (hoster_id, regime, deadline_s), merged; with
    `per_deadline=False` per hoster only (keys (hoster_id, None, None)): the figures need no more,
    and a year then merges 200 groups rather than 600."""
    sql, params = (
        cells.exclude(observations=b"").values_list("hoster_id", "regime", "deadline_s", "observations").query
    ).sql_with_params()
    chunks: dict[tuple, list[bytes]] = {}
    with connection.cursor() as cursor:  # raw rows: ~10,000 cells for a year, no per-row conversion
        cursor.execute(sql, params)
        for hoster_id, reg, deadline_s, observations in cursor.fetchall():
            key = (hoster_id, reg, deadline_s) if per_deadline else (hoster_id, None, None)
            chunks.setdefault(key, []).append(observations)
    return {key: _combine(parts) for key, parts in chunks.items()}


def merge(period: Period, *, now: datetime, regime: str | None = None, with_charts: bool = False) -> PeriodMetrics:
    """A named period's figures as the sum of its cells (whole local days). Charts only if asked:
    pages ask for one hoster's (`charts`), not for two hundred."""
    cells = _cells_of(period, regime)
    sums = {k: Sum(k) for k in scorecards.CELL_COUNTS}
    rows = list(
        cells.order_by()
        .values("hoster_id")
        .annotate(**sums, oldest_open_notified_at=Min("oldest_open_notified_at"), computed=Max("computed_at"))
    )
    grouped = _observations(cells, per_deadline=with_charts)
    deadlines: dict[int | None, list[int]] = {}
    measured = cells.filter(notices__gt=0).order_by()  # as the live figures: measured notices only
    for hoster_id, deadline_s in measured.values_list("hoster_id", "deadline_s").distinct():
        deadlines.setdefault(hoster_id, []).append(deadline_s)
    return scorecards.build(
        period,
        now=now,
        rows=rows,
        grouped=grouped,
        with_charts=with_charts,
        regime=regime,
        deadlines={k: sorted(v) for k, v in deadlines.items()},
    )


def charts(period: Period, *, regime: str | None, hoster_id: int | None) -> dict:
    """One hoster's charts (None: the national ones) over a named period, from its cells."""
    cells = _cells_of(period, regime)
    if hoster_id is not None:
        cells = cells.filter(hoster_id=hoster_id)
    parts: dict[tuple[str, int], list[survival.Grouped]] = {}
    for (_hid, reg, deadline_s), grouped in _observations(cells).items():
        parts.setdefault((reg, deadline_s), []).append(grouped)
    return scorecards.chart_data({key: survival.Grouped.merge(gs) for key, gs in parts.items()})


# --- Period rollups -----------------------------------------------------------------------------


def _bounds_match(rollup: Rollup, period: Period) -> bool:
    return rollup.start == period.start and rollup.end == period.end


def is_fresh(rollup: Rollup, period: Period) -> bool:
    """Holds every change the cells know of (the drain keeps rollups so)."""
    return (
        _bounds_match(rollup, period)
        and not rollup.is_stale
        and rollup.methodology_version == settings.METHODOLOGY_VERSION
    )


def is_usable(rollup: Rollup, period: Period, now: datetime) -> bool:
    """Good enough for a page: fresh, or stale for less than SCORECARD_ROLLUP_MAX_AGE (the drain
    merges it again within its interval; a page need not pay for that)."""
    return is_fresh(rollup, period) or (
        _bounds_match(rollup, period)
        and rollup.methodology_version == settings.METHODOLOGY_VERSION
        and now - rollup.computed_at <= timedelta(seconds=settings.SCORECARD_ROLLUP_MAX_AGE)
    )


def refresh(period: Period, *, now: datetime, regime: str | None = None) -> Rollup:
    """Merge a named period's cells and store the figures, replacing the previous rollup."""
    if period.kind == "custom":
        raise ValueError("custom periods are computed on the spot, not stored")
    started = time.perf_counter()
    result = merge(period, now=now, regime=regime)
    compute_ms = int((time.perf_counter() - started) * 1000)
    with transaction.atomic():
        rollup, _created = Rollup.objects.select_for_update().get_or_create(
            key=period.key,
            regime=regime or "",
            defaults={"computed_at": now, "methodology_version": settings.METHODOLOGY_VERSION, "national": {}},
        )
        rollup.start, rollup.end = period.start, period.end
        rollup.computed_at = now
        rollup.compute_ms = compute_ms
        rollup.is_stale = False
        rollup.methodology_version = result.methodology_version
        rollup.national = metrics_to_json(result.national)
        rollup.unattributed = metrics_to_json(result.unattributed)
        rollup.national_charts = {}  # made when first asked for (`_from_rollup`)
        rollup.save()
        RollupRow.objects.filter(rollup=rollup).delete()
        RollupRow.objects.bulk_create(
            [
                RollupRow(
                    rollup=rollup,
                    hoster_id=m.hoster_id,
                    metrics=metrics_to_json(m),
                    charts={},  # made when a scorecard first asks for them (`_from_rollup`)
                )
                for m in result.hosters
            ],
            batch_size=500,
        )
    log.debug("rollup %s/%s merged in %d ms (%d hosters)", period.key, regime or "all", compute_ms, len(result.hosters))
    return rollup


def _catch_up_if_overdue(now: datetime) -> bool:
    """Catch up when the drain is overdue; True if this call did (then a stale rollup is merged
    again before it is shown: nobody else is about to)."""
    if is_overdue(now):
        catch_up(now)
        return True
    return False


def ensure(period: Period, *, now: datetime, regime: str | None = None) -> Rollup:
    """The period's rollup, merged again first when missing or stale (cells caught up first when
    the drain is overdue)."""
    caught_up = _catch_up_if_overdue(now)
    rollup = Rollup.objects.filter(key=period.key, regime=regime or "").first()
    if rollup is None or not (is_fresh(rollup, period) if caught_up else is_usable(rollup, period, now)):
        rollup = refresh(period, now=now, regime=regime)
    return rollup


def ensure_many(keys: list[str], *, now: datetime, regime: str | None = None) -> dict[str, Rollup]:
    """Several periods' rollups in one query, merging the stale ones again."""
    caught_up = _catch_up_if_overdue(now)
    existing = {r.key: r for r in Rollup.objects.filter(key__in=keys, regime=regime or "").defer("national_charts")}
    result = {}
    for key in keys:
        period = periods.resolve(key, now)
        rollup = existing.get(key)
        if rollup is None or not (is_fresh(rollup, period) if caught_up else is_usable(rollup, period, now)):
            rollup = refresh(period, now=now, regime=regime)
        result[key] = rollup
    return result


# --- Reading ------------------------------------------------------------------------------------


def figures(
    period: Period,
    *,
    now: datetime,
    hosters: QuerySet[Hoster],
    notices: QuerySet[Notice],
    charts_for: Hoster | None = None,
    national_charts: bool = False,
    regime: str | None = None,
) -> PeriodMetrics:
    """A period's figures for the hosters in `hosters` (a selector's queryset: scoping).

    Named periods come from their rollup; custom periods are computed from `notices` (also a
    selector's queryset) on the spot. Charts only for `charts_for` (and the national ones if asked).
    """
    if period.kind == "custom":
        return scorecards.period_metrics(
            period,
            now=now,
            notices=notices,
            hosters=hosters,
            with_charts=charts_for is not None or national_charts,
            regime=regime,
        )
    rollup = ensure(period, now=now, regime=regime)
    result = _from_rollup(rollup, period, hosters=hosters, charts_for=charts_for, national_charts=national_charts)
    if not result.hosters and _has_measured(period, notices.filter(hoster__in=hosters), regime):
        # Never "no notices" while there are some: notices arrived since the last pass.
        catch_up(now)
        rollup = refresh(period, now=now, regime=regime)
        result = _from_rollup(rollup, period, hosters=hosters, charts_for=charts_for, national_charts=national_charts)
    return result


def _has_measured(period: Period, notices: QuerySet[Notice], regime: str | None) -> bool:
    return scorecards.notified_in(notices, period, regime).exists()


def _from_rollup(rollup: Rollup, period: Period, *, hosters, charts_for, national_charts) -> PeriodMetrics:
    """The rollup's rows for `hosters`; charts for `charts_for` (and the nation), made from the
    cells on first demand and kept with the rollup until it is merged again."""
    rows = RollupRow.objects.filter(rollup=rollup, hoster__in=hosters)
    if charts_for is None:
        rows = rows.defer("charts")
    hoster_metrics, curves = [], {}
    regime = rollup.regime or None
    for row in rows:
        m = metrics_from_json(row.metrics)
        m.hoster_id = row.hoster_id
        hoster_metrics.append(m)
        if charts_for is not None and row.hoster_id == charts_for.pk:
            if not row.charts:
                row.charts = charts(period, regime=regime, hoster_id=row.hoster_id)
                RollupRow.objects.filter(pk=row.pk).update(charts=row.charts)
            curves[row.hoster_id] = row.charts
    hoster_metrics.sort(key=lambda m: m.hoster or "")
    if national_charts:
        if not rollup.national_charts:
            rollup.national_charts = charts(period, regime=regime, hoster_id=None)
            Rollup.objects.filter(pk=rollup.pk).update(national_charts=rollup.national_charts)
        curves[None] = rollup.national_charts
    return PeriodMetrics(
        period=period,
        computed_at=rollup.computed_at,
        hosters=hoster_metrics,
        national=metrics_from_json(rollup.national),
        unattributed=metrics_from_json(rollup.unattributed),
        curves=curves,
        methodology_version=rollup.methodology_version,
        regime=rollup.regime or None,
    )


def monthly(
    *, now: datetime, months: int, hosters: QuerySet[Hoster], regime: str | None = None
) -> tuple[list[str], dict[int, list[HosterMetrics | None]], list[HosterMetrics]]:
    """The last `months` months: their keys, per hoster id a list of that hoster's monthly figures
    (None where it had no notices), and the national figures per month."""
    keys = periods.last_months(now, months)
    rollups = ensure_many(keys, now=now, regime=regime)
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
    *, now: datetime, months: int, hosters: QuerySet[Hoster], regime: str | None = None
) -> tuple[list[str], dict[int, list[float | None]], list[HosterMetrics]]:
    """The last `months` months' compliance rate per hoster id (None where undecided), and the
    national counts per month: the league table's sparklines and national table. Summed from the
    month cells in one query: no period rollup needed, for any regime."""
    _catch_up_if_overdue(now)
    keys = periods.last_months(now, months)
    starts = [date(int(k[:4]), int(k[5:]), 1) for k in keys]
    position = {d: i for i, d in enumerate(starts)}
    cells = RollupCell.objects.filter(is_month=True, day__in=starts)
    if regime:
        cells = cells.filter(regime=regime)
    sums = cells.order_by().values("hoster_id", "day").annotate(n=Sum("notices"), w=Sum("within"), l=Sum("late"))
    visible = set(hosters.values_list("pk", flat=True))
    by_hoster: dict[int, list] = {}
    national = [HosterMetrics(hoster=None, name="") for _k in keys]
    for row in sums:
        i = position[row["day"]]
        within, late = int(row["w"] or 0), int(row["l"] or 0)
        m = national[i]
        m.notices, m.within, m.late = m.notices + int(row["n"] or 0), m.within + within, m.late + late
        if row["hoster_id"] in visible:
            by_hoster.setdefault(row["hoster_id"], [None] * len(keys))[i] = (
                within / (within + late) if within + late else None
            )
    for m in national:
        m.compliance_rate = m.within / m.decided if m.decided else None
        interval = survival.wilson_interval(m.within, m.decided)
        if interval:
            m.compliance_rate_low, m.compliance_rate_high = (round(x, 4) for x in interval)
    return keys, by_hoster, national


# --- The monitor's drain ------------------------------------------------------------------------

# Periods kept fresh whether or not anybody looked at them: what the pages offer first.
MONTHS_KEPT = 13


def wanted_keys(now: datetime) -> list[str]:
    local = now.astimezone(periods.local_tz())
    return [*periods.ROLLING_DAYS, "all", str(local.year), *periods.last_months(now, MONTHS_KEPT)]


def drain() -> bool:
    """Catch up with changed notices, then merge the period rollups that need it; always returns
    False (one pass does all that is due; the next call comes within the drain's interval).

    1. `catch_up`: recompute the cells of the days changed notices touch (module docstring).
    2. The periods to keep: the pages' presets and the last 13 months (all regimes), and every
       period (and regime) a page asked for since.
    3. Merge again each one that is missing, stale (one of its days changed), or whose bounds moved
       (rolling periods at local midnight); each in its own short transaction.
    """
    now = timezone.now()
    catch_up(now)
    existing = {
        (r.key, r.regime): r
        for r in Rollup.objects.only("key", "regime", "start", "end", "is_stale", "methodology_version")
    }
    wanted = dict.fromkeys([*((k, "") for k in wanted_keys(now)), *existing])
    for key, regime in wanted:
        try:
            period = periods.resolve(key, now)
        except periods.PeriodError:
            continue
        rollup = existing.get((key, regime))
        if rollup is not None and is_fresh(rollup, period):
            continue
        try:
            refresh(period, now=now, regime=regime or None)
        except Exception:
            # One bad period never stops the others: log it, go on to the next.
            log.exception("rollup %s/%s failed", key, regime or "all")
    return False
