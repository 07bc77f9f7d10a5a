"""Pages: the league table, one hoster's scorecard, the notices behind a figure, "below the bar",
and the methodology. Parse input (`Period.parse`, the regime), call one of rollups, scorecards or
ranking, render; values are written by reports.display, files by reports.exports. Scoping is
compliance.selectors'.

Roles (docs/methodology.md, "Who sees what"): analysts, ministry and researchers see every hoster
and the national totals; a hoster user sees its own scorecard only (another hoster's is 404) and a
league table holding its own row only; URLs only for analysts and hoster users (their own notices).
"""

from __future__ import annotations

from datetime import datetime

import plotly
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from compliance import selectors
from compliance.methodology import VERSIONS as METHODOLOGY_VERSIONS
from compliance.models import Hoster, MethodologyRecord, Notice
from compliance.pseudonym import pseudonymise, pseudonymise_address
from reports import charts, display, exports, periods, ranking, rollups, scorecards
from reports.periods import Period, PeriodError
from reports.scorecards import HosterMetrics, PeriodMetrics

SPARK_MONTHS = 12


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
        "choices": periods.choices(now, months=rollups.MONTHS_KEPT),
    }


def _bad_period(exc: BadPeriod) -> HttpResponseBadRequest:
    return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")


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
    sort = request.GET.get("sort", "rank")
    descending = request.GET.get("dir", "asc") == "desc"
    rows = ranking.league(figures.hosters, sort=sort, descending=descending)

    if request.GET.get("format") == "csv":
        return _league_csv(rows, figures, filename=f"league-{period.key}")

    months, rates_by_hoster, national_monthly = rollups.monthly_rates(
        now=now, months=SPARK_MONTHS, hosters=hosters, regime=regime
    )
    period_query = urlencode(_params(period, regime))
    table = [
        {
            "rank": m.rank,
            "name": m.name,
            "url": reverse("reports:scorecard", args=[m.hoster]) + "?" + period_query,
            "cells": display.league_cells(m),
            "sparkline": charts.sparkline(rates_by_hoster.get(m.hoster_id, [None] * len(months))),
        }
        for m in rows
    ]
    base_params = _params(period, regime)
    context = {
        **_filter_context(request, period, regime, now),
        "figures": figures,
        "rows": rows,
        "table": table,
        "headers": _league_headers(base_params, sort=sort, descending=descending),
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


# The league table's columns in order: (sort key in reports.ranking.SORTS, heading).
LEAGUE_COLUMNS = [
    ("rank", gettext_lazy("rank")),
    ("hoster", gettext_lazy("hoster")),
    ("notices", gettext_lazy("notices")),
    ("per10k", gettext_lazy("per 10,000 addresses")),
    ("within", gettext_lazy("within")),
    ("late", gettext_lazy("late")),
    ("pending", gettext_lazy("pending")),
    ("open", gettext_lazy("open")),
    ("rate", gettext_lazy("compliance")),
    ("low", gettext_lazy("95% interval")),
    ("median", gettext_lazy("median TTT")),
    ("p90", gettext_lazy("p90 TTT")),
    ("km", gettext_lazy("KM median")),
    ("reappeared", gettext_lazy("reappeared")),
]


def _league_headers(base_params: dict[str, str], *, sort: str, descending: bool) -> list[dict]:
    """Each column's heading, linking to the table sorted by it (the active one in reverse)."""
    headers = []
    for key, label in LEAGUE_COLUMNS:
        next_desc = not descending if key == sort else key not in ("rank", "hoster")
        headers.append(
            {
                "key": key,
                "label": str(label),
                "css": "" if key == "hoster" else "num",
                "active": key == sort,
                "descending": descending,
                "url": "?" + urlencode({**base_params, "sort": key, "dir": "desc" if next_desc else "asc"}),
            }
        )
    return headers


def _union_deadlines(rows: list[HosterMetrics]) -> list[int]:
    return sorted({d for m in rows for d in m.deadlines_s})


def _league_csv(rows: list[HosterMetrics], figures: PeriodMetrics, *, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = figures.computed_at.strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{stamp}.csv"'
    response["X-Methodology-Version"] = figures.methodology_version
    response["X-Computed-At"] = figures.computed_at.isoformat()
    exports.write_league_csv(response, rows, figures)
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
        overdue = scorecards.open_past_deadline(
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


# --- The notices behind a figure ----------------------------------------------------------------


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
    if figure not in scorecards.FIGURE_CONDITIONS:
        raise Http404("no such figure")
    qs = scorecards.figure_notices(
        figure,
        hoster=hoster,
        period=period,
        now=now,
        notices=selectors.notices_visible_to(request.user),
        regime=regime,
    )
    page = Paginator(qs, 100).get_page(request.GET.get("page"))
    show_urls = selectors.can_see_urls(request.user)
    for n in page.object_list:
        n.url_shown = n.url if show_urls else pseudonymise(n.url)
        n.ttt_seconds = None if n.ttt_ms is None else n.ttt_ms / 1000
    params = {**_params(period, regime), "figure": figure}
    export = {**params, "hoster": hoster.slug}
    if figure in ("within", "late", "pending"):
        export["verdict"] = figure
    return render(
        request,
        "reports/notices.html",
        {
            "hoster": hoster,
            "period": period,
            "figure": figure,
            "label": display.figure_label(figure),
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
    bar, minimum = ranking.bar_and_minimum(request.GET.get("bar"), request.GET.get("min"))
    figures = rollups.figures(
        period,
        now=now,
        hosters=selectors.hosters_visible_to(request.user),
        notices=selectors.notices_visible_to(request.user),
        regime=regime,
    )
    rows = ranking.below(figures.hosters, bar=bar, minimum=minimum)
    if request.GET.get("format") == "csv":  # the same columns as the league table's; rank empty
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
