"""Reporting periods (reports/periods.py): one parse entry point for pages, API and command, and
one filter by `notified_at` in [start, end)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from compliance.models import Notice
from reports.periods import Period, PeriodError, choices, last_months, resolve

from .helpers import notice

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 3, 15, 10, 30, tzinfo=UTC)


def test_nothing_asked_is_the_default_period_or_none():
    assert Period.parse({}, NOW).key == "365d"
    assert Period.parse({"period": ""}, NOW).key == "365d"
    assert Period.parse({}, NOW, default=None) is None
    assert Period.parse({"from": "", "to": "  "}, NOW, default=None) is None


def test_a_named_period_is_resolved_in_local_time():
    year = Period.parse({"period": "2025"}, NOW)
    assert (year.kind, year.start, year.end) == (
        "year",
        datetime(2025, 1, 1, tzinfo=AMS),
        datetime(2026, 1, 1, tzinfo=AMS),
    )
    month = Period.parse({"period": "2026-02"}, NOW, default=None)
    assert (month.kind, month.start, month.end) == (
        "month",
        datetime(2026, 2, 1, tzinfo=AMS),
        datetime(2026, 3, 1, tzinfo=AMS),
    )
    rolling = Period.parse({"period": "30d"}, NOW)
    assert (rolling.kind, rolling.start, rolling.end) == ("rolling", datetime(2026, 2, 13, tzinfo=AMS), None)


def test_bounds_make_a_custom_period_and_win_over_a_named_one():
    period = Period.parse({"from": "2026-01-01", "to": "2026-01-02T12:00:00+00:00", "period": "30d"}, NOW)
    assert period.kind == "custom"
    assert period.start == datetime(2026, 1, 1, tzinfo=AMS)
    assert period.end == datetime(2026, 1, 2, 12, tzinfo=UTC)
    assert Period.parse({"to": "2026-01-02"}, NOW).start is None
    assert period.query_params() == {"from": period.start.isoformat(), "to": period.end.isoformat()}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"period": "someday"}, "unknown period"),
        ({"period": "2025-13"}, "no such month"),
        ({"from": "yesterday"}, "from: 'yesterday' is not an ISO 8601"),
        ({"from": "2026-01-02", "to": "2026-01-01"}, "to must be after from"),
        ({"to": "9999-12-31T23:59:59-23:00"}, "out of range"),
    ],
)
def test_what_cannot_be_understood_is_a_period_error(params, message):
    with pytest.raises(PeriodError, match=message):
        Period.parse(params, NOW)


def test_a_command_names_its_own_options_in_errors():
    with pytest.raises(PeriodError, match="^--to: 'soon'"):
        Period.parse({"to": "soon"}, NOW, default=None, bound_names=("--from", "--to"))


@pytest.mark.django_db
def test_the_filter_takes_notices_from_the_start_inclusive_to_the_end_exclusive(prompt_hoster):
    start = datetime(2026, 1, 1, tzinfo=AMS)
    before = notice(prompt_hoster, start - timedelta(microseconds=1))
    first = notice(prompt_hoster, start)
    last = notice(prompt_hoster, start + timedelta(days=31) - timedelta(microseconds=1))
    after = notice(prompt_hoster, start + timedelta(days=31))
    january = Period.parse({"period": "2026-01"}, NOW)
    assert set(january.filter(Notice.objects.all())) == {first, last}
    assert set(resolve("all", NOW).filter(Notice.objects.all())) == {before, first, last, after}
    open_ended = Period.parse({"from": "2026-02-01"}, NOW)
    assert set(open_ended.filter(Notice.objects.all())) == {after}


def test_the_offered_periods_are_rolling_all_two_years_and_the_recent_months_newest_first():
    offered = [key for key, _label in choices(NOW, months=3)]
    assert offered == ["30d", "90d", "365d", "all", "2026", "2025", "2026-03", "2026-02", "2026-01"]
    assert last_months(NOW, 3) == ["2026-01", "2026-02", "2026-03"]
