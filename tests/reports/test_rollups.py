"""Rollups hold exactly what the live computation gives, and are recomputed when stale."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.models import Hoster, Notice
from reports import periods, rollups, scorecards
from reports.models import Rollup, RollupCell, RollupState

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
    rollups.catch_up(now)
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
    assert got.curves[prompt_hoster.pk]["curves"][0]["survival"]


def test_a_change_recomputes_only_the_day_it_touches(data, prompt_hoster):
    now = data
    rollups.catch_up(now)
    rollups.catch_up(now + timedelta(minutes=5))  # past the margin: the data's own changes are done
    before = dict(RollupCell.objects.filter(is_month=False).values_list("day", "computed_at"))
    later = now + timedelta(minutes=10)
    changed = Notice.objects.filter(hoster=prompt_hoster).order_by("id").first()
    Notice.objects.filter(pk=changed.pk).update(status="reappeared", reappearance_count=1, updated_at=later)
    days = rollups.catch_up(later + timedelta(seconds=1))
    assert days == {rollups.local_day(changed.notified_at)}
    after = dict(RollupCell.objects.filter(is_month=False).values_list("day", "computed_at"))
    assert {d for d in after if after[d] != before.get(d)} == days
    figures = rollups.figures(
        periods.resolve("all", later), now=later, hosters=Hoster.objects.all(), notices=Notice.objects.all()
    )
    prompt = next(m for m in figures.hosters if m.hoster == "prompt")
    assert (prompt.removed, prompt.reappeared, prompt.open, prompt.taken_down) == (4, 1, 1, 5)


def test_a_passing_deadline_changes_the_figures_without_any_check(prompt_hoster):
    """pending -> late at the deadline, though no check (and no timestamp) changed the notice."""
    now = timezone.now()
    n = notice(prompt_hoster, now - timedelta(minutes=2), status="online", deadline_s=180, last_checked_at=now)
    rollups.catch_up(now)
    cell = RollupCell.objects.get(is_month=False)
    assert (cell.pending, cell.late, cell.next_change_at) == (1, 0, n.deadline_at)
    after = n.deadline_at + timedelta(seconds=1)
    assert rollups.catch_up(after) == {rollups.local_day(n.notified_at)}
    cell = RollupCell.objects.get(is_month=False)
    assert (cell.pending, cell.late, cell.next_change_at) == (0, 1, None)


def test_a_new_methodology_version_recomputes_every_day(data, settings):
    now = data
    rollups.catch_up(now)
    rollups.catch_up(now + timedelta(minutes=5))
    assert rollups.catch_up(now + timedelta(minutes=10)) == set()
    settings.METHODOLOGY_VERSION = "9.9"
    assert rollups.catch_up(now + timedelta(minutes=11)) is None  # all
    assert set(RollupCell.objects.values_list("methodology_version", flat=True)) == {"9.9"}


def test_rebuild_all_forgets_everything_and_pages_rebuild_it(data, client, analyst):
    rollups.drain()
    rollups.rebuild_all()
    assert not (Rollup.objects.exists() or RollupCell.objects.exists() or RollupState.objects.exists())
    client.force_login(analyst)
    assert "prompt" in client.get("/scorecards/").content.decode()


def test_rolling_periods_move_at_local_midnight(data):
    now = data
    period = periods.resolve("30d", now)
    rollups.catch_up(now)
    rollup = rollups.refresh(period, now=now)
    assert rollups.is_fresh(rollup, period)
    tomorrow = now + timedelta(days=1)
    assert not rollups.is_fresh(rollup, periods.resolve("30d", tomorrow))


def test_the_drain_keeps_the_wanted_periods_and_only_merges_what_changed(data, prompt_hoster, monkeypatch):
    monkeypatch.setattr(rollups, "MARGIN", timedelta(0))  # no commit races here: see changes once
    assert rollups.drain() is False
    assert set(Rollup.objects.values_list("key", flat=True)) >= set(rollups.wanted_keys(timezone.now()))
    merged = dict(Rollup.objects.values_list("key", "computed_at"))
    rollups.drain()
    assert dict(Rollup.objects.values_list("key", "computed_at")) == merged  # nothing changed: nothing merged
    notice(prompt_hoster, timezone.now() - timedelta(days=400), ttt_s=60)  # a day in no rolling period
    rollups.drain()
    again = dict(Rollup.objects.values_list("key", "computed_at"))
    assert again["all"] != merged["all"] and again["30d"] == merged["30d"]


def test_the_drain_goes_on_when_one_period_fails(data, monkeypatch):
    real = rollups.merge

    def failing(period, **kwargs):
        if period.key == "all":
            raise RuntimeError("boom")
        return real(period, **kwargs)

    monkeypatch.setattr(rollups, "merge", failing)
    rollups.drain()
    keys = set(Rollup.objects.values_list("key", flat=True))
    assert "all" not in keys and "365d" in keys


def test_a_page_never_says_no_notices_while_there_are_some(client, analyst, prompt_hoster, settings):
    """The league table never says "No notices in this period" while the metrics API counts some
    (notices imported since the last pass). Here the drain ran a moment ago (not overdue)."""
    settings.SCORECARD_ROLLUP_MAX_AGE = 60
    rollups.drain()
    client.force_login(analyst)
    assert "No notices in this period." in client.get("/scorecards/").content.decode()
    notice(prompt_hoster, timezone.now() - timedelta(hours=1), ttt_s=60)
    body = client.get("/scorecards/").content.decode()
    assert "No notices in this period." not in body and "Prompt" in body


def test_pages_lag_by_at_most_the_maximum_age(data, client, analyst, prompt_hoster, settings):
    """A page within SCORECARD_ROLLUP_MAX_AGE of the last pass may show it; after that it catches up."""
    settings.SCORECARD_ROLLUP_MAX_AGE = 60
    now = timezone.now()
    rollups.drain()
    notice(prompt_hoster, now - timedelta(days=1), ttt_s=60)
    period = periods.resolve("30d", now)
    scoped = {"hosters": Hoster.objects.all(), "notices": Notice.objects.all()}
    lagging = rollups.figures(period, now=now + timedelta(seconds=30), **scoped)
    assert next(m for m in lagging.hosters if m.hoster == "prompt").notices == 5
    caught_up = rollups.figures(period, now=now + timedelta(seconds=61), **scoped)
    assert next(m for m in caught_up.hosters if m.hoster == "prompt").notices == 6


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


def test_whole_months_and_edge_days_add_up_to_every_named_period(prompt_hoster, slow_hoster):
    """A period is merged from month cells for its whole months and day cells at its edges: every
    named period gives exactly the figures computed from the notices."""
    now = timezone.now()
    for i in range(60):
        hoster = prompt_hoster if i % 3 else slow_hoster
        at = now - timedelta(days=7 * i + 1, hours=i % 5)
        if i % 4:
            notice(hoster, at, ttt_s=900 * (i + 1) + 0.25, removal_mechanism="file_gone")
        else:
            notice(hoster, at, status="online", last_checked_at=at + timedelta(hours=i + 1))
    rollups.catch_up(now)
    assert RollupCell.objects.filter(is_month=True).exists()
    keys = ["30d", "90d", "365d", "all", str(now.year), *periods.last_months(now, 14)]
    for key in keys:
        period = periods.resolve(key, now)
        merged = rollups.merge(period, now=now)
        live = scorecards.period_metrics(period, now=now)
        assert [m.as_dict() for m in merged.hosters] == [m.as_dict() for m in live.hosters], key
        assert merged.national.as_dict() == live.national.as_dict(), key


def test_after_an_import_the_drains_next_pass_puts_the_notices_on_the_league_table(
    tmp_path, client, api, analyst, prompt_hoster, settings
):
    """After an import the league table and the metrics API agree at the drain's next pass. Here:
    the monitor's rollup drain ran a moment ago (pages do not catch up themselves); an import; the
    drain's next pass (what runmonitor runs every 20 s); then the league table and the metrics API
    agree, and the pass took well under the 60 s."""
    import csv
    import time

    from django.core.management import call_command

    settings.SCORECARD_ROLLUP_MAX_AGE = 60
    rollups.drain()
    at = timezone.now() - timedelta(hours=2)
    path = tmp_path / "notices.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "notified_at", "reference", "hoster", "deadline_s", "regime"])
        for i in range(316):
            writer.writerow([f"http://img{i}.example/{i}.jpg", at.isoformat(), f"R{i}", "prompt", 3600, "order"])
    call_command("import_notices", str(path), stdout=open(os.devnull, "w"))  # noqa: SIM115
    started = time.perf_counter()
    rollups.drain()
    pass_s = time.perf_counter() - started
    client.force_login(analyst)
    page = client.get("/scorecards/")
    prompt = next(m for m in page.context["rows"] if m.hoster == "prompt")
    api_rows = api.as_user(analyst).get("/api/v1/metrics/hosters/").json()
    assert prompt.notices == 316 == next(r for r in api_rows if r["hoster"] == "prompt")["notices"]
    assert (prompt.late, prompt.pending) == (316, 0)  # past their 1 h deadline, never checked
    ordered = client.get("/scorecards/", {"regime": "order"}).context["rows"]
    assert [(m.hoster, m.notices, m.regime) for m in ordered] == [("prompt", 316, "order")]
    assert pass_s < 60


def test_a_withdrawal_reaches_the_pages_at_once(
    data, client, analyst, prompt_hoster, settings, django_capture_on_commit_callbacks
):
    """The withdrawal service calls settings.MEASUREMENTS_CHANGED_HOOKS: the next page catches up
    with the changed notice (no full rebuild: only its day is recomputed)."""
    from compliance.measurements import notice_withdraw

    settings.SCORECARD_ROLLUP_MAX_AGE = 60
    rollups.drain()
    client.force_login(analyst)
    before = next(m for m in client.get("/scorecards/").context["rows"] if m.hoster == "prompt")
    cells_before = RollupCell.objects.count()
    target = Notice.objects.filter(hoster=prompt_hoster).order_by("id").first()
    with django_capture_on_commit_callbacks(execute=True):
        assert notice_withdraw(notice_ids=[target.pk], reason="sent in error", user=analyst) == 1
    after = next(m for m in client.get("/scorecards/").context["rows"] if m.hoster == "prompt")
    assert (after.notices, after.withdrawn) == (before.notices - 1, before.withdrawn + 1)
    assert RollupCell.objects.count() == cells_before


def test_the_sweep_recomputes_old_days_but_merges_no_period_when_nothing_changed(data, settings):
    now = data
    rollups.catch_up(now)
    rollups.catch_up(now + timedelta(minutes=5))
    rollups.refresh(periods.resolve("all", now), now=now)
    settings.SCORECARD_SETTLED_MAX_AGE = 60  # every day is due for the sweep
    later = now + timedelta(minutes=10)
    assert rollups.catch_up(later) == set()  # looked at, recomputed, unchanged
    assert RollupCell.objects.filter(is_month=False, computed_at=later).exists()
    assert not Rollup.objects.get(key="all").is_stale
