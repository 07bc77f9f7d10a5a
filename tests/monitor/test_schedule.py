from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import schedule
from monitor.schedule import VERDICT_CHECK, next_check_at, next_grid_point, tolerance_s

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY = 86400


def walk(deadline_s, *, status="online", until=None, takedown_at=None):
    """The due times a monitor that keeps up perfectly would check at."""
    points, now = [], T0
    while True:
        due = next_check_at(now=now, notified_at=T0, deadline_s=deadline_s, status=status, takedown_at=takedown_at)
        if due is None or (until is not None and due > until):
            return points
        points.append(due)
        now = due


@given(st.floats(min_value=0, max_value=0.9999))
def test_before_the_deadline_no_gap_exceeds_a_96th_of_the_deadline(x):
    nxt = next_grid_point(x)
    assert x < nxt <= x + 1 / 96 + 1e-9


@given(st.floats(min_value=1, max_value=29.9))
def test_after_the_deadline_the_spacing_backs_off_but_stays_bounded(x):
    gap = next_grid_point(x) - x
    assert 1 / 96 - 1e-9 <= gap <= 1 / 8 + 1e-9


def test_a_day_deadline_checks_densely_early_and_at_the_verdict_point():
    points = walk(DAY, until=T0 + timedelta(days=1))
    offsets = [(p - T0).total_seconds() for p in points]
    assert offsets[0] == pytest.approx(180)  # D/480 after notification
    first_hour = [o for o in offsets if o <= 3600]
    assert len(first_hour) == 20
    assert DAY * VERDICT_CHECK in [pytest.approx(o) for o in offsets]  # the check that decides the verdict
    assert offsets[-1] == pytest.approx(DAY)
    gaps = [b - a for a, b in zip([0, *offsets], offsets, strict=False)]
    assert max(gaps) <= DAY / 96 + 1e-6
    assert 100 < len(points) < 150  # the load per notice per day


def test_the_schedule_is_proportional_to_the_deadline():
    day = [(p - T0).total_seconds() / DAY for p in walk(DAY, until=T0 + timedelta(days=3))]
    short = [(p - T0).total_seconds() / 600 for p in walk(600, until=T0 + timedelta(seconds=1800))]
    assert day == pytest.approx(short)


def test_an_online_notice_is_watched_once_per_deadline_after_thirty_deadlines():
    points = walk(DAY, until=T0 + timedelta(days=33))
    assert T0 + timedelta(days=30) in points
    after = [p for p in points if p > T0 + timedelta(days=30)]
    assert after == [T0 + timedelta(days=31), T0 + timedelta(days=32), T0 + timedelta(days=33)]
    # a removal seen then is confirmed within a 96th, as before the window
    late = T0 + timedelta(days=40)
    confirming = next_check_at(now=late, notified_at=T0, deadline_s=DAY, status="online", offline_streak=1)
    assert (confirming - late).total_seconds() == pytest.approx(DAY / 96)


def test_removed_withdrawn_and_unmeasured_notices_are_not_watched():
    late = T0 + timedelta(days=30)
    assert next_check_at(now=late, notified_at=T0, deadline_s=DAY, status="removed", takedown_at=T0) is None
    for status in ("withdrawn", "repeat", "unresolvable"):
        assert next_check_at(now=T0, notified_at=T0, deadline_s=DAY, status=status) is None


def test_a_provisional_server_gone_takedown_is_checked_as_often_as_an_open_notice():
    now = T0 + timedelta(hours=12)
    provisional = next_check_at(
        now=now, notified_at=T0, deadline_s=DAY, status="removed", takedown_at=T0, is_provisional=True
    )
    assert (provisional - now).total_seconds() <= DAY / 96


def test_after_a_takedown_reappearance_checks_are_slow_and_stop_at_thirty_deadlines():
    takedown = T0 + timedelta(hours=2)
    now, gaps = takedown, []
    while due := next_check_at(now=now, notified_at=T0, deadline_s=DAY, status="removed", takedown_at=takedown):
        gaps.append((due - now).total_seconds())
        now = due
    assert now == T0 + timedelta(days=30)
    assert gaps[0] == DAY / 4
    assert max(gaps) == 2 * DAY
    assert len(gaps) < 30


def test_a_removed_observation_awaiting_confirmation_is_rechecked_within_a_96th():
    now = T0 + timedelta(days=3)  # backed off to D/8
    plain = next_check_at(now=now, notified_at=T0, deadline_s=DAY, status="online")
    confirming = next_check_at(now=now, notified_at=T0, deadline_s=DAY, status="online", offline_streak=1)
    assert (plain - now).total_seconds() == pytest.approx(DAY / 8)
    assert (confirming - now).total_seconds() == pytest.approx(DAY / 96)


def test_a_monitor_that_fell_behind_skips_missed_points_instead_of_piling_them_up():
    late = T0 + timedelta(hours=5, minutes=1)
    due = next_check_at(now=late, notified_at=T0, deadline_s=DAY, status="online")
    assert due == T0 + timedelta(hours=5, minutes=7, seconds=30)


def test_notices_that_are_no_measurement_are_not_checked():
    for status in ("repeat", "unresolvable"):
        assert next_check_at(now=T0, notified_at=T0, deadline_s=DAY, status=status) is None


def test_a_notice_not_yet_notified_is_observed_every_96th():
    due = next_check_at(now=T0, notified_at=None, deadline_s=DAY, status="pending")
    assert due == T0 + timedelta(seconds=DAY / 96)


def test_tiny_deadlines_keep_a_minimum_interval():
    due = next_check_at(now=T0 + timedelta(seconds=1), notified_at=T0, deadline_s=20, status="online")
    assert (due - T0).total_seconds() == pytest.approx(1 + schedule.MIN_INTERVAL_S)


def test_the_lag_tolerance_is_two_seconds_or_a_500th_of_the_deadline():
    assert tolerance_s(20) == 2
    assert tolerance_s(DAY) == pytest.approx(172.8)
