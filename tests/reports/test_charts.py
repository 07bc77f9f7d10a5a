"""The charts (reports/charts.py): valid plotly.js specs, deadlines named and marked, one survival
curve per regime and deadline, the monthly chart's axes."""

from __future__ import annotations

from .helpers import LEAGUE, page


def test_the_chart_specs_are_valid_plotly_figures(client, market, analyst):
    """charts.py builds plotly.js specs as plain dicts (fast); plotly's own validator accepts them."""
    import plotly.graph_objects as go

    context = page(client, analyst, "/scorecards/slow/").context
    for name in ("survival_chart", "histogram_chart", "monthly_chart", "mechanisms_chart"):
        spec = context[name]
        go.Figure(data=spec["data"], layout=spec["layout"])  # raises ValueError on any invalid property
    national = page(client, analyst, LEAGUE).context["national_chart"]
    go.Figure(data=national["data"], layout=national["layout"])


def test_the_survival_chart_names_a_short_deadline_in_minutes_and_keeps_two_labels_apart():
    from django.utils import translation

    from reports import charts

    points = [(600, 0.5, 0.4, 0.6), (7200, 0.1, 0.05, 0.2)]
    with translation.override("en"):  # a request before may have left another language active
        spec = charts.survival_figure(
            {
                "curves": [
                    {"regime": "order", "deadline_s": 180, "n": 4, "survival": points},
                    {"regime": "covenant", "deadline_s": 86400, "n": 9, "survival": points},
                ]
            }
        )
    labels = spec["layout"]["annotations"]
    assert [a["text"] for a in labels] == ["deadline 3 min", "deadline 24 h"]  # not "deadline 0.05 h"
    assert labels[0]["y"] != labels[1]["y"]  # one under the other: close together they overprinted
    # One curve per deadline, never pooled, each named by its regime, deadline and size.
    named = [trace["name"] for trace in spec["data"] if trace.get("showlegend") is not False]
    assert named == ["removal order, deadline 3 min (n = 4)", "covenant, deadline 24 h (n = 9)"]


def test_the_monthly_chart_draws_the_rate_over_the_bars_with_ticks_of_its_own(client, market, analyst):
    spec = page(client, analyst, "/scorecards/slow/").context["monthly_chart"]
    bars, rate = spec["data"]
    assert bars["type"] == "bar" and "yaxis" not in bars and rate["yaxis"] == "y2"
    layout = spec["layout"]
    # An overlaying axis syncs its ticks to the other's grid by default: counts like 51.3 or 102.7.
    assert layout["yaxis2"]["overlaying"] == "y" and layout["yaxis2"]["tickmode"] == "auto"
    assert all(not str(x)[:4].isdigit() for x in bars["x"])  # "November 2026", not "2026-11"


def test_a_scorecard_never_pools_deadlines_in_one_survival_curve(client, analyst, prompt_hoster):
    """One curve per regime and deadline: 3-minute and 24-hour deadlines are never pooled in one."""
    from datetime import timedelta

    from django.utils import timezone

    from .helpers import notice

    now = timezone.now()
    for i in range(6):
        notice(prompt_hoster, now - timedelta(days=2, hours=i), ttt_s=60 + 30 * i, deadline_s=180, regime="order")
        notice(prompt_hoster, now - timedelta(days=3, hours=i), ttt_s=3600 * (i + 1), regime="covenant")
    spec = page(client, analyst, "/scorecards/prompt/").context["survival_chart"]
    named = [t["name"] for t in spec["data"] if t.get("showlegend") is not False]
    assert named == ["removal order, deadline 3 min (n = 6)", "covenant, deadline 24 h (n = 6)"]
    only_orders = page(client, analyst, "/scorecards/prompt/?regime=order").context["survival_chart"]
    assert [t["name"] for t in only_orders["data"] if t.get("showlegend") is not False] == [
        "removal order, deadline 3 min (n = 6)"
    ]
