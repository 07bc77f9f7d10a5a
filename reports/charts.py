"""Charts from the scorecards' dataclasses: plotly figures (as JSON for the page) and SVG sparklines.

Plotly draws in the browser from the JSON spec (plotly.js's figure schema, built as dicts);
plotly.js itself is served by this product from the installed plotly package (`PLOTLY_JS`,
`reports.views.plotly_js`), never from a CDN. Sparklines in the league table are tiny inline SVGs
made here: 200 plotly charts on one page would be slow on a phone.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from django.urls import reverse
from django.utils.formats import get_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from reports.display import bin_edge_duration, deadline_duration, mechanism_label, month_label, regime_label
from reports.scorecards import HosterMetrics

ACCENT = "#0b5cad"
BAD = "#b3261e"
MUTED = "#5b6775"
CONFIG = {"responsive": True, "displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def plotly_js_url() -> str:
    """Where the pages load plotly.js from: this server, versioned (cached for a year)."""
    return reverse("reports:plotly-js", args=[plotly.__version__])


def _layout(**extra) -> dict:
    layout = {
        "margin": {"l": 56, "r": 16, "t": 28, "b": 48},
        "height": 320,
        "autosize": True,
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.25},
        "plot_bgcolor": "#fff",
        # Decimal and thousands separators of the active language (Dutch: 2,5 and 10.000).
        "separators": get_format("DECIMAL_SEPARATOR") + get_format("THOUSAND_SEPARATOR"),
    }
    layout.update(extra)
    return layout


def figure(data: list[dict], layout: dict) -> dict:
    """A plotly.js figure spec. Built as plain dicts (plotly's JSON schema): plotly's Python
    figure classes validate every property, which makes a page with a survival curve visibly
    slower (bench/README.md); the browser draws the same spec either way."""
    return {"data": data, "layout": layout, "config": CONFIG}


def hours(seconds: float) -> float:
    return round(seconds / 3600, 3)


def _deadline_marker(deadline_s: int, row: int = 0) -> tuple[dict, dict]:
    """The deadline as a dashed line with its label; `row` puts each further label one line lower,
    so that two deadlines close together on the axis (3 min and 24 h over days) do not overprint."""
    x = hours(deadline_s)
    shape = {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": x,
        "x1": x,
        "y0": 0,
        "y1": 1,
        "line": {"color": BAD, "dash": "dash", "width": 1},
    }
    label = {
        "x": x,
        "xref": "x",
        "y": 1 - 0.08 * row,
        "yref": "paper",
        "text": _("deadline %(duration)s") % {"duration": deadline_duration(deadline_s)},
        "showarrow": False,
        "xanchor": "left",
        "yanchor": "top",
        "font": {"color": BAD},
    }
    return shape, label


CURVE_COLOURS = (ACCENT, "#c26a00", "#2e7d32", "#6a3d9a", MUTED)


def curve_label(curve: dict) -> str:
    """`covenant, deadline 24 h (n = 120)`: what a curve holds, so that none is read as another."""
    return _("%(regime)s, deadline %(deadline)s (n = %(n)s)") % {
        "regime": regime_label(curve["regime"]),
        "deadline": deadline_duration(curve["deadline_s"]),
        "n": curve["n"],
    }


def survival_figure(charts: dict, deadlines_s: list[int] | None = None) -> dict | None:
    """Kaplan-Meier: the share of notices still online by hours since notification, one curve per
    regime and deadline (a curve never pools different deadlines), each with its 95 % interval and
    its deadline marked."""
    curves = [c for c in charts.get("curves") or [] if c.get("survival")]
    if not curves:
        return None
    data = []
    for i, curve in enumerate(curves):
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        points = curve["survival"]
        xs = [0.0] + [hours(p[0]) for p in points]
        band = {"width": 0, "shape": "hv"}
        label = curve_label(curve)
        data += [
            {
                "type": "scatter",
                "x": xs,
                "y": [1.0] + [p[3] for p in points],
                "mode": "lines",
                "line": band,
                "hoverinfo": "skip",
                "showlegend": False,
                "legendgroup": label,
            },
            {
                "type": "scatter",
                "x": xs,
                "y": [1.0] + [p[2] for p in points],
                "mode": "lines",
                "line": band,
                "fill": "tonexty",
                "fillcolor": _rgba(colour, 0.15),
                "hoverinfo": "skip",
                "showlegend": False,
                "legendgroup": label,
            },
            {
                "type": "scatter",
                "x": xs,
                "y": [1.0] + [p[1] for p in points],
                "mode": "lines",
                "line": {"color": colour, "shape": "hv", "width": 2},
                "name": label,
                "legendgroup": label,
                "hovertemplate": "%{y:.1%}",
            },
        ]
    marked = sorted({c["deadline_s"] for c in curves})
    markers = [_deadline_marker(d, row) for row, d in enumerate(marked)]
    layout = _layout(
        xaxis={"title": {"text": _("hours since notification")}, "rangemode": "tozero"},
        yaxis={"title": {"text": _("share still online")}, "tickformat": ".0%", "range": [0, 1.02]},
        shapes=[m[0] for m in markers],
        annotations=[m[1] for m in markers],
        showlegend=True,
    )
    return figure(data, layout)


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _bin_label(b: dict) -> str:
    fmt = bin_edge_duration
    if b["to_s"] is None:
        return f"≥ {fmt(b['from_s'])}"
    return f"{fmt(b['from_s'])}–{fmt(b['to_s'])}" if b["from_s"] else f"< {fmt(b['to_s'])}"


def histogram_figure(charts: dict, deadlines_s: list[int]) -> dict | None:
    """Taken-down notices by time to takedown; bins ending by the (longest) deadline in blue."""
    bins = charts.get("histogram") or []
    if not bins or not sum(b["count"] for b in bins):
        return None
    deadline = max(deadlines_s) if deadlines_s else None
    colours = [ACCENT if deadline is None or (b["to_s"] is not None and b["to_s"] <= deadline) else BAD for b in bins]
    data = [
        {
            "type": "bar",
            "x": [_bin_label(b) for b in bins],
            "y": [b["count"] for b in bins],
            "marker": {"color": colours},
            "name": _("taken down"),
            "hovertemplate": "%{x}: %{y}<extra></extra>",
        }
    ]
    layout = _layout(
        xaxis={"title": {"text": _("time to takedown")}, "type": "category"},
        yaxis={"title": {"text": _("notices")}},
        hovermode="closest",
    )
    return figure(data, layout)


def mechanisms_figure(m: HosterMetrics) -> dict | None:
    items = sorted(m.removal_mechanisms.items(), key=lambda kv: kv[1])
    if not items:
        return None
    data = [
        {
            "type": "bar",
            "y": [mechanism_label(k) for k, _v in items],
            "x": [v for _k, v in items],
            "orientation": "h",
            "marker": {"color": [BAD if k == "moved" else ACCENT for k, _v in items]},
            "hovertemplate": "%{y}: %{x}<extra></extra>",
        }
    ]
    layout = _layout(
        height=max(180, 40 * len(items) + 80),
        xaxis={"title": {"text": _("takedowns")}},
        yaxis={"automargin": True},
        hovermode="closest",
    )
    return figure(data, layout)


def monthly_figure(months: list[str], series: list[HosterMetrics | None]) -> dict | None:
    """Notices per month (bars) and the compliance rate with its 95 % interval (line).

    The bars take the first y axis and the rate the overlaying second one: plotly draws an
    overlaying axis's traces on top, so the line is never hidden behind the bars."""
    if not any(m and m.notices for m in series):
        return None
    decided = [m if m and m.compliance_rate is not None else None for m in series]
    labels = [month_label(month) for month in months]  # "March 2026", "maart 2026": as in the tables
    data = [
        {
            "type": "bar",
            "x": labels,
            "y": [m.notices if m else 0 for m in series],
            "name": _("notices"),
            "marker": {"color": "#c9d6e6"},
        },
        {
            "type": "scatter",
            "x": labels,
            "y": [m.compliance_rate if m else None for m in decided],
            "mode": "lines+markers",
            "name": _("share within the deadline"),
            "line": {"color": ACCENT},
            "error_y": {
                "type": "data",
                "array": [(m.compliance_rate_high - m.compliance_rate) if m else None for m in decided],
                "arrayminus": [(m.compliance_rate - m.compliance_rate_low) if m else None for m in decided],
                "visible": True,
                "color": MUTED,
            },
            "hovertemplate": "%{y:.1%}",
            "connectgaps": False,
            "yaxis": "y2",
        },
    ]
    layout = _layout(
        xaxis={"type": "category"},
        yaxis={"title": {"text": _("notices")}, "side": "right", "rangemode": "tozero", "showgrid": False},
        # An overlaying axis defaults to ticks synchronised with the other axis' grid, which gave
        # counts such as 51.3 and 102.7 when the notices were the overlaying axis: ticks of its own.
        yaxis2={
            "title": {"text": _("within the deadline")},
            "overlaying": "y",
            "side": "left",
            "tickmode": "auto",
            "tickformat": ".0%",
            "range": [0, 1.05],
        },
        margin={"l": 56, "r": 56, "t": 28, "b": 48},
    )
    return figure(data, layout)


def sparkline(rates: list[float | None], *, width: int = 96, height: int = 24) -> SafeString:
    """Monthly compliance rates as an inline SVG polyline; gaps where a month had no decided notice."""
    n = len(rates)
    if n == 0 or all(rate is None for rate in rates):
        return mark_safe('<span class="muted">–</span>')  # noqa: S308 (a constant)
    step = width / max(n - 1, 1)
    segments, current = [], []
    for i, rate in enumerate(rates):
        if rate is None:
            if current:
                segments.append(current)
            current = []
            continue
        current.append(f"{i * step:.1f},{(1 - rate) * (height - 2) + 1:.1f}")
    if current:
        segments.append(current)
    lines = "".join(
        f'<polyline points="{" ".join(s)}" fill="none" stroke="{ACCENT}" stroke-width="1.5"/>'
        if len(s) > 1
        else f'<circle cx="{s[0].split(",")[0]}" cy="{s[0].split(",")[1]}" r="1.5" fill="{ACCENT}"/>'
        for s in segments
    )
    label = _("monthly share within the deadline")
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" role="img" aria-label="{}">{}</svg>',
        width,
        height,
        width,
        height,
        label,
        mark_safe(lines),  # noqa: S308 (numbers and constants only)
    )
