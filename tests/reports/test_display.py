"""The reports' display formatters (reports/display.py), in English and Dutch."""

from __future__ import annotations

import pytest
from django.utils import translation

from reports import display
from reports.scorecards import HosterMetrics


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), ("", "–"), (2700, "45 min"), (9000, "2.5 h"), (-1800, "-30 min"), (3 * 86400, "3.0 d")],
)
def test_durations_read_in_minutes_hours_or_days(seconds, text):
    assert display.duration(seconds) == text


def test_a_deadline_under_an_hour_is_in_minutes_and_several_are_listed(settings):
    assert display.deadline_duration(180) == "3 min"
    assert display.deadline_duration(86400) == "24 h"
    assert display.deadlines_text([180, 86400]) == "3 min, 24 h"
    settings.COMPLIANCE_DEADLINE = 5400
    assert display.deadlines_text([]) == "1.5 h"


def test_histogram_edges_are_whole_days_or_hours():
    assert display.bin_edge_duration(2 * 86400) == "2 d"
    assert display.bin_edge_duration(5400) == "1.5 h"
    assert display.bin_edge_duration(86400 + 3600) == "25 h"


def test_rates_intervals_and_sizes():
    assert display.percent(0.98765) == "98.8%"
    assert display.percent(0.5, 0) == "50%"
    assert display.percent(None) == "–"
    assert display.rate_interval(0.91, 0.994) == "91%–99%"
    assert display.rate_interval(None, None) == "–"
    assert display.per_10k(2.5) == "2.5" and display.per_10k(None) == "–"


def test_dutch_numbers_take_a_decimal_comma():
    with translation.override("nl"):
        assert display.percent(0.5) == "50,0%"
        assert display.duration(9000).startswith("2,5")
        assert display.month_label("2026-03") == "maart 2026"


def test_codes_read_as_words():
    assert display.month_label("2026-03") == "March 2026"
    assert display.month_label("not a month") == "not a month"
    assert display.verdict_label("within") == "within" and display.verdict_label("") == "–"
    assert display.regime_label("order") == "removal order"
    assert display.mechanism_label("unknown") == "not recorded"
    assert display.mechanism_label("moved").endswith("(displaced)")
    assert display.figure_label("past") == "open past the deadline"


def test_a_league_row_is_formatted_cell_by_cell():
    m = HosterMetrics(hoster="h", name="H", notices=12, within=9, late=1, compliance_rate=0.9, median_ttt_s=2700)
    cells = display.league_cells(m)
    assert len(cells) == 12
    assert cells[0] == ("num", "12") and cells[6] == ("num rate", "90.0%") and cells[8] == ("num", "45 min")
