"""Compliance metrics per hoster and period: aggregates in SQL -> dataclasses.

One implementation feeds everything: `compliance_report`, `/api/v1/metrics/hosters/`, the league
table, the scorecards, the "below the bar" list and the rollups behind them.

Two SQL queries per period (both over measured notices, `compliance.selectors.measured_notices`):
1. one aggregate per hoster: notices, removed, within, late, pending, open, reappearances, ...
   (the verdict is `selectors.verdict_expression`, the SQL twin of `compliance.rules.verdict`);
2. the observations grouped per hoster and whole second: how many notices were taken down at
   each time to takedown, and how many still-online notices were last seen at each time (censored).
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
    F,
    Func,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest

from compliance import selectors
from compliance.models import Hoster, Notice
from reports import survival
from reports.periods import Period

OPEN = tuple(Notice.OPEN_STATUSES)
MECHANISMS = tuple(Notice.RemovalMechanism.values)


class WholeSeconds(Func):
    """Whole seconds from the first datetime to the second, truncated toward zero (as `Notice.ttt_s`)."""

    arity = 2
    output_field = BigIntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        # end - start: arguments are (start, end).
        start, end = self.source_expressions
        start_sql, start_params = compiler.compile(start)
        end_sql, end_params = compiler.compile(end)
        # date_part (double precision) rather than EXTRACT (numeric, several times slower per row);
        # exact here: microsecond resolution keeps every value at least 1e-6 from the next integer.
        return f"TRUNC(date_part('epoch', {end_sql} - {start_sql}))::bigint", (*end_params, *start_params)

    def as_sqlite(self, compiler, connection, **extra):
        # Django's own SQLite function for datetime differences, in microseconds; integer division
        # truncates toward zero as Python's int() does.
        start, end = self.source_expressions
        start_sql, start_params = compiler.compile(start)
        end_sql, end_params = compiler.compile(end)
        return f"(django_timestamp_diff({end_sql}, {start_sql}) / 1000000)", (*end_params, *start_params)

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"WholeSeconds is not implemented for {connection.vendor}")


def ttt_expression() -> WholeSeconds:
    """Time to takedown in whole seconds (CONTRACT: takedown_at - notified_at)."""
    return WholeSeconds(F("notified_at"), F("takedown_at"))


def observed_time_expression():
    """Kaplan-Meier time of a notice: its time to takedown; for one without takedown (censored),
    the time from notification to its last check, 0 if it was never checked."""
    return Case(
        When(takedown_at__isnull=False, then=ttt_expression()),
        When(last_checked_at__isnull=True, then=Value(0)),
        default=Greatest(Value(0), WholeSeconds(F("notified_at"), F("last_checked_at"))),
        output_field=BigIntegerField(),
    )


@dataclass
class HosterMetrics:
    """One hoster's (or the nation's) figures over one period. Field names are the API's."""

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
    taken_down: int = 0
    reappeared: int = 0
    reappearances: int = 0
    displaced: int = 0
    served_selectively: int = 0  # notices whose content one vantage point saw while another was refused it
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


# --- The two queries ----------------------------------------------------------------------------


def _period_notices(base: QuerySet[Notice], period: Period) -> QuerySet[Notice]:
    qs = selectors.measured_notices(base)
    if period.start is not None:
        qs = qs.filter(notified_at__gte=period.start)
    if period.end is not None:
        qs = qs.filter(notified_at__lt=period.end)
    return qs


def _aggregate_rows(qs: QuerySet[Notice], now: datetime) -> list[dict]:
    """Query 1: counts per hoster_id (NULL: unattributed)."""
    annotated = selectors.annotate_verdict(qs, now)
    counts = {
        "notices": Count("id"),
        "removed": Count("id", filter=Q(status=Notice.Status.REMOVED)),
        "within": Count("id", filter=Q(verdict_sql="within")),
        "late": Count("id", filter=Q(verdict_sql="late")),
        "pending": Count("id", filter=Q(verdict_sql="pending")),
        "open": Count("id", filter=Q(status__in=OPEN)),
        "open_past_deadline": Count("id", filter=Q(status__in=OPEN, verdict_sql="late")),
        "taken_down": Count("id", filter=Q(takedown_at__isnull=False)),
        "reappeared": Count("id", filter=Q(reappearance_count__gt=0)),
        "reappearances": Coalesce(Sum("reappearance_count"), 0),
        "displaced": Count("id", filter=Q(is_displaced=True)),
        "served_selectively": Count("id", filter=Q(served_selectively_count__gt=0)),
        "oldest_open_notified_at": Min("notified_at", filter=Q(status__in=OPEN)),
        "deadline_min": Min("deadline_s"),
        "deadline_max": Max("deadline_s"),
    }
    for mechanism in MECHANISMS:
        counts[f"mechanism_{mechanism}"] = Count("id", filter=Q(takedown_at__isnull=False, removal_mechanism=mechanism))
    return list(annotated.order_by().values("hoster_id").annotate(**counts))


def _deadlines(qs: QuerySet[Notice], hoster_ids: list[int | None]) -> dict[int | None, list[int]]:
    """The distinct deadlines per hoster, only asked for where a hoster's notices have several."""
    if not hoster_ids:
        return {}
    condition = Q(hoster_id__in=[h for h in hoster_ids if h is not None])
    if None in hoster_ids:
        condition |= Q(hoster_id__isnull=True)
    mixed = qs.filter(condition)
    found: dict[int | None, set[int]] = {}
    for hoster_id, deadline_s in mixed.order_by().values_list("hoster_id", "deadline_s").distinct():
        found.setdefault(hoster_id, set()).add(deadline_s)
    return {k: sorted(v) for k, v in found.items()}


def _grouped_observations(qs: QuerySet[Notice]) -> dict[int | None, survival.Grouped]:
    """Query 2: per hoster, (time, takedowns, observations) at each distinct whole second."""
    grouped_qs = (
        qs.annotate(
            hid=Coalesce("hoster_id", Value(0), output_field=BigIntegerField()),
            t=observed_time_expression(),
            ev=Case(When(takedown_at__isnull=False, then=Value(1)), default=Value(0), output_field=IntegerField()),
        )
        .order_by()
        .values("hid", "t")
        .annotate(d=Sum("ev"), c=Count("id"))
        .order_by("hid", "t")
        .values_list("hid", "t", "d", "c")
    )
    sql, params = grouped_qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return {}
    arr = np.asarray(rows, dtype=np.int64)
    boundaries = np.flatnonzero(np.diff(arr[:, 0])) + 1
    result = {}
    for chunk in np.split(arr, boundaries):
        hid = int(chunk[0, 0])
        result[hid or None] = survival.Grouped(chunk[:, 1].copy(), chunk[:, 2].copy(), chunk[:, 3].copy())
    return result


# --- From rows to metrics -----------------------------------------------------------------------


def _metrics_from(row: dict, grouped: survival.Grouped, *, hoster: str | None, name: str) -> HosterMetrics:
    m = HosterMetrics(hoster=hoster, name=name, hoster_id=row.get("hoster_id"))
    for key in (
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
    ):
        setattr(m, key, int(row.get(key) or 0))
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
    curve = survival.kaplan_meier(grouped)
    m.km_median_ttt_s = float(curve.median) if curve.median is not None else None
    m.is_small_sample = decided < settings.SCORECARD_MIN_NOTICES
    m.methodology_version = settings.METHODOLOGY_VERSION
    return m


def _chart_data(grouped: survival.Grouped) -> dict:
    curve = survival.kaplan_meier(grouped)
    return {
        "survival": curve.points(settings.SCORECARD_CURVE_POINTS),
        "histogram": survival.takedown_histogram(grouped),
    }


def _sum_rows(rows: list[dict]) -> dict:
    total: dict = {"hoster_id": None}
    for row in rows:
        for key, value in row.items():
            if key == "hoster_id" or value is None:
                continue
            if key == "oldest_open_notified_at" or key == "deadline_min":
                total[key] = min(total[key], value) if total.get(key) is not None else value
            elif key == "deadline_max":
                total[key] = max(total[key], value) if total.get(key) is not None else value
            else:
                total[key] = total.get(key, 0) + value
    return total


def _add_size(m: HosterMetrics, addresses: int | None) -> None:
    m.ipv4_addresses = addresses
    if addresses:
        m.notices_per_10k_addresses = round(m.notices * 10000 / addresses, 2)


def period_metrics(
    period: Period,
    *,
    now: datetime,
    notices: QuerySet[Notice] | None = None,
    hosters: QuerySet[Hoster] | None = None,
    with_charts: bool = False,
) -> PeriodMetrics:
    """All figures of `period` over `notices` (default: all), per hoster in `hosters` (default: all).

    Callers pass querysets from `compliance.selectors` (`notices_visible_to(user)`): that is how a
    hoster user's figures are only ever computed from its own notices.
    """
    base = notices if notices is not None else Notice.objects.all()
    if hosters is not None:
        base = base.filter(hoster__in=hosters)
    qs = _period_notices(base, period)
    rows = _aggregate_rows(qs, now)
    grouped = _grouped_observations(qs)
    by_id = {row["hoster_id"]: row for row in rows}
    known = {
        h.pk: h for h in Hoster.objects.filter(pk__in=[k for k in by_id if k is not None]).prefetch_related("prefixes")
    }
    mixed = [row["hoster_id"] for row in rows if row["deadline_min"] != row["deadline_max"]]
    deadlines = _deadlines(qs, mixed) if mixed else {}

    def deadlines_of(row: dict) -> list[int]:
        if row["hoster_id"] in deadlines:
            return deadlines[row["hoster_id"]]
        return sorted({row["deadline_min"], row["deadline_max"]} - {None})

    hoster_metrics: list[HosterMetrics] = []
    unattributed = None
    curves: dict[int | None, dict] = {}
    for row in rows:
        hid = row["hoster_id"]
        g = grouped.get(hid, survival.Grouped.empty())
        if hid is None:
            unattributed = _metrics_from(row, g, hoster=None, name="")
            unattributed.deadlines_s = deadlines_of(row)
            continue
        hoster = known[hid]
        m = _metrics_from(row, g, hoster=hoster.slug, name=hoster.name)
        m.deadlines_s = deadlines_of(row)
        _add_size(m, hoster.ipv4_address_count())
        hoster_metrics.append(m)
        if with_charts:
            curves[hid] = _chart_data(g)
    hoster_metrics.sort(key=lambda m: m.hoster or "")

    total_row = _sum_rows(rows)
    national_grouped = survival.Grouped.merge(list(grouped.values()))
    national = _metrics_from(total_row, national_grouped, hoster=None, name="")
    national.deadlines_s = sorted({d for m in [*hoster_metrics, unattributed] if m for d in m.deadlines_s})
    if with_charts:
        curves[None] = _chart_data(national_grouped)
    return PeriodMetrics(
        period=period,
        computed_at=now,
        hosters=hoster_metrics,
        national=national,
        unattributed=unattributed,
        curves=curves,
        methodology_version=settings.METHODOLOGY_VERSION,
    )


# --- compliance_report and /api/v1/metrics/hosters/ ---------------------------------------------

# CONTRACT.md's columns, in order; the API adds the rest of HosterMetrics after them.
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
]


def report_rows(period: Period, *, now: datetime, notices=None, hosters=None) -> list[HosterMetrics]:
    """The rows of `compliance_report`: one per hoster with notices in the period, by slug."""
    return period_metrics(period, now=now, notices=notices, hosters=hosters).hosters


# Figures beyond CONTRACT.md's, in `--all-columns` and in the API.
EXTRA_COLUMNS = [
    "name",
    "compliance_rate_low",
    "compliance_rate_high",
    "taken_down",
    "reappeared",
    "reappearances",
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
