"""The accounting across vantage points (compliance/rules.py, methodology 2.1): pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from compliance.rules import Rules, replay

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
D = 86400
TWO = Rules(vantages=("ams", "fra"))
OK, GONE, FORBIDDEN, REFUSED = (
    ("online", "online"),
    ("removed", "http_404"),
    ("no_evidence", "http_403"),
    (
        "transient",
        "connect_refused",
    ),
)


def run(*observations, rules=TWO, minutes_apart: float = 15):
    """`observations`: (vantage, (outcome, reason)) in time order."""
    checks = [
        (T0 + timedelta(minutes=i * minutes_apart), outcome, reason, vantage)
        for i, (vantage, (outcome, reason)) in enumerate(observations)
    ]
    return replay(checks, deadline_s=D, notified_at=T0, rules=rules), checks


def test_with_two_vantages_a_removal_seen_from_one_only_is_not_confirmed():
    state, _checks = run(("ams", OK), ("fra", GONE), ("fra", GONE), ("fra", GONE))
    assert state.takedown_at is None and state.offline_streak == 3 and state.offline_vantages == "fra"


def test_a_removal_seen_from_both_vantages_is_confirmed_at_the_first_observation():
    state, checks = run(("ams", OK), ("fra", GONE), ("ams", GONE))
    assert state.status == "removed" and state.takedown_at == checks[1][0]
    assert state.served_selectively_count == 0  # a removal passing from one vantage to the next is no disagreement


def test_with_one_vantage_configured_two_observations_from_it_confirm_as_before():
    state, checks = run(("local", OK), ("local", GONE), ("local", GONE), rules=Rules())
    assert state.takedown_at == checks[1][0]


def test_content_hidden_from_one_vantage_is_online_and_counted_as_served_selectively():
    state, checks = run(("ams", OK), ("fra", GONE), ("ams", OK), ("fra", FORBIDDEN), ("ams", OK), ("fra", GONE))
    assert state.status == "online" and state.takedown_at is None
    assert state.served_selectively_count == 2 and state.served_selectively_at == checks[2][0]
    assert state.last_online_at == checks[4][0]


def test_a_403_for_one_vantage_while_the_other_sees_the_content_is_selective_serving():
    state, _checks = run(("fra", FORBIDDEN), ("ams", OK))
    assert state.served_selectively_count == 1 and state.status == "online"


def test_a_flaky_server_error_before_content_from_the_other_vantage_is_no_selective_serving():
    """429, 5xx and stalls are a flaky server's: nobody is hiding anything from one vantage."""
    for flaky in (("no_evidence", "http_503"), ("no_evidence", "http_429"), ("no_evidence", "slow_body")):
        state, _checks = run(("fra", flaky), ("ams", OK), ("fra", flaky), ("ams", OK))
        assert state.served_selectively_count == 0, flaky


def test_server_gone_needs_every_vantage_to_fail_at_the_network_level():
    one, _ = run(*[("fra", REFUSED)] * 6, minutes_apart=120)
    assert one.takedown_at is None and one.unreachable_vantages == "fra"
    both, checks = run(*[("fra", REFUSED), ("ams", REFUSED)] * 3, minutes_apart=120)
    assert both.removal_mechanism == "server_gone" and both.takedown_at == checks[0][0]


def test_an_answer_from_either_vantage_ends_the_unreachable_streak():
    state, _checks = run(("fra", REFUSED), ("ams", FORBIDDEN), ("fra", REFUSED), ("ams", REFUSED), minutes_apart=240)
    assert state.takedown_at is None and state.unreachable_streak == 2


@given(
    st.lists(st.tuples(st.sampled_from(["ams", "fra"]), st.sampled_from([OK, GONE, FORBIDDEN, REFUSED])), max_size=30)
)
def test_a_takedown_with_two_vantages_always_rests_on_absence_seen_from_both(observations):
    state, checks = run(*observations, minutes_apart=60)
    if state.takedown_at is not None and state.removal_mechanism != "server_gone":
        seen_absent = {c[3] for c in checks if c[1] == "removed" and c[0] >= state.takedown_at}
        assert seen_absent == {"ams", "fra"}
    if state.removal_mechanism == "server_gone":
        assert {c[3] for c in checks if c[1] == "transient"} == {"ams", "fra"}


def test_checks_from_a_vantage_not_configured_are_judged_by_the_single_vantage_rules():
    """Evidence from before the vantages (named `local`) keeps its takedowns when replayed."""
    state, checks = run(("local", OK), ("local", GONE), ("local", GONE))
    assert state.takedown_at == checks[1][0]
    gone, _ = run(*[("local", REFUSED)] * 4, minutes_apart=240)
    assert gone.removal_mechanism == "server_gone"
