"""The verdict and the compliance rate (compliance/rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from compliance import rules

T0 = datetime(2026, 1, 1, tzinfo=UTC)
D = timedelta(hours=24)


def verdict(**kw):
    base = dict(status="online", notified_at=T0, deadline_at=T0 + D, takedown_at=None, now=T0 + 2 * D)
    base.update(kw)
    return rules.verdict(**base)


def test_a_takedown_at_the_deadline_is_within():
    assert verdict(status="removed", takedown_at=T0 + D) == "within"


def test_a_takedown_after_the_deadline_is_late():
    assert verdict(status="removed", takedown_at=T0 + D + timedelta(seconds=1)) == "late"


def test_still_online_before_the_deadline_is_pending_and_after_it_late():
    assert verdict(now=T0 + D / 2) == "pending"
    assert verdict(now=T0 + D + timedelta(seconds=1)) == "late"


def test_an_unconfirmed_removal_before_the_deadline_keeps_the_verdict_pending():
    assert verdict(offline_since=T0 + D - timedelta(minutes=1)) == "pending"
    assert verdict(offline_since=T0 + D + timedelta(minutes=1)) == "late"


def test_a_displacement_by_the_deadline_is_not_compliance_and_after_it_late():
    """Content that moved to another hoster was not taken down by this one (displacement): no verdict
    by the deadline (out of the rate, counted as displaced); still here after it, late."""
    assert verdict(status="removed", takedown_at=T0 + D / 2, is_displaced=True) is None
    assert verdict(status="removed", takedown_at=T0 + D, is_displaced=True) is None
    assert verdict(status="removed", takedown_at=T0 + D + timedelta(seconds=1), is_displaced=True) == "late"


def test_repeats_withdrawn_and_unresolvable_notices_without_hoster_have_no_verdict():
    assert verdict(status="repeat") is None
    assert verdict(status="withdrawn") is None
    assert verdict(status="unresolvable", hoster_id=None) is None


def test_a_notice_with_a_hoster_always_counts_for_it():
    """Only a notice without any hoster may be unresolvable; a stale one with a hoster is decided."""
    assert verdict(status="unresolvable", hoster_id=7) == "late"


def test_a_notice_not_yet_notified_is_pending():
    assert verdict(notified_at=None, deadline_at=None) == "pending"


def test_compliance_rate_excludes_pending_and_is_null_without_decisions():
    assert rules.compliance_rate(3, 1) == 0.75
    assert rules.compliance_rate(0, 0) is None
