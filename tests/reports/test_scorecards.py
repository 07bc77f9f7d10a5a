"""The figures (reports/scorecards.py) against a hand-computed case, on both databases (the same
expected output in the SQLite and the PostgreSQL pass proves they agree)."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone
from lifelines import KaplanMeierFitter

from compliance.models import Notice
from reports import periods, scorecards

from .helpers import BASE, notice, run_report

EXPECTED = [
    {
        "hoster": "prompt",
        "notices": 7,
        "removed": 4,
        "within": 4,
        "late": 2,
        "pending": 1,
        "open": 3,
        "compliance_rate": 4 / 6,
        "median_ttt_s": 7200.0,
        "p90_ttt_s": 88560.0,  # 86400 + 0.6 * 3600
        "km_median_ttt_s": 86400.0,  # S: 6/7, *4/5, *3/4 = 0.514, *2/3 = 0.343
        "regime": None,
        "taken_down": 5,  # the reappeared one too: it is open, not removed
        "reappeared": 1,
        "server_gone": 0,
        "server_gone_provisional": 0,
        "repeats": 1,
        "withdrawn": 0,
    },
    {
        "hoster": "slow",
        "notices": 3,
        "removed": 2,
        "within": 0,  # the displaced notice is no compliance: no verdict (methodology, Displacement)
        "late": 2,
        "pending": 0,
        "open": 1,
        "compliance_rate": 0.0,
        "median_ttt_s": 86430.0,
        "p90_ttt_s": 155526.0,  # 60 + 0.9 * 172740
        "km_median_ttt_s": 172800.0,
        "regime": None,
        "taken_down": 2,
        "reappeared": 0,
        "server_gone": 1,
        "server_gone_provisional": 0,
        "repeats": 0,
        "withdrawn": 0,
    },
]


def test_compliance_report_json_matches_the_hand_computed_figures(case):
    rows = json.loads(run_report("--from", "2025-06-01T00:00:00+00:00"))
    assert rows == EXPECTED


def test_report_all_columns_carry_intervals_deadlines_and_methodology(case, settings):
    rows = json.loads(run_report("--from", "2025-06-01T00:00:00Z", "--all-columns"))
    prompt, slow = rows
    assert prompt["methodology_version"] == settings.METHODOLOGY_VERSION
    assert prompt["deadlines_s"] == [86400]
    assert slow["deadlines_s"] == [3600, 86400]
    assert prompt["compliance_rate_low"] < 4 / 6 < prompt["compliance_rate_high"]
    assert prompt["reappeared"] == 1 and prompt["taken_down"] == 5
    assert prompt["open_past_deadline"] == 1 and slow["open_past_deadline"] == 1
    assert slow["displaced"] == 1
    assert prompt["is_small_sample"] is True
    assert prompt["ipv4_addresses"] == 65536 and prompt["notices_per_10k_addresses"] == round(7 * 10000 / 65536, 2)


def test_national_figures_include_unattributed_notices(case):
    now = case
    result = scorecards.period_metrics(periods.custom(BASE, None), now=now, with_charts=True)
    assert result.unattributed.notices == 1 and result.unattributed.within == 1
    assert result.national.notices == 7 + 3 + 1
    assert result.national.within == 4 + 0 + 1
    assert result.national.removal_mechanisms == {
        "file_gone": 4,
        "replaced": 1,
        "server_gone": 1,
        "moved": 1,
        "unknown": 1,
    }
    assert result.curves[None]["curves"][0]["survival"][0][0] == 60  # the 1 h deadline first
    assert sum(b["count"] for b in result.curves[None]["histogram"]) == result.national.taken_down


def test_km_median_of_a_hoster_agrees_with_lifelines_on_its_notices(case, prompt_hoster):
    """The survival inputs come from the notices exactly as documented: takedown at TTT, otherwise
    censored at the last check."""
    notices = Notice.objects.filter(hoster=prompt_hoster, notified_at__gte=BASE).exclude(
        status__in=["repeat", "unresolvable"]
    )
    durations, observed = [], []
    for n in notices:
        if n.takedown_at:
            durations.append(n.ttt_s)
            observed.append(1)
        else:
            durations.append(max(0, int((n.last_checked_at - n.notified_at).total_seconds())))
            observed.append(0)
    kmf = KaplanMeierFitter().fit(durations, observed)
    rows = json.loads(run_report("--from", "2025-06-01T02:00:00+02:00"))
    assert rows[0]["km_median_ttt_s"] == kmf.median_survival_time_


@pytest.mark.parametrize(
    ("delta", "ms"),
    [
        (timedelta(seconds=5, microseconds=999999), 6000),
        (timedelta(seconds=4, microseconds=500000), 4500),
        (timedelta(seconds=4, microseconds=500001), 4501),
        (timedelta(seconds=4, microseconds=1), 4001),
        (timedelta(0), 0),
        (timedelta(days=400, microseconds=1), 400 * 86400 * 1000 + 1),
        (-timedelta(seconds=5, microseconds=500000), -5500),
        (-timedelta(seconds=5, microseconds=500999), -5500),
    ],
)
def test_milliseconds_round_up_on_both_databases(prompt_hoster, delta, ms):
    n = notice(prompt_hoster, BASE, ttt_s=None, takedown_at=BASE + delta, last_online_at=None)
    got = Notice.objects.filter(pk=n.pk).annotate(ms=scorecards.ttt_ms_expression()).values_list("ms", flat=True)
    assert got.get() == ms
    assert ms / 1000 >= delta.total_seconds() - 1e-9  # an upper bound, never below the observation


def test_a_median_is_never_below_the_first_observation_of_absence(prompt_hoster):
    # Three takedowns 4.5 s, 4.5 s and 4.9 s after notification, one 4.000001 s: never reported as 4.0 s.
    for ms in (4500, 4500, 4900):
        notice(prompt_hoster, BASE, ttt_s=None, takedown_at=BASE + timedelta(milliseconds=ms), last_online_at=None)
    notice(prompt_hoster, BASE, ttt_s=None, takedown_at=BASE + timedelta(microseconds=4_000_001), last_online_at=None)
    row = json.loads(run_report("--from", "2025-06-01T00:00:00Z"))[0]
    # Sorted 4.001, 4.5, 4.5, 4.9: the median interpolates 4.5 and 4.5; p90 = 4.5 + 0.7 * 0.4 = 4.78 -> 4.8.
    assert (row["median_ttt_s"], row["p90_ttt_s"], row["km_median_ttt_s"]) == (4.5, 4.8, 4.5)


@pytest.mark.postgres
def test_percentiles_are_postgresqls_percentile_cont(prompt_hoster, slow_hoster):
    rng = np.random.default_rng(11)
    for hoster, size in ((prompt_hoster, 301), (slow_hoster, 40)):
        for ttt in rng.lognormal(8, 1.5, size).astype(int):
            notice(hoster, BASE, ttt_s=int(ttt))
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT h.slug, percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (
                   ORDER BY CEIL(EXTRACT(EPOCH FROM (n.takedown_at - n.notified_at)) * 1000))
               FROM compliance_notice n JOIN compliance_hoster h ON h.id = n.hoster_id
               GROUP BY h.slug ORDER BY h.slug"""
        )
        # percentile_cont over milliseconds, then up to the next 0.1 s.
        expected = {slug: [math.ceil(round(v, 6) / 100) / 10 for v in values] for slug, values in cursor.fetchall()}
    rows = scorecards.report_rows(periods.resolve("all", timezone.now()), now=timezone.now())
    assert {r.hoster: [r.median_ttt_s, r.p90_ttt_s] for r in rows} == expected
