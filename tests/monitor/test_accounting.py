"""The accounting state machine in compliance/rules.py: observations -> timing fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from compliance.rules import DEFAULT_RULES, Rules, Timing, apply_check, replay, verdict

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
D = 86400


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(*observations, rules=DEFAULT_RULES, can_reopen=True):
    """observations: (minute, outcome[, reason])."""
    return replay(
        [(at(m), o, r[0] if r else "") for m, o, *r in observations], deadline_s=D, rules=rules, can_reopen=can_reopen
    )


def test_two_consecutive_removed_observations_confirm_a_takedown_timed_at_the_first():
    s = run((0, "online"), (3, "online"), (6, "removed", "http_404"), (9, "removed", "http_404"))
    assert s.status == "removed"
    assert s.takedown_at == at(6)
    assert s.last_online_at == at(3)
    assert s.removal_mechanism == "file_gone"
    assert s.check_count == 4 and s.last_checked_at == at(9)
    assert (s.offline_since, s.offline_streak) == (None, 0)


def test_one_removed_observation_is_not_a_takedown():
    s = run((0, "online"), (3, "removed", "http_404"), (6, "online"))
    assert s.status == "online" and s.takedown_at is None
    assert s.last_online_at == at(6) and s.offline_streak == 0


def test_a_single_removed_observation_awaits_confirmation():
    s = run((0, "online"), (3, "removed", "http_410"))
    assert s.status == "online" and s.takedown_at is None
    assert (s.offline_since, s.offline_streak) == (at(3), 1)


def test_confirmations_are_configurable():
    three = Rules(confirmations=3)
    s = run((0, "online"), (3, "removed", "http_404"), (6, "removed", "http_404"), rules=three)
    assert s.takedown_at is None
    s = run(
        (0, "online"), (3, "removed", "http_404"), (6, "removed", "http_404"), (9, "removed", "http_404"), rules=three
    )
    assert s.takedown_at == at(3)


def test_transient_faults_between_removed_observations_neither_confirm_nor_break_the_streak():
    s = run((0, "online"), (3, "removed", "http_404"), (6, "transient", "http_503"), (9, "removed", "http_404"))
    assert s.status == "removed" and s.takedown_at == at(3)


def test_a_503_never_counts_as_a_takedown():
    s = run(*[(m, "transient", "http_503") for m in range(0, 300, 3)])
    assert s.takedown_at is None and s.status == "pending"
    assert s.unreachable_streak == 100


def test_unreachability_over_three_checks_and_a_quarter_deadline_is_server_gone():
    s = run((0, "online"), (3, "transient", "timeout"), (6, "transient", "connect_refused"), (9, "transient", "reset"))
    assert s.takedown_at is None  # three checks, but only six minutes
    quarter = D / 4 / 60
    s = run((0, "online"), (3, "transient", "timeout"), (9, "refused", "dns_refused"), (3 + quarter, "transient", "x"))
    assert s.status == "removed"
    assert s.takedown_at == at(3)
    assert s.removal_mechanism == "server_gone"
    assert s.last_online_at == at(0)


def test_server_gone_dates_from_an_earlier_unconfirmed_removed_observation():
    quarter = D / 4 / 60
    s = run(
        (0, "online"),
        (2, "removed", "http_404"),
        (3, "transient", "t"),
        (9, "transient", "t"),
        (3 + quarter, "transient", "t"),
    )
    assert s.takedown_at == at(2) and s.removal_mechanism == "server_gone"


def test_neutral_reasons_do_not_count_as_unreachable():
    quarter = D / 4 / 60
    s = run(*[(m, "transient", "never_resolved") for m in (0, 5, 10, quarter + 20)])
    assert s.takedown_at is None and s.unreachable_streak == 0


def test_the_mechanism_is_that_of_the_confirming_observation():
    s = run((0, "online"), (3, "removed", "placeholder"), (6, "removed", "http_451"))
    assert s.removal_mechanism == "blocked"
    s = run((0, "online"), (3, "removed", "nxdomain"), (6, "removed", "nxdomain"))
    assert s.removal_mechanism == "domain_gone"
    s = run((0, "online"), (3, "removed", "content_changed"), (6, "removed", "redirect_front_page"))
    assert s.removal_mechanism == "replaced" and not s.is_displaced


def test_moved_content_is_a_displacement():
    s = run((0, "online"), (3, "removed", "moved"), (6, "removed", "moved"))
    assert s.status == "removed" and s.removal_mechanism == "moved" and s.is_displaced


def test_reappearance_reopens_and_the_first_takedown_keeps_defining_the_time():
    s = run(
        (0, "online"),
        (3, "removed", "http_404"),
        (6, "removed", "http_404"),
        (600, "online"),
        (900, "online"),
    )
    assert s.status == "reappeared"
    assert s.reappearance_count == 1 and s.reappeared_at == at(600)
    assert s.takedown_at == at(3) and s.last_online_at == at(0)  # frozen at the first takedown
    s = run(
        (0, "online"),
        (3, "removed", "http_404"),
        (6, "removed", "http_404"),
        (600, "online"),
        (900, "removed", "http_410"),
        (903, "removed", "http_410"),
        (2000, "online"),
    )
    assert s.status == "reappeared" and s.reappearance_count == 2 and s.reappeared_at == at(2000)
    assert s.takedown_at == at(3) and s.removal_mechanism == "file_gone"


def test_a_reappearance_that_cannot_reopen_is_recorded_and_the_notice_stays_removed():
    s = run((0, "online"), (3, "removed", "http_404"), (6, "removed", "http_404"), (600, "online"), can_reopen=False)
    assert s.status == "removed" and s.reappearance_count == 1 and s.reappeared_at == at(600)


def test_faults_after_a_takedown_change_nothing_but_the_count():
    s = run((0, "online"), (3, "removed", "http_404"), (6, "removed", "http_404"), (600, "transient", "timeout"))
    assert s.status == "removed" and s.unreachable_streak == 0 and s.check_count == 4


def test_content_removed_before_the_first_observation_has_no_online_observation():
    s = run((0, "removed", "http_404"), (3, "removed", "http_404"))
    assert s.takedown_at == at(0) and s.last_online_at is None


def test_notices_that_are_no_measurement_only_count_checks():
    s = apply_check(Timing(status="unresolvable"), at=at(0), outcome="removed", reason="http_404", deadline_s=D)
    assert s.status == "unresolvable" and s.check_count == 1 and s.offline_streak == 0


def test_an_offline_streak_across_the_deadline_keeps_the_verdict_pending_until_confirmed():
    deadline = T0 + timedelta(seconds=D)
    s = run((0, "online"), (1439, "removed", "http_404"))
    v = verdict(
        status=s.status,
        notified_at=T0,
        deadline_at=deadline,
        takedown_at=s.takedown_at,
        offline_since=s.offline_since,
        unreachable_since=s.unreachable_since,
        now=at(1441),
    )
    assert v == "pending"
    s = run((0, "online"), (1439, "removed", "http_404"), (1445, "removed", "http_404"))
    assert verdict(status=s.status, notified_at=T0, deadline_at=deadline, takedown_at=s.takedown_at, now=at(1446)) == (
        "within"
    )


OBSERVATION = st.tuples(
    st.sampled_from(["online", "removed", "transient", "refused"]),
    st.sampled_from(["", "http_404", "moved", "never_resolved", "timeout"]),
    st.floats(min_value=0.01, max_value=600),
)


@given(st.lists(OBSERVATION, max_size=40))
def test_replay_equals_folding_checks_one_at_a_time_and_times_stay_ordered(observations):
    checks, t = [], T0
    for outcome, reason, gap_min in observations:
        t += timedelta(minutes=gap_min)
        checks.append((t, outcome, reason))
    state = Timing()
    for c in checks:
        state = apply_check(state, at=c[0], outcome=c[1], reason=c[2], deadline_s=D)
    assert state == replay(checks, deadline_s=D)
    assert state.check_count == len(checks)
    if state.takedown_at is not None:
        assert state.last_online_at is None or state.last_online_at < state.takedown_at
        assert state.removal_mechanism
        assert state.status in ("removed", "reappeared")
    else:
        assert state.status in ("pending", "online")
