"""Pages: the league table, one hoster's scorecard, the notices behind a figure, "below the bar",
and the methodology. Parse input, call selectors/rollups, render. Scoping is compliance.selectors'.

Roles (docs/methodology.md, "Who sees what"): analysts, ministry and researchers see every hoster
and the national totals; a hoster user sees its own scorecard only (another hoster's is 404) and a
league table holding its own row only; URLs only for analysts and hoster users (their own notices).
"""

from __future__ import annotations

import csv
from datetime import datetime

import plotly
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from compliance import selectors
from compliance.methodology import VERSIONS as METHODOLOGY_VERSIONS
from compliance.models import Hoster, MethodologyRecord, Notice
from compliance.pseudonym import pseudonymise, pseudonymise_address
from reports import charts, display, periods, rollups, scorecards
from reports.periods import Period, PeriodError
from reports.scorecards import HosterMetrics

SPARK_MONTHS = 12

# League table columns: key -> (label, sort key on HosterMetrics). Sorting None last either way.
SORTS = {
    "rank": lambda m: m._rank_key,
    "hoster": lambda m: (m.name or "").lower(),
    "notices": lambda m: m.notices,
    "per10k": lambda m: m.notices_per_10k_addresses,
    "within": lambda m: m.within,
    "late": lambda m: m.late,
    "pending": lambda m: m.pending,
    "open": lambda m: m.open,
    "rate": lambda m: m.compliance_rate,
    "low": lambda m: m.compliance_rate_low,
    "median": lambda m: m.median_ttt_s,
    "p90": lambda m: m.p90_ttt_s,
    "km": lambda m: m.km_median_ttt_s,
    "reappeared": lambda m: m.reappeared,
    "past": lambda m: m.open_past_deadline,
}


def _require_role(user) -> str:
    role = selectors.role_of(user)
    if role is None:
        raise PermissionDenied(_("Your account has no role yet."))
    return role


def _period(request, now: datetime) -> Period:
    try:
        return Period.parse(request.GET, now)
    except PeriodError as exc:
        raise BadPeriod(str(exc)) from None


class BadPeriod(Exception):
    pass


def _regime(request) -> str | None:
    """`regime=covenant|order|other`, or None (all regimes together)."""
    regime = request.GET.get("regime") or None
    if regime is not None and regime not in Notice.Regime.values:
        raise BadPeriod(f"unknown regime {regime!r}: use {', '.join(Notice.Regime.values)}")
    return regime


def _params(period: Period, regime: str | None) -> dict[str, str]:
    """How to ask for this period (and regime) again in a URL."""
    return {**period.query_params(), **({"regime": regime} if regime else {})}


def _filter_context(request, period: Period, regime: str | None, now: datetime) -> dict:
    return {
        "period": period,
        "regime": regime or "",
        "regime_choices": Notice.Regime.choices,
        "choices": period_choices(now),
    }


def _bad_period(exc: BadPeriod) -> HttpResponseBadRequest:
    return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")


def period_choices(now: datetime) -> list[tuple[str, str]]:
    """The periods offered in the selector: rolling, all time, this and last year, recent months."""
    local = now.astimezone(periods.local_tz())
    choices = [(k, periods.resolve(k, now).label) for k in periods.ROLLING_DAYS]
    choices.append(("all", periods.resolve("all", now).label))
    choices += [(str(y), str(y)) for y in (local.year, local.year - 1)]
    choices += [(k, periods.resolve(k, now).label) for k in reversed(periods.last_months(now, rollups.MONTHS_KEPT))]
    return choices


def rank(rows: list[HosterMetrics]) -> None:
    """Rank by compliance rate, highest first; ties share a rank. Hosters with few decided notices
    (or none) get no rank: their rate is too uncertain to place (`is_small_sample`)."""
    ranked = sorted(
        (m for m in rows if not m.is_small_sample and m.compliance_rate is not None),
        key=lambda m: -m.compliance_rate,
    )
    previous, position = None, 0
    for i, m in enumerate(ranked, start=1):
        if m.compliance_rate != previous:
            position, previous = i, m.compliance_rate
        m.rank = position
    for m in rows:
        if not hasattr(m, "rank"):
            m.rank = None
        m._rank_key = m.rank


def sort_rows(rows: list[HosterMetrics], key: str, descending: bool) -> list[HosterMetrics]:
    getter = SORTS.get(key, SORTS["rank"])
    present = [m for m in rows if getter(m) is not None]
    missing = [m for m in rows if getter(m) is None]
    present.sort(key=getter, reverse=descending)
    return present + sorted(missing, key=lambda m: (m.name or "").lower())


@login_required
@require_GET
def league_table(request):
    _require_role(request.user)
    now = timezone.now()
    try:
        period, regime = _period(request, now), _regime(request)
    except BadPeriod as exc:
        return _bad_period(exc)
    sees_all = selectors.sees_all_hosters(request.user)
    hosters = selectors.hosters_visible_to(request.user)
    figures = rollups.figures(
        period, now=now, hosters=hosters, notices=selectors.notices_visible_to(request.user), regime=regime
    )
    rows = figures.hosters
    rank(rows)
    sort = request.GET.get("sort", "rank")
    descending = request.GET.get("dir", "asc") == "desc"
    rows = sort_rows(rows, sort if sort in SORTS else "rank", descending)

    if request.GET.get("format") == "csv":
        return _league_csv(rows, figures, filename=f"league-{period.key}")

    months, rates_by_hoster, national_monthly = rollups.monthly_rates(
        now=now, months=SPARK_MONTHS, hosters=hosters, regime=regime
    )
    period_query = urlencode(_params(period, regime))
    # Cells formatted here, not in the template: 200 hosters x 15 columns of template filters cost
    # more than half a second; this costs a few milliseconds.
    table = [
        {
            "rank": m.rank,
            "name": m.name,
            "url": reverse("reports:scorecard", args=[m.hoster]) + "?" + period_query,
            "cells": _league_cells(m),
            "sparkline": charts.sparkline(rates_by_hoster.get(m.hoster_id, [None] * len(months))),
        }
        for m in rows
    ]
    base_params = _params(period, regime)
    columns = [
        (key, label, "num" if key not in ("hoster",) else "")
        for key, label in [
            ("rank", _("rank")),
            ("hoster", _("hoster")),
            ("notices", _("notices")),
            ("per10k", _("per 10,000 addresses")),
            ("within", _("within")),
            ("late", _("late")),
            ("pending", _("pending")),
            ("open", _("open")),
            ("rate", _("compliance")),
            ("low", _("95% interval")),
            ("median", _("median TTT")),
            ("p90", _("p90 TTT")),
            ("km", _("KM median")),
            ("reappeared", _("reappeared")),
        ]
    ]
    headers = []
    for key, label, css in columns:
        next_desc = not descending if key == sort else key not in ("rank", "hoster")
        headers.append(
            {
                "key": key,
                "label": label,
                "css": css,
                "active": key == sort,
                "descending": descending,
                "url": "?" + urlencode({**base_params, "sort": key, "dir": "desc" if next_desc else "asc"}),
            }
        )
    context = {
        **_filter_context(request, period, regime, now),
        "figures": figures,
        "rows": rows,
        "table": table,
        "headers": headers,
        "sees_all": sees_all,
        "period_params": urlencode(base_params),
        "csv_url": "?"
        + urlencode({**base_params, "sort": sort, "dir": "desc" if descending else "asc", "format": "csv"}),
        "national_chart": charts.monthly_figure(months, national_monthly) if sees_all else None,
        "national_monthly": list(zip(months, national_monthly, strict=True)) if sees_all else [],
        "min_notices": settings.SCORECARD_MIN_NOTICES,
        "deadline_hours": display.deadlines_text(figures.national.deadlines_s if sees_all else _union_deadlines(rows)),
    }
    return render(request, "reports/league_table.html", context)


def _league_cells(m: HosterMetrics) -> list[tuple[str, str]]:
    return [
        ("num", str(m.notices)),
        ("num", display.per_10k(m.notices_per_10k_addresses)),
        ("num", str(m.within)),
        ("num", str(m.late)),
        ("num", str(m.pending)),
        ("num", str(m.open)),
        ("num rate", display.percent(m.compliance_rate)),
        ("num", display.rate_interval(m.compliance_rate_low, m.compliance_rate_high)),
        ("num", display.duration(m.median_ttt_s)),
        ("num", display.duration(m.p90_ttt_s)),
        ("num", display.duration(m.km_median_ttt_s)),
        ("num", str(m.reappeared)),
    ]


def _union_deadlines(rows: list[HosterMetrics]) -> list[int]:
    return sorted({d for m in rows for d in m.deadlines_s})


LEAGUE_CSV_COLUMNS = ["rank", *scorecards.REPORT_COLUMNS, *scorecards.EXTRA_COLUMNS]


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _league_csv(rows: list[HosterMetrics], figures, *, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = figures.computed_at.strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{stamp}.csv"'
    response["X-Methodology-Version"] = figures.methodology_version
    response["X-Computed-At"] = figures.computed_at.isoformat()
    writer = csv.writer(response)
    writer.writerow([*LEAGUE_CSV_COLUMNS, "period_from", "period_to", "computed_at"])
    start = figures.period.start.isoformat() if figures.period.start else ""
    end = figures.period.end.isoformat() if figures.period.end else ""
    for m in rows:
        data = m.as_dict()
        data["rank"] = getattr(m, "rank", None)
        writer.writerow(
            [*(_csv_value(data[c]) for c in LEAGUE_CSV_COLUMNS), start, end, figures.computed_at.isoformat()]
        )
    return response


@login_required
@require_GET
def scorecard(request, slug: str):
    _require_role(request.user)
    hoster = get_object_or_404(selectors.hosters_visible_to(request.user), slug=slug)
    now = timezone.now()
    try:
        period, regime = _period(request, now), _regime(request)
    except BadPeriod as exc:
        return _bad_period(exc)
    figures = rollups.figures(
        period,
        now=now,
        hosters=Hoster.objects.filter(pk=hoster.pk),
        notices=selectors.notices_visible_to(request.user),
        charts_for=hoster,
        regime=regime,
    )
    m = figures.hosters[0] if figures.hosters else None
    chart_data = figures.curves.get(hoster.pk, {})
    months, monthly_by_hoster, _national = rollups.monthly(
        now=now, months=SPARK_MONTHS, hosters=Hoster.objects.filter(pk=hoster.pk), regime=regime
    )
    series = monthly_by_hoster.get(hoster.pk, [None] * len(months))
    deadlines = m.deadlines_s if m else [settings.COMPLIANCE_DEADLINE]
    overdue = None
    if selectors.can_see_open_notice_list(request.user):
        overdue = open_past_deadline(
            hoster, period, now=now, notices=selectors.notices_visible_to(request.user), regime=regime
        )
    params = _params(period, regime)
    context = {
        **_filter_context(request, period, regime, now),
        "hoster": hoster,
        "figures": figures,
        "m": m,
        "period_params": urlencode(params),
        "deadline_hours": display.deadlines_text(deadlines),
        "survival_chart": charts.survival_figure(chart_data, deadlines),
        "histogram_chart": charts.histogram_figure(chart_data, deadlines),
        "mechanisms_chart": charts.mechanisms_figure(m) if m else None,
        "mechanisms": [
            (display.mechanism_label(k), v) for k, v in sorted(m.removal_mechanisms.items(), key=lambda kv: -kv[1])
        ]
        if m
        else [],
        "monthly_chart": charts.monthly_figure(months, series),
        "monthly": list(zip(months, series, strict=True)),
        "overdue": overdue,
        "notices_url": reverse("reports:notices", args=[hoster.slug]),
        "show_urls": selectors.can_see_urls(request.user),
        "is_analyst": selectors.can_see_open_notice_list(request.user),
    }
    return render(request, "reports/scorecard.html", context)


OVERDUE_LIMIT = 100


def open_past_deadline(hoster, period: Period, *, now: datetime, notices, regime: str | None = None) -> dict:
    """Open notices of the hoster past their deadline without takedown (the verdict late), oldest
    first. Uses the (status, deadline_at) index."""
    qs = selectors.annotate_verdict(
        selectors.measured_notices(notices).filter(hoster=hoster, status__in=Notice.OPEN_STATUSES, deadline_at__lt=now),
        now,
    ).filter(verdict_sql="late")
    qs = period.filter(qs)
    if regime:
        qs = qs.filter(regime=regime)
    rows = list(qs.order_by("deadline_at", "id")[: OVERDUE_LIMIT + 1])
    return {"rows": rows[:OVERDUE_LIMIT], "more": len(rows) > OVERDUE_LIMIT}


# --- The notices behind a figure ----------------------------------------------------------------


def figure_filter(figure: str) -> tuple[Q | None, str]:
    """The notices a scorecard figure counts: a filter on the measured notices, and its label."""
    open_q = Q(status__in=Notice.OPEN_STATUSES)
    filters = {
        "notices": (None, _("notices")),
        "removed": (Q(status=Notice.Status.REMOVED), _("removed")),
        "within": (Q(verdict_sql="within"), _("within the deadline")),
        "late": (Q(verdict_sql="late"), _("late")),
        "pending": (Q(verdict_sql="pending"), _("pending")),
        "open": (open_q, _("open")),
        "past": (open_q & Q(verdict_sql="late"), _("open past the deadline")),
        "taken_down": (Q(takedown_at__isnull=False), _("taken down")),
        "reappeared": (Q(reappearance_count__gt=0), _("reappeared")),
        "served_selectively": (Q(served_selectively_count__gt=0), _("served selectively")),
        "displaced": (Q(is_displaced=True), _("displaced")),
        "server_gone": (
            Q(takedown_at__isnull=False, removal_mechanism=Notice.RemovalMechanism.SERVER_GONE),
            _("taken down: server gone"),
        ),
    }
    if figure not in filters:
        raise Http404("no such figure")
    return filters[figure]


@login_required
@require_GET
def notices(request, slug: str):
    """The notices behind one figure of a scorecard, each linking to its checks."""
    _require_role(request.user)
    hoster = get_object_or_404(selectors.hosters_visible_to(request.user), slug=slug)
    now = timezone.now()
    try:
        period, regime = _period(request, now), _regime(request)
    except BadPeriod as exc:
        return _bad_period(exc)
    figure = request.GET.get("figure", "notices")
    condition, label = figure_filter(figure)
    qs = selectors.annotate_verdict(
        selectors.measured_notices(selectors.notices_visible_to(request.user)).filter(hoster=hoster), now
    ).annotate(ttt_ms=scorecards.ttt_ms_expression())
    qs = period.filter(qs)
    if regime:
        qs = qs.filter(regime=regime)
    if condition is not None:
        qs = qs.filter(condition)
    page = Paginator(qs.order_by("notified_at", "id"), 100).get_page(request.GET.get("page"))
    show_urls = selectors.can_see_urls(request.user)
    for n in page.object_list:
        n.url_shown = n.url if show_urls else pseudonymise(n.url)
        n.ttt_seconds = None if n.ttt_ms is None else n.ttt_ms / 1000
    params = {**_params(period, regime), "figure": figure}
    export = {**params, "hoster": hoster.slug}
    if condition is not None and figure in ("within", "late", "pending"):
        export["verdict"] = figure
    return render(
        request,
        "reports/notices.html",
        {
            "hoster": hoster,
            "period": period,
            "figure": figure,
            "label": label,
            "page": page,
            "show_urls": show_urls,
            "is_analyst": selectors.can_see_open_notice_list(request.user),
            "params": urlencode(params),
            "export_params": urlencode({k: v for k, v in export.items() if k != "figure"}),
        },
    )


@login_required
@require_GET
def notice_evidence(request, pk: int):
    """One notice's timing and every check behind it (read-only, scoped like the API)."""
    _require_role(request.user)
    notice = get_object_or_404(selectors.notices_visible_to(request.user).select_related("hoster"), pk=pk)
    now = timezone.now()
    show_urls = selectors.can_see_urls(request.user)
    show_addresses = selectors.can_see_addresses(request.user)
    checks = list(notice.checks.all().order_by("checked_at", "id"))
    for c in checks:
        # The server address for those who may see it, else its keyed pseudonym (as in the API).
        c.ip_shown = c.resolved_ip if show_addresses or not c.resolved_ip else pseudonymise_address(c.resolved_ip)
    return render(
        request,
        "reports/notice.html",
        {
            "notice": notice,
            "verdict": notice.verdict(now),
            "checks": checks,
            "show_urls": show_urls,
            "show_addresses": show_addresses,
            "url_shown": notice.url if show_urls else pseudonymise(notice.url),
            "show_hashes": selectors.can_see_content_hashes(request.user),
            "is_analyst": selectors.can_see_open_notice_list(request.user),
        },
    )


# --- Below the bar ------------------------------------------------------------------------------


@login_required
@require_GET
def below_the_bar(request):
    """Hosters under the compliance threshold with enough decided notices to say so."""
    _require_role(request.user)
    if not selectors.sees_all_hosters(request.user):
        raise Http404  # a hoster user has no list of other hosters
    now = timezone.now()
    try:
        period, regime = _period(request, now), _regime(request)
    except BadPeriod as exc:
        return _bad_period(exc)
    bar, minimum = _bar_settings(request)
    figures = rollups.figures(
        period,
        now=now,
        hosters=selectors.hosters_visible_to(request.user),
        notices=selectors.notices_visible_to(request.user),
        regime=regime,
    )
    rows = below(figures.hosters, bar=bar, minimum=minimum)
    if request.GET.get("format") == "csv":
        for m in rows:
            m.rank = None
        return _league_csv(rows, figures, filename=f"below-the-bar-{period.key}")
    params = {**_params(period, regime), "bar": f"{bar:g}", "min": minimum}
    return render(
        request,
        "reports/below_the_bar.html",
        {
            **_filter_context(request, period, regime, now),
            "figures": figures,
            "rows": rows,
            "bar": bar,
            "bar_percent": f"{bar * 100:g}",
            "minimum": minimum,
            "period_params": urlencode(_params(period, regime)),
            "csv_url": "?" + urlencode({**params, "format": "csv"}),
            "deadline_hours": display.deadlines_text(figures.national.deadlines_s),
        },
    )


def _bar_settings(request) -> tuple[float, int]:
    try:
        bar = float(request.GET.get("bar", settings.SCORECARD_BAR))
        minimum = int(request.GET.get("min", settings.SCORECARD_BAR_MIN_NOTICES))
    except ValueError:
        bar, minimum = settings.SCORECARD_BAR, settings.SCORECARD_BAR_MIN_NOTICES
    if bar > 1:
        bar = bar / 100  # "80" means 80 %
    return min(max(bar, 0.0), 1.0), max(minimum, 1)


def below(rows: list[HosterMetrics], *, bar: float, minimum: int) -> list[HosterMetrics]:
    """Hosters whose rate is under `bar` with at least `minimum` decided notices, lowest rate first."""
    hits = [m for m in rows if m.compliance_rate is not None and m.decided >= minimum and m.compliance_rate < bar]
    return sorted(hits, key=lambda m: (m.compliance_rate, -m.decided))


# --- Methodology and plotly.js ------------------------------------------------------------------


@require_GET
def methodology(request):
    """How every number is measured, in plain language (public: it is what makes figures checkable)."""
    return render(
        request,
        "reports/methodology.html",
        {
            "deadline_hours": f"{settings.COMPLIANCE_DEADLINE / 3600:g}",
            "min_notices": settings.SCORECARD_MIN_NOTICES,
            "bar_percent": f"{settings.SCORECARD_BAR * 100:g}",
            "bar_min": settings.SCORECARD_BAR_MIN_NOTICES,
            "max_age_s": settings.SCORECARD_ROLLUP_MAX_AGE,
            "methodology_version": settings.METHODOLOGY_VERSION,
            "versions": METHODOLOGY_VERSIONS,
            "records": MethodologyRecord.objects.order_by("-last_seen_at")[:20],
        },
    )


@require_GET
@cache_control(public=True, max_age=365 * 86400, immutable=True)
def plotly_js(request, version: str):
    """plotly.js from the installed plotly package: no CDN (there may be no internet at all)."""
    if version != plotly.__version__ or not charts.PLOTLY_JS.is_file():
        raise Http404
    return FileResponse(charts.PLOTLY_JS.open("rb"), content_type="text/javascript; charset=utf-8")
