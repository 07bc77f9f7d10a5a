"""Rollups hold exactly what the live computation gives, and are recomputed when stale."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.models import Hoster, Notice
from reports import periods, rollups, scorecards
from reports.models import Rollup, RollupRow

from .helpers import notice


@pytest.fixture
def data(prompt_hoster, slow_hoster):
    now = timezone.now()
    for i in range(5):
        notice(prompt_hoster, now - timedelta(days=3, hours=i), ttt_s=3600 * (i + 1))
    notice(slow_hoster, now - timedelta(days=40), ttt_s=200000)
    notice(slow_hoster, now - timedelta(days=2), status="online", last_checked_at=now - timedelta(hours=1))
    return now


def test_a_rollup_holds_the_live_figures(data):
    now = data
    period = periods.resolve("365d", now)
    live = scorecards.period_metrics(period, now=now, with_charts=True)
    rollups.refresh(period, now=now)
    stored = rollups.figures(
        period, now=now, hosters=Hoster.objects.all(), notices=Notice.objects.all(), national_charts=True
    )
    assert [m.as_dict() for m in stored.hosters] == [m.as_dict() for m in live.hosters]
    assert stored.national.as_dict() == live.national.as_dict()
    assert stored.curves[None] == live.curves[None]
    assert Rollup.objects.get(key="365d").rows.count() == 2


def test_figures_only_hold_the_hosters_asked_for(data, prompt_hoster):
    now = data
    got = rollups.figures(
        periods.resolve("all", now),
        now=now,
        hosters=Hoster.objects.filter(pk=prompt_hoster.pk),
        notices=Notice.objects.all(),
        charts_for=prompt_hoster,
    )
    assert [m.hoster for m in got.hosters] == ["prompt"]
    assert got.curves[prompt_hoster.pk]["survival"]


def test_a_stale_rollup_is_recomputed_and_a_fresh_one_is_not(data, prompt_hoster, settings):
    now = data
    period = periods.resolve("all", now)
    first = rollups.ensure(period, now=now)
    notice(prompt_hoster, now - timedelta(hours=30), ttt_s=60)
    assert rollups.ensure(period, now=now + timedelta(seconds=10)).computed_at == first.computed_at
    later = now + timedelta(seconds=settings.SCORECARD_ROLLUP_MAX_AGE + 1)
    again = rollups.ensure(period, now=later)
    assert again.computed_at == later
    assert again.national["notices"] == first.national["notices"] + 1
    assert RollupRow.objects.filter(rollup=again).count() == 2  # replaced, not added


def test_rolling_periods_move_at_local_midnight(data):
    now = data
    period = periods.resolve("30d", now)
    rollup = rollups.refresh(period, now=now)
    assert rollups.is_fresh(rollup, period, now)
    tomorrow = now + timedelta(days=1)
    assert not rollups.is_fresh(rollup, periods.resolve("30d", tomorrow), now + timedelta(seconds=1))


def test_settled_periods_keep_longer(data, settings):
    now = data
    old_month = periods.resolve(periods.last_months(now, 3)[0], now)
    rollup = rollups.refresh(old_month, now=now)
    hour_later = now + timedelta(seconds=settings.SCORECARD_ROLLUP_MAX_AGE + 60)
    assert rollups.is_fresh(rollup, old_month, hour_later)
    settings.METHODOLOGY_VERSION = "9.9"
    assert not rollups.is_fresh(rollup, old_month, hour_later)


def test_the_drain_refreshes_one_stale_period_per_call_until_none_is_left(data):
    calls = 0
    while rollups.drain():
        calls += 1
        assert calls < 40
    assert set(Rollup.objects.values_list("key", flat=True)) >= set(rollups.wanted_keys(timezone.now()))
    assert calls + 1 == len(rollups.wanted_keys(timezone.now()))
    assert rollups.drain() is False


def test_the_drain_goes_on_when_one_period_fails(data, monkeypatch):
    real = scorecards.period_metrics

    def failing(period, **kwargs):
        if period.key == "all":
            raise RuntimeError("boom")
        return real(period, **kwargs)

    monkeypatch.setattr(scorecards, "period_metrics", failing)
    for _ in range(40):
        if not rollups.drain():
            break
    keys = set(Rollup.objects.values_list("key", flat=True))
    assert "all" not in keys and "365d" in keys


def test_the_rollup_drain_is_registered_with_the_monitor():
    from monitor import jobs

    drain = next(d for d in jobs.DRAINS if d.name == "rollups")
    assert drain.func is rollups.drain


def test_monthly_rates_feed_the_sparklines(data, prompt_hoster, slow_hoster):
    now = data
    keys, rates, national = rollups.monthly_rates(now=now, months=3, hosters=Hoster.objects.all())
    assert keys == periods.last_months(now, 3) and len(national) == 3
    # prompt's five notices (3 days old) are all within; the months before have none.
    this_month = keys.index(periods.last_months(now - timedelta(days=3), 1)[0])
    assert rates[prompt_hoster.pk][this_month] == 1.0
    assert sum(r is None for r in rates[prompt_hoster.pk]) == 2
