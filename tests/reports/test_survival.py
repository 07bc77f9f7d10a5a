"""The statistics behind the scorecards, against hand-computed cases and the reference libraries
(lifelines for Kaplan-Meier, numpy for percentiles)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter

from reports import survival
from reports.survival import Grouped


def lifelines_fit(durations, observed):
    kmf = KaplanMeierFitter()
    kmf.fit(durations, event_observed=observed)
    return kmf


def test_kaplan_meier_by_hand():
    # Times 1, 2, 2(censored), 3, 4(censored): S(1)=4/5, S(2)=4/5*3/4=0.6, S(3)=0.6*1/2=0.3.
    g = Grouped.from_durations([1, 2, 2, 3, 4], [1, 1, 0, 1, 0])
    curve = survival.kaplan_meier(g)
    assert list(curve.times) == [1, 2, 3]
    assert curve.survival == pytest.approx([0.8, 0.6, 0.3])
    assert list(curve.at_risk) == [5, 4, 2]
    assert curve.median == 3


def test_kaplan_meier_median_is_none_when_half_is_never_taken_down():
    g = Grouped.from_durations([10, 20, 30, 40, 50], [1, 0, 0, 0, 0])
    assert survival.kaplan_meier(g).median is None
    assert math.isinf(lifelines_fit([10, 20, 30, 40, 50], [1, 0, 0, 0, 0]).median_survival_time_)


def test_kaplan_meier_without_takedowns_has_no_curve():
    curve = survival.kaplan_meier(Grouped.from_durations([5, 6], [0, 0]))
    assert curve.median is None and len(curve.times) == 0 and curve.points() == []


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.booleans()),
        min_size=1,
        max_size=80,
    )
)
def test_kaplan_meier_agrees_with_lifelines(observations):
    durations = [d for d, _ in observations]
    observed = [int(e) for _, e in observations]
    curve = survival.kaplan_meier(Grouped.from_durations(durations, observed))
    kmf = lifelines_fit(durations, observed)
    expected_median = kmf.median_survival_time_
    assert curve.median == (None if math.isinf(expected_median) else expected_median)
    if len(curve.times):
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_
        for i, t in enumerate(curve.times):
            assert curve.survival[i] == sf.loc[t]  # bit for bit: the same operations
            assert curve.lower[i] == pytest.approx(ci.iloc[:, 0].loc[t], abs=1e-9)
            assert curve.upper[i] == pytest.approx(ci.iloc[:, 1].loc[t], abs=1e-9)


def test_kaplan_meier_agrees_with_lifelines_on_a_large_lognormal_sample():
    rng = np.random.default_rng(5)
    durations = np.round(rng.lognormal(mean=9, sigma=1.4, size=20000)).astype(int)
    observed = rng.random(20000) < 0.7
    curve = survival.kaplan_meier(Grouped.from_durations(durations, observed))
    assert curve.median == lifelines_fit(durations, observed).median_survival_time_


def test_merging_groups_is_the_same_as_grouping_everything():
    a = Grouped.from_durations([1, 5, 5, 9], [1, 0, 1, 1])
    b = Grouped.from_durations([5, 7], [1, 0])
    merged = Grouped.merge([a, b, Grouped.empty()])
    whole = Grouped.from_durations([1, 5, 5, 9, 5, 7], [1, 0, 1, 1, 1, 0])
    assert list(merged.times) == list(whole.times)
    assert list(merged.events) == list(whole.events)
    assert list(merged.counts) == list(whole.counts)


def test_percentiles_by_hand():
    # Times in milliseconds, percentiles in seconds. 10, 20, 30, 40 s: median at h=1.5 -> 25;
    # p90 at h=2.7 -> 30 + 0.7*10 = 37.
    g = Grouped.from_durations([40000, 10000, 30000, 20000, 99000], [1, 1, 1, 1, 0])
    assert survival.takedown_percentiles(g) == [25.0, 37.0]
    assert survival.takedown_percentiles(Grouped.from_durations([7000], [1])) == [7.0, 7.0]
    assert survival.takedown_percentiles(Grouped.from_durations([7000], [0])) == [None, None]


def test_a_median_is_never_below_the_observations_it_is_made_of():
    # Truncating to whole seconds would report a true 4.5 s as 4.0 s: below the observation.
    assert survival.takedown_percentiles(Grouped.from_durations([4500], [1])) == [4.5, 4.5]
    assert survival.takedown_percentiles(Grouped.from_durations([4501], [1])) == [4.6, 4.6]
    assert survival.takedown_percentiles(Grouped.from_durations([4001, 4002], [1, 1])) == [4.1, 4.1]
    assert survival.takedown_percentiles(Grouped.from_durations([-4550], [1])) == [-4.5, -4.5]
    curve = survival.kaplan_meier(Grouped.from_durations([4500, 4501, 9000], [1, 1, 1]))
    assert curve.median == 4501 and curve.median_s == 4.6


@pytest.mark.parametrize(
    ("ms", "seconds"), [(0, 0.0), (1, 0.1), (100, 0.1), (101, 0.2), (4500, 4.5), (-1, 0.0), (-101, -0.1)]
)
def test_seconds_up_rounds_milliseconds_up_to_a_tenth(ms, seconds):
    assert survival.seconds_up(ms) == seconds


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=-100, max_value=10**6), min_size=1, max_size=60),
    st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 0.95, 1.0]),
)
def test_percentile_is_numpys_linear_method(values, p):
    # numpy's interpolation differs from PostgreSQL's in the last bits (it computes b - (b-a)(1-t)
    # above t = 0.5), so compare within the rounding to 0.1 s; test_scorecards proves the identity
    # with PostgreSQL's percentile_cont, whose formula a + t (b - a) we use.
    # Values are milliseconds; the percentile is in seconds rounded up to 0.1 s: never below the
    # interpolated value, at most 0.1 s above it.
    g = Grouped.from_durations(values, [1] * len(values))
    got = survival.percentile(g.times, g.events, p)
    expected = float(np.percentile(values, p * 100)) / 1000
    assert expected - 1e-9 <= got <= expected + 0.1 + 1e-9


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Hand-computed with z = 1.96: e.g. 8 of 10 -> (0.4902, 0.9433).
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (84, 100, 0.7557, 0.8990),
    ],
)
def test_wilson_interval(successes, n, low, high):
    got = survival.wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_is_none_without_decided_notices():
    assert survival.wilson_interval(0, 0) is None


def test_histogram_counts_takedowns_per_bin_and_ignores_censored():
    seconds = [-5, 100, 3600, 7199, 90000, 10**7, 50]
    g = Grouped.from_durations([s * 1000 for s in seconds], [1, 1, 1, 1, 1, 1, 0])
    bins = survival.takedown_histogram(g)
    assert [b["count"] for b in bins] == [2, 2, 0, 0, 0, 0, 1, 0, 1]
    assert bins[0] == {"from_s": 0, "to_s": 3600, "count": 2}
    assert bins[-1]["to_s"] is None


def test_curve_points_are_thinned_to_the_limit_keeping_the_last_step():
    g = Grouped.from_durations([s * 1000 for s in range(1, 1001)], [1] * 1000)
    curve = survival.kaplan_meier(g)
    points = curve.points(100)
    assert len(points) == 100
    assert points[-1][0] == 1000.0 and points[-1][1] == 0.0  # seconds
    assert [p[0] for p in points] == sorted(p[0] for p in points)
