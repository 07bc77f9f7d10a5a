"""The league table's order and "below the bar" (reports/ranking.py): pure, on HosterMetrics."""

from __future__ import annotations

from reports import ranking
from reports.scorecards import HosterMetrics


def metrics(name: str, within: int, late: int, *, small: bool = False, **fields) -> HosterMetrics:
    decided = within + late
    return HosterMetrics(
        hoster=name.lower(),
        name=name,
        notices=decided,
        within=within,
        late=late,
        compliance_rate=within / decided if decided else None,
        is_small_sample=small,
        **fields,
    )


def test_ties_share_a_rank_and_small_samples_get_none():
    rows = [metrics("A", 8, 2), metrics("B", 9, 1), metrics("C", 4, 1), metrics("D", 1, 0, small=True)]
    ranking.rank(rows)
    assert [(m.name, m.rank) for m in rows] == [("A", 2), ("B", 1), ("C", 2), ("D", None)]


def test_the_league_sorts_by_any_column_with_missing_values_last():
    rows = [metrics("b", 8, 2, median_ttt_s=100), metrics("a", 9, 1), metrics("c", 0, 0, small=True)]
    assert [m.name for m in ranking.league(rows, sort="rank", descending=False)] == ["a", "b", "c"]
    assert [m.name for m in ranking.league(rows, sort="median", descending=True)] == ["b", "a", "c"]
    assert [m.name for m in ranking.league(rows, sort="hoster", descending=True)] == ["c", "b", "a"]
    assert [m.name for m in ranking.league(rows, sort="nonsense", descending=False)] == ["a", "b", "c"]


def test_below_the_bar_needs_enough_decided_notices_and_lists_the_lowest_first():
    rows = [metrics("A", 7, 3), metrics("B", 5, 5), metrics("C", 1, 1), metrics("D", 9, 1), metrics("E", 0, 0)]
    assert [m.name for m in ranking.below(rows, bar=0.8, minimum=5)] == ["B", "A"]
    assert [m.name for m in ranking.below(rows, bar=0.8, minimum=1)] == ["B", "C", "A"]


def test_the_bar_is_a_share_or_a_percentage_clamped_with_the_settings_as_fallback(settings):
    settings.SCORECARD_BAR, settings.SCORECARD_BAR_MIN_NOTICES = 0.8, 20
    assert ranking.bar_and_minimum(None, None) == (0.8, 20)
    assert ranking.bar_and_minimum("75", "5") == (0.75, 5)
    assert ranking.bar_and_minimum("0.5", "0") == (0.5, 1)
    assert ranking.bar_and_minimum("250", "3") == (1.0, 3)
    assert ranking.bar_and_minimum("-1", "3") == (0.0, 3)
    assert ranking.bar_and_minimum("lots", "3") == (0.8, 20)
