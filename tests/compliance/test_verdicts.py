"""The verdict and the compliance rate (compliance/verdicts.py), and the verdict in SQL
(`verdict_expression`), which agrees exactly with the verdict in Python (`verdict`) on every
combination of the inputs that decide it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance import verdicts
from compliance.models import Notice

NOTIFIED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEADLINE_S = 86400
DEADLINE = NOTIFIED + timedelta(seconds=DEADLINE_S)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
D = timedelta(hours=24)
# Moments around the deadline, with equality on purpose: takedown exactly at the deadline is within.
AROUND = [
    None,
    DEADLINE - timedelta(hours=1),
    DEADLINE,
    DEADLINE + timedelta(microseconds=1),
    DEADLINE + timedelta(hours=2),
]
STATUSES = [s.value for s in Notice.Status]


MECHANISMS = ["file_gone", "server_gone"]


def _rows(cases, hoster=None):
    """cases: (status, notified, takedown, offline, unreachable, displaced[, mechanism, with_hoster])."""
    notices = []
    for i, case in enumerate(cases):
        status, notified, takedown, offline, unreachable, displaced = case[:6]
        mechanism, with_hoster = case[6:] if len(case) > 6 else ("file_gone", True)
        deadline_at, settles_at = Notice.timeline(notified, DEADLINE_S)
        notices.append(
            Notice(
                url=f"http://v{i}.example/x",
                scheme="http",
                host=f"v{i}.example",
                received_at=NOTIFIED,
                notified_at=notified,
                deadline_s=DEADLINE_S,
                deadline_at=deadline_at,
                settles_at=settles_at,
                status=status,
                takedown_at=takedown,
                removal_mechanism=mechanism if takedown else "",
                offline_since=offline,
                unreachable_since=unreachable,
                is_displaced=displaced,
                hoster=hoster if with_hoster else None,
            )
        )
    Notice.objects.bulk_create(notices, batch_size=500)


def _compare(now):
    mismatches = []
    for n in verdicts.annotate_verdict(Notice.objects.all(), now):
        expected = n.verdict(now)  # compliance.verdicts.verdict on the row
        if n.verdict_sql != expected:
            mismatches.append(
                (
                    n.status,
                    n.notified_at,
                    n.takedown_at,
                    n.offline_since,
                    n.unreachable_since,
                    n.is_displaced,
                    n.removal_mechanism,
                    n.hoster_id,
                    n.verdict_sql,
                    expected,
                )
            )
    return mismatches


@pytest.mark.django_db
def test_sql_verdict_agrees_with_the_rule_on_every_combination(prompt_hoster):
    cases = [
        (*case, True)
        for case in itertools.product(STATUSES, [NOTIFIED, None], AROUND, AROUND, AROUND, [False, True], MECHANISMS)
    ]
    # Without a hoster only `unresolvable` is unmeasured: the other statuses' verdicts do not read the hoster.
    cases += [
        (*case, False)
        for case in itertools.product(
            ["unresolvable", "online"], [NOTIFIED], AROUND, AROUND, AROUND, [False], MECHANISMS
        )
    ]
    _rows(cases, hoster=prompt_hoster)
    for now in (
        DEADLINE - timedelta(hours=3),
        DEADLINE,
        DEADLINE + timedelta(microseconds=1),
        DEADLINE + timedelta(days=3),
        DEADLINE + timedelta(seconds=DEADLINE_S - 1),  # just before the notice settles (2 D)
        DEADLINE + timedelta(seconds=DEADLINE_S),  # when it settles
    ):
        assert _compare(now) == [], now
    assert Notice.objects.count() == len(cases) == len(STATUSES) * 2 * 125 * 2 * 2 + 2 * 125 * 2


moments = st.one_of(
    st.none(),
    st.integers(min_value=-2 * 86400 * 10**6, max_value=3 * 86400 * 10**6).map(
        lambda us: NOTIFIED + timedelta(microseconds=us)
    ),
)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(STATUSES),
            st.sampled_from([NOTIFIED, None]),
            moments,
            moments,
            moments,
            st.booleans(),
            st.sampled_from(MECHANISMS),
            st.booleans(),
        ),
        max_size=25,
    ),
    st.integers(min_value=-86400, max_value=4 * 86400).map(lambda s: NOTIFIED + timedelta(seconds=s)),
)
def test_sql_verdict_agrees_with_the_rule_on_random_moments(prompt_hoster, cases, now):
    Notice.objects.all().delete()
    _rows(cases, hoster=prompt_hoster)
    assert _compare(now) == []


@pytest.mark.django_db
def test_measured_notices_in_sql_are_the_measured_ones_in_python(prompt_hoster):
    cases = [
        (status, notified, None, None, None, False, "file_gone", with_hoster)
        for status, notified, with_hoster in itertools.product(STATUSES, [NOTIFIED, None], [True, False])
    ]
    _rows(cases, hoster=prompt_hoster)
    in_sql = set(verdicts.measured_notices(Notice.objects.all()).values_list("id", flat=True))
    in_python = {
        n.id
        for n in Notice.objects.all()
        if n.notified_at is not None and verdicts.is_measured(status=n.status, hoster_id=n.hoster_id)
    }
    assert in_sql == in_python
    assert len(in_python) == (len(STATUSES) - 2) * 2 - 1  # without repeat, withdrawn, hosterless unresolvable


# --- The rule in Python ---------------------------------------------------------------------------


def verdict(**kw):
    """The rule with a notice still online by default, judged a day after its deadline."""
    base = dict(status="online", notified_at=T0, deadline_at=T0 + D, takedown_at=None, now=T0 + 2 * D)
    base.update(kw)
    return verdicts.verdict(**base)


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
    assert verdicts.compliance_rate(3, 1) == 0.75
    assert verdicts.compliance_rate(0, 0) is None
