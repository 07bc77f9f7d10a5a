"""The `compliance_report` command (reports/management/commands/compliance_report.py): columns,
period bounds, errors and the regime filter."""

from __future__ import annotations

import csv
import io
import json

import pytest

from reports import scorecards

from .helpers import BASE, notice, run_report


def test_compliance_report_csv_has_the_contract_columns(case):
    text = run_report("--format", "csv", "--from", "2025-06-01T00:00:00Z")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == scorecards.REPORT_COLUMNS
    assert rows[0]["hoster"] == "prompt" and rows[0]["km_median_ttt_s"] == "86400.0"
    assert [float(r["compliance_rate"]) for r in rows] == [4 / 6, 0.0]


def test_report_period_is_from_inclusive_to_exclusive(case):
    # [BASE, BASE + 2 h): prompt's first two notices only.
    rows = json.loads(run_report("--from", "2025-06-01T00:00:00Z", "--to", "2025-06-01T02:00:00Z"))
    assert [(r["hoster"], r["notices"], r["within"]) for r in rows] == [("prompt", 2, 2), ("slow", 2, 0)]
    everything = json.loads(run_report())
    assert [r["notices"] for r in everything] == [8, 3]


def test_bad_bounds_are_a_clear_error(case):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not an ISO 8601"):
        run_report("--from", "yesterday")
    with pytest.raises(CommandError, match="after"):
        run_report("--from", "2025-06-02", "--to", "2025-06-01")


def test_compliance_report_and_the_metrics_api_filter_by_regime(prompt_hoster, api, analyst):
    notice(prompt_hoster, BASE, ttt_s=60, deadline_s=180, regime="order")
    notice(prompt_hoster, BASE, ttt_s=600, deadline_s=180, regime="order")
    notice(prompt_hoster, BASE, ttt_s=3600, regime="covenant")
    everything = json.loads(run_report("--from", "2025-06-01"))[0]
    orders = json.loads(run_report("--from", "2025-06-01", "--regime", "order"))[0]
    assert (everything["notices"], everything["regime"], everything["within"]) == (3, None, 2)
    assert (orders["notices"], orders["regime"], orders["within"], orders["late"]) == (2, "order", 1, 1)
    text = run_report("--format", "csv", "--from", "2025-06-01", "--regime", "covenant")
    assert list(csv.DictReader(io.StringIO(text)))[0]["regime"] == "covenant"
    rows = api.as_user(analyst).get("/api/v1/metrics/hosters/", {"from": "2025-06-01", "regime": "order"}).json()
    assert [(r["notices"], r["regime"]) for r in rows] == [(2, "order")]
    assert api.as_user(analyst).get("/api/v1/metrics/hosters/", {"regime": "nonsense"}).status_code == 400
