"""Compliance metrics per hoster and period: aggregates in SQL -> dataclasses.

One implementation feeds everything: `compliance_report`, `/api/v1/metrics/hosters/`, the league
table, the scorecards, the "below the bar" list and the rollups behind them. What each figure
counts is written once (`FIGURE_CONDITIONS`): the counts use it, and so does the list of the
notices behind a figure (`figure_notices`).

Two SQL queries per period (both over measured notices, `compliance.verdicts.measured_notices`):
1. one aggregate per hoster: notices, removed, within, late, pending, open, reappearances, ...
   (the verdict is `verdicts.verdict_expression`, the SQL twin of `compliance.rules.verdict`);
2. the observations grouped per hoster and millisecond (each time rounded UP to the next
   millisecond, never below the observation): how many notices were taken down at each time to
   takedown, and how many still-online notices were last seen at each time (censored).
   Percentiles, the Kaplan-Meier curve and the takedown-time histogram are computed from these
   counts by reports/survival.py, the same way on PostgreSQL and SQLite.

What counts is in docs/methodology.md (and on /methodology/).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import numpy as np
from django.conf import settings
from django.db import NotSupportedError, connection
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    DateTimeField,
    F,
    Func,
    IntegerField,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest

from compliance import verdicts
from compliance.models import Hoster, Notice
from reports import survival
from reports.periods import Period

OPEN = tuple(Notice.OPEN_STATUSES)
MECHANISMS = tuple(Notice.RemovalMechanism.values)


class Milliseconds(Func):
    """Milliseconds from the first datetime to the second, rounded UP (toward +infinity) to the next
    whole millisecond: a time to takedown is an upper bound and never falls below the observation
    (docs/methodology.md, "Times are upper bounds"). The same integer on PostgreSQL and SQLite, and
    the same as `compliance.rules.seconds_up` * 1000 in Python."""

    arity = 2
    output_field = BigIntegerField()

    @staticmethod
    def _ceil_ms(us: str) -> str:
        # Integer division truncates toward zero on both databases: for us >= 0 add 999 first; for
        # a negative difference (gone before the notification) truncation already rounds up.
        return f"(CASE WHEN ({us}) >= 0 THEN (({us}) + 999) / 1000 ELSE ({us}) / 1000 END)"

    def as_postgresql(self, compiler, connection, **extra):
        start, end = self.source_expressions
        start_sql, start_params = compiler.compile(start)
        end_sql, end_params = compiler.compile(end)
        # date_part (double precision) rather than EXTRACT (numeric, several times slower per row),
        # rounded to the whole microsecond it is (a double holds microseconds exactly for centuries),
        # then up to the millisecond: us / 1000.0 is exact when us is a whole number of
        # milliseconds and at least 0.001 from one otherwise, so ceil never rounds a float's noise.
        # One date_part per row (the CASE of `_ceil_ms` would evaluate it three times).
        us = f"round(date_part('epoch', {end_sql} - {start_sql}) * 1000000)"
        return f"ceil({us} / 1000.0)::bigint", (*end_params, *start_params)

    def as_sqlite(self, compiler, connection, **extra):
        # Django's own SQLite function for datetime differences, in whole microseconds.
        start, end = self.source_expressions
        start_sql, start_params = compiler.compile(start)
        end_sql, end_params = compiler.compile(end)
        us = f"django_timestamp_diff({end_sql}, {start_sql})"
        return self._ceil_ms(us), (*end_params, *start_params) * 3

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"Milliseconds is not implemented for {connection.vendor}")


def ttt_ms_expression() -> Milliseconds:
    """Time to takedown in milliseconds, rounded up: takedown_at - notified_at (docs/terms.md)."""
    return Milliseconds(F("notified_at"), F("takedown_at"))


def precision_ms_expression() -> Milliseconds:
    """The takedown's precision in milliseconds, rounded up: takedown_at - last_online_at (from the
    notification when the content was never seen online), as `Notice.precision_s`."""
    return Milliseconds(Coalesce(F("last_online_at"), F("notified_at")), F("takedown_at"))


def observed_ms_expression():
    """Kaplan-Meier time of a notice in milliseconds (rounded up): its time to takedown; for one
    without takedown (censored), the time from notification to its last check, 0 if it was never
    checked."""
    return Case(
        When(takedown_at__isnull=False, then=ttt_ms_expression()),
        When(last_checked_at__isnull=True, then=Value(0)),
        default=Greatest(Value(0), Milliseconds(F("notified_at"), F("last_checked_at"))),
        output_field=BigIntegerField(),
    )


@dataclass
class HosterMetrics:
    """One hoster's (or the nation's) figures over one period. Field names are the API's.

    One definition per figure (docs/methodology.md, "What each figure counts"): `notices` are the
    measured notices; `removed` those whose status is removed now (a reappeared notice is not: it
    is open, and counted in `taken_down` and `reappeared`); `within`/`late`/`pending` the verdict;
    `open` the statuses pending, online and reappeared. Repeats, withdrawn notices and (without a
    hoster) unresolvable ones are outside every rate and counted apart."""

    hoster: str | None  # slug; None for the national row and for unattributed notices
    name: str
    notices: int = 0
    removed: int = 0
    within: int = 0
    late: int = 0
    pending: int = 0
    open: int = 0
    compliance_rate: float | None = None
    compliance_rate_low: float | None = None
    compliance_rate_high: float | None = None
    median_ttt_s: float | None = None
    p90_ttt_s: float | None = None
    km_median_ttt_s: float | None = None
    regime: str | None = None  # the regime the figures are filtered to; None: all regimes together
    taken_down: int = 0
    reappeared: int = 0
    reappearances: int = 0
    displaced: int = 0
    served_selectively: int = 0  # notices whose content one vantage point saw while another was refused it
    server_gone: int = 0
    server_gone_provisional: int = 0
    repeats: int = 0
    withdrawn: int = 0
    unresolvable: int = 0
    open_past_deadline: int = 0
    oldest_open_notified_at: datetime | None = None
    removal_mechanisms: dict[str, int] = field(default_factory=dict)
    ipv4_addresses: int | None = None
    notices_per_10k_addresses: float | None = None
    is_small_sample: bool = True
    deadlines_s: list[int] = field(default_factory=list)
    methodology_version: str = ""
    hoster_id: int | None = None  # internal: not part of the API rows

    @property
    def decided(self) -> int:
        return self.within + self.late

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("hoster_id")
        return data


@dataclass
class PeriodMetrics:
    """All figures of one period: per hoster, for unattributed notices, and the national total."""

    period: Period
    computed_at: datetime
    hosters: list[HosterMetrics]
    national: HosterMetrics
    unattributed: HosterMetrics | None
    curves: dict[int | None, dict] = field(default_factory=dict)  # hoster_id (None: national) -> chart data
    methodology_version: str = ""
    regime: str | None = None


# --- The two queries ----------------------------------------------------------------------------

# The counts over measured notices, and over notified notices outside every rate (counted apart).
MEASURED_COUNTS = (
    "notices",
    "removed",
    "within",
    "late",
    "pending",
    "open",
    "open_past_deadline",
    "taken_down",
    "reappeared",
    "reappearances",
    "displaced",
    "served_selectively",
    "server_gone_provisional",
    *(f"mechanism_{m}" for m in MECHANISMS),
)
APART_COUNTS = ("repeats", "withdrawn", "unresolvable")
CELL_COUNTS = (*MEASURED_COUNTS, *APART_COUNTS)


# What each figure counts, as a condition on measured notices annotated with their verdict
# (`verdicts.annotate_verdict`; None: all of them). The aggregates count these (`aggregate_rows`)
# and the notices behind a figure are listed by them (`figure_notices`): one definition for both.
# Keys are the figures' names in URLs (`?figure=past`).
FIGURE_CONDITIONS: dict[str, Q | None] = {
    "notices": None,
    "removed": Q(status=Notice.Status.REMOVED),
    "within": Q(verdict_sql="within"),
    "late": Q(verdict_sql="late"),
    "pending": Q(verdict_sql="pending"),
    "open": Q(status__in=OPEN),
    "past": Q(status__in=OPEN) & Q(verdict_sql="late"),
    "taken_down": Q(takedown_at__isnull=False),
    "reappeared": Q(reappearance_count__gt=0),
    "served_selectively": Q(served_selectively_count__gt=0),
    "displaced": Q(is_displaced=True),
    "server_gone": Q(takedown_at__isnull=False, removal_mechanism=Notice.RemovalMechanism.SERVER_GONE),
}


def unmeasured_condition() -> Q:
    """Notified notices outside every rate: `compliance.selectors`' definition."""
    return verdicts.unmeasured_condition()


def provisional_condition(now: datetime) -> Q:
    """A takedown resting on a server-gone that has not settled yet (`Notice.is_provisional`, and
    not yet `settles_at`): its verdict is pending (`verdicts.verdict_expression`)."""
    return Q(takedown_at__isnull=False, removal_mechanism=Notice.RemovalMechanism.SERVER_GONE, settles_at__gt=now)


def next_change_expression(now: datetime):
    """When a pending verdict next changes without any check: at the deadline (pending -> late, or
    a streak that began by it keeps waiting), else when the notice settles (a provisional
    server-gone takedown is decided; a waiting streak is late). NULL: only a check changes it."""
    return Case(
        When(deadline_at__gte=now, then=F("deadline_at")),
        When(settles_at__gt=now, then=F("settles_at")),
        default=Value(None),
        output_field=DateTimeField(),
    )


def notified_in(base: QuerySet[Notice], period: Period, regime: str | None = None) -> QuerySet[Notice]:
    """Notices notified in the period (and of the regime), measured or not."""
    qs = period.filter(base.filter(notified_at__isnull=False))
    if regime:
        qs = qs.filter(regime=regime)
    return qs


def aggregate_rows(qs: QuerySet[Notice], now: datetime, group_by: tuple[str, ...]) -> list[dict]:
    """Query 1: the counts per group (`group_by`: e.g. hoster_id; NULL hoster: unattributed) over
    the notified notices `qs`: measured ones (their verdict is `verdicts.verdict_expression`, the
    SQL twin of `compliance.rules.verdict`) and, counted apart, the rest."""
    measured = verdicts.annotate_verdict(verdicts.measured_notices(qs), now)
    figure = FIGURE_CONDITIONS
    counts = {
        "notices": Count("id"),
        "removed": Count("id", filter=figure["removed"]),
        "within": Count("id", filter=figure["within"]),
        "late": Count("id", filter=figure["late"]),
        "pending": Count("id", filter=figure["pending"]),
        "open": Count("id", filter=figure["open"]),
        "open_past_deadline": Count("id", filter=figure["past"]),
        "taken_down": Count("id", filter=figure["taken_down"]),
        "reappeared": Count("id", filter=figure["reappeared"]),
        "reappearances": Coalesce(Sum("reappearance_count"), 0),
        "displaced": Count("id", filter=figure["displaced"]),
        "served_selectively": Count("id", filter=figure["served_selectively"]),
        "server_gone_provisional": Count("id", filter=provisional_condition(now)),
        "oldest_open_notified_at": Min("notified_at", filter=figure["open"]),
        "next_change_at": Min(next_change_expression(now), filter=Q(verdict_sql="pending")),
    }
    for mechanism in MECHANISMS:
        counts[f"mechanism_{mechanism}"] = Count("id", filter=Q(takedown_at__isnull=False, removal_mechanism=mechanism))
    rows = {tuple(r[k] for k in group_by): r for r in measured.order_by().values(*group_by).annotate(**counts)}
    apart = (
        qs.filter(unmeasured_condition())
        .order_by()
        .values(*group_by)
        .annotate(
            repeats=Count("id", filter=Q(status=Notice.Status.REPEAT)),
            withdrawn=Count("id", filter=Q(status=Notice.Status.WITHDRAWN)),
            unresolvable=Count("id", filter=Q(status=Notice.Status.UNRESOLVABLE)),
        )
    )
    for r in apart:
        key = tuple(r[k] for k in group_by)
        row = rows.setdefault(key, {**{k: r[k] for k in group_by}, **dict.fromkeys(MEASURED_COUNTS, 0)})
        row.update({k: r[k] for k in APART_COUNTS})
    for row in rows.values():
        for k in APART_COUNTS:
            row.setdefault(k, 0)
    return list(rows.values())


def grouped_observations(qs: QuerySet[Notice], group_by: tuple[str, ...]) -> dict[tuple, survival.Grouped]:
    """Query 2: per group of the measured notices `qs`, (time in ms, takedowns, observations) at
    each distinct millisecond. Group values must be integers or text (hoster_id NULL -> 0)."""
    group_fields = {
        f"g{i}": (Coalesce(k, Value(0), output_field=BigIntegerField()) if k == "hoster_id" else F(k))
        for i, k in enumerate(group_by)
    }
    names = list(group_fields)
    grouped_qs = (
        qs.annotate(
            **group_fields,
            t=observed_ms_expression(),
            ev=Case(When(takedown_at__isnull=False, then=Value(1)), default=Value(0), output_field=IntegerField()),
        )
        .order_by()
        .values(*names, "t")
        .annotate(d=Sum("ev"), c=Count("id"))
        .order_by(*names, "t")
        .values_list(*names, "t", "d", "c")
    )
    sql, params = grouped_qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return {}
    width = len(names)
    keys = [row[:width] for row in rows]
    arr = np.asarray([row[width:] for row in rows], dtype=np.int64)
    # Group boundaries: where the key changes (rows come sorted by key, then time).
    starts = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]
    result = {}
    for j, begin in enumerate(starts):
        finish = starts[j + 1] if j + 1 < len(starts) else len(keys)
        key = tuple(None if (group_by[i] == "hoster_id" and v == 0) else v for i, v in enumerate(keys[begin]))
        chunk = arr[begin:finish]
        result[key] = survival.Grouped(chunk[:, 0].copy(), chunk[:, 1].copy(), chunk[:, 2].copy())
    return result


# --- From rows to metrics -----------------------------------------------------------------------


def _metrics_from(row: dict, grouped: survival.Grouped, *, hoster: str | None, name: str) -> HosterMetrics:
    m = HosterMetrics(hoster=hoster, name=name, hoster_id=row.get("hoster_id"))
    for key in CELL_COUNTS:
        if not key.startswith("mechanism_"):
            setattr(m, key, int(row.get(key) or 0))
    m.server_gone = int(row.get("mechanism_server_gone") or 0)
    m.oldest_open_notified_at = row.get("oldest_open_notified_at")
    m.removal_mechanisms = {
        mech: int(row.get(f"mechanism_{mech}") or 0) for mech in MECHANISMS if row.get(f"mechanism_{mech}")
    }
    unknown = m.taken_down - sum(m.removal_mechanisms.values())
    if unknown:
        m.removal_mechanisms["unknown"] = unknown
    decided = m.within + m.late
    m.compliance_rate = m.within / decided if decided else None
    interval = survival.wilson_interval(m.within, decided)
    if interval:
        m.compliance_rate_low, m.compliance_rate_high = (round(x, 4) for x in interval)
    m.median_ttt_s, m.p90_ttt_s = survival.takedown_percentiles(grouped)
    m.km_median_ttt_s = survival.kaplan_meier(grouped).median_s
    m.is_small_sample = decided < settings.SCORECARD_MIN_NOTICES
    m.methodology_version = settings.METHODOLOGY_VERSION
    return m


def chart_data(by_deadline: dict[tuple[str, int], survival.Grouped]) -> dict:
    """A scorecard's charts: one Kaplan-Meier curve per regime and deadline (a curve never pools
    different deadlines), and the takedown-time histogram."""
    curves = []
    for (regime, deadline_s), grouped in sorted(by_deadline.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        points = survival.kaplan_meier(grouped).points(settings.SCORECARD_CURVE_POINTS)
        if points:
            curves.append({"regime": regime, "deadline_s": int(deadline_s), "n": grouped.n, "survival": points})
    return {
        "curves": curves,
        "histogram": survival.takedown_histogram(survival.Grouped.merge(list(by_deadline.values()))),
    }


def sum_rows(rows: list[dict], group: dict | None = None) -> dict:
    """Rows of counts added up (the national total; cells into a period)."""
    total: dict = dict(group or {"hoster_id": None})
    for row in rows:
        for key in CELL_COUNTS:
            total[key] = total.get(key, 0) + int(row.get(key) or 0)
        for key in ("oldest_open_notified_at", "next_change_at"):
            value = row.get(key)
            if value is not None and (total.get(key) is None or value < total[key]):
                total[key] = value
    for key in CELL_COUNTS:
        total.setdefault(key, 0)
    return total


def _add_size(m: HosterMetrics, addresses: int | None) -> None:
    m.ipv4_addresses = addresses
    if addresses:
        m.notices_per_10k_addresses = round(m.notices * 10000 / addresses, 2)


def build(
    period: Period,
    *,
    now: datetime,
    rows: list[dict],
    grouped: dict[tuple, survival.Grouped],
    with_charts: bool,
    regime: str | None,
    methodology_version: str | None = None,
    deadlines: dict[int | None, list[int]] | None = None,
) -> PeriodMetrics:
    """PeriodMetrics from counts per hoster_id (`rows`) and observations per (hoster_id, regime,
    deadline_s) (`grouped`): the same for a period computed from notices and one merged from cells.
    Without charts the observations may come per hoster only, keys (hoster_id, None, None), with the
    deadlines per hoster given apart (`deadlines`)."""
    by_hoster: dict[int | None, dict[tuple[str, int], survival.Grouped]] = {}
    for (hid, reg, deadline_s), g in grouped.items():
        by_hoster.setdefault(hid, {})[(reg, deadline_s)] = g
    known = {
        h.pk: h
        for h in Hoster.objects.filter(
            pk__in=[r["hoster_id"] for r in rows if r["hoster_id"] is not None]
        ).prefetch_related("prefixes")
    }
    hoster_metrics: list[HosterMetrics] = []
    unattributed = None
    curves: dict[int | None, dict] = {}
    for row in rows:
        hid = row["hoster_id"]
        parts = by_hoster.get(hid, {})
        g = survival.Grouped.merge(list(parts.values()))
        if hid is None:
            m = unattributed = _metrics_from(row, g, hoster=None, name="")
        else:
            hoster = known[hid]
            m = _metrics_from(row, g, hoster=hoster.slug, name=hoster.name)
            _add_size(m, hoster.ipv4_address_count())
            hoster_metrics.append(m)
        m.deadlines_s = deadlines.get(hid, []) if deadlines is not None else sorted({d for _r, d in parts})
        m.regime = regime
        if with_charts and hid is not None:
            curves[hid] = chart_data(parts)
    hoster_metrics.sort(key=lambda m: m.hoster or "")

    national_parts: dict[tuple[str, int], list[survival.Grouped]] = {}
    for parts in by_hoster.values():
        for key, g in parts.items():
            national_parts.setdefault(key, []).append(g)
    national_by_deadline = {key: survival.Grouped.merge(gs) for key, gs in national_parts.items()}
    national = _metrics_from(
        sum_rows(rows), survival.Grouped.merge(list(national_by_deadline.values())), hoster=None, name=""
    )
    if deadlines is not None:
        national.deadlines_s = sorted({d for ds in deadlines.values() for d in ds})
    else:
        national.deadlines_s = sorted({d for _r, d in national_by_deadline})
    national.regime = regime
    if with_charts:
        curves[None] = chart_data(national_by_deadline)
    version = methodology_version or settings.METHODOLOGY_VERSION
    for m in [*hoster_metrics, unattributed, national]:
        if m is not None:
            m.methodology_version = version
    return PeriodMetrics(
        period=period,
        computed_at=now,
        hosters=hoster_metrics,
        national=national,
        unattributed=unattributed,
        curves=curves,
        methodology_version=version,
        regime=regime,
    )


def period_metrics(
    period: Period,
    *,
    now: datetime,
    notices: QuerySet[Notice] | None = None,
    hosters: QuerySet[Hoster] | None = None,
    with_charts: bool = False,
    regime: str | None = None,
) -> PeriodMetrics:
    """All figures of `period` over `notices` (default: all), per hoster in `hosters` (default: all),
    computed from the notices now (custom periods; named periods are merged from rollup cells).

    Callers pass querysets from `compliance.selectors` (`notices_visible_to(user)`): that is how a
    hoster user's figures are only ever computed from its own notices.
    """
    base = notices if notices is not None else Notice.objects.all()
    if hosters is not None:
        base = base.filter(hoster__in=hosters)
    qs = notified_in(base, period, regime)
    rows = aggregate_rows(qs, now, ("hoster_id",))
    grouped = grouped_observations(verdicts.measured_notices(qs), ("hoster_id", "regime", "deadline_s"))
    return build(period, now=now, rows=rows, grouped=grouped, with_charts=with_charts, regime=regime)


# --- The notices behind a figure ----------------------------------------------------------------


def figure_notices(
    figure: str, *, hoster: Hoster, period: Period, now: datetime, notices: QuerySet[Notice], regime: str | None
) -> QuerySet[Notice]:
    """The measured notices of `hoster` that its figure `figure` (a key of FIGURE_CONDITIONS) counts,
    from `notices` (a selector's queryset: scoping), oldest notification first; each with its
    `verdict_sql` and `ttt_ms`."""
    condition = FIGURE_CONDITIONS[figure]
    qs = verdicts.annotate_verdict(verdicts.measured_notices(notices).filter(hoster=hoster), now).annotate(
        ttt_ms=ttt_ms_expression()
    )
    qs = period.filter(qs)
    if regime:
        qs = qs.filter(regime=regime)
    if condition is not None:
        qs = qs.filter(condition)
    return qs.order_by("notified_at", "id")


OVERDUE_LIMIT = 100


def open_past_deadline(
    hoster: Hoster, period: Period, *, now: datetime, notices: QuerySet[Notice], regime: str | None = None
) -> dict:
    """Open notices of the hoster past their deadline without takedown (the verdict late), oldest
    deadline first, at most OVERDUE_LIMIT (`more`: there are more). Uses the (status, deadline_at)
    index."""
    qs = verdicts.annotate_verdict(
        verdicts.measured_notices(notices).filter(hoster=hoster, status__in=Notice.OPEN_STATUSES, deadline_at__lt=now),
        now,
    ).filter(verdict_sql="late")
    qs = period.filter(qs)
    if regime:
        qs = qs.filter(regime=regime)
    rows = list(qs.order_by("deadline_at", "id")[: OVERDUE_LIMIT + 1])
    return {"rows": rows[:OVERDUE_LIMIT], "more": len(rows) > OVERDUE_LIMIT}


# --- compliance_report and /api/v1/metrics/hosters/ ---------------------------------------------

# The columns of `compliance_report` (README, "Commands"), in order; the API adds the rest of
# HosterMetrics after them.
REPORT_COLUMNS = [
    "hoster",
    "notices",
    "removed",
    "within",
    "late",
    "pending",
    "open",
    "compliance_rate",
    "median_ttt_s",
    "p90_ttt_s",
    "km_median_ttt_s",
    # The regime filtered to, and what is counted apart from the rates.
    "regime",
    "taken_down",
    "reappeared",
    "server_gone",
    "server_gone_provisional",
    "repeats",
    "withdrawn",
]


def report_rows(
    period: Period, *, now: datetime, notices=None, hosters=None, regime: str | None = None
) -> list[HosterMetrics]:
    """The rows of `compliance_report`: one per hoster with notices in the period, by slug."""
    return period_metrics(period, now=now, notices=notices, hosters=hosters, regime=regime).hosters


# Figures beyond the report's columns, in `--all-columns` and in the API.
EXTRA_COLUMNS = [
    "name",
    "compliance_rate_low",
    "compliance_rate_high",
    "reappearances",
    "unresolvable",
    "displaced",
    "served_selectively",
    "open_past_deadline",
    "oldest_open_notified_at",
    "ipv4_addresses",
    "notices_per_10k_addresses",
    "is_small_sample",
    "deadlines_s",
    "methodology_version",
]


def report_columns(*, all_columns: bool) -> list[str]:
    return REPORT_COLUMNS + (EXTRA_COLUMNS if all_columns else [])


def report_row(m: HosterMetrics, *, all_columns: bool) -> dict:
    """A row of compliance_report / the metrics API: plain JSON values, times in ISO 8601 (UTC)."""
    data = m.as_dict()
    row = {key: data[key] for key in report_columns(all_columns=all_columns)}
    if row.get("oldest_open_notified_at") is not None:
        row["oldest_open_notified_at"] = row["oldest_open_notified_at"].astimezone(UTC).isoformat()
    return row
