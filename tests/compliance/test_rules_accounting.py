"""The accounting state machine in compliance/rules.py: observations -> timing fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from compliance.rules import DEFAULT_RULES, Rules, Timing, apply_check, replay
from compliance.verdicts import verdict

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
D = 86400


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def run(*observations, rules=DEFAULT_RULES, can_reopen=True, has_hoster=True):
    """observations: (minute, outcome[, reason]); notified at T0."""
    return replay(
        [(at(m), o, r[0] if r else "") for m, o, *r in observations],
        deadline_s=D,
        notified_at=T0,
        has_hoster=has_hoster,
        rules=rules,
        can_reopen=can_reopen,
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
    s = run(*[(m, "no_evidence", "http_503") for m in range(0, 3000, 3)])
    assert s.takedown_at is None and s.status == "pending"
    assert s.unreachable_streak == 0


def test_a_503_recorded_before_methodology_2_is_no_evidence_either():
    """Checks are never rewritten: a 503 recorded as `transient` by methodology 1.0 replays as no evidence."""
    s = run(*[(m, "transient", "http_503") for m in range(0, 3000, 3)])
    assert s.takedown_at is None and s.unreachable_streak == 0


def test_unreachability_over_three_checks_and_a_quarter_deadline_is_server_gone():
    s = run(
        (0, "online"),
        (3, "transient", "connect_timeout"),
        (6, "transient", "connect_refused"),
        (9, "transient", "reset"),
    )
    assert s.takedown_at is None  # three checks, but only six minutes
    quarter = D / 4 / 60
    s = run(
        (0, "online"),
        (3, "transient", "connect_timeout"),
        (9, "refused", "refused:private"),
        (3 + quarter, "transient", "connect_error"),
    )
    assert s.status == "removed"
    assert s.takedown_at == at(3)
    assert s.removal_mechanism == "server_gone"
    assert s.last_online_at == at(0)


def test_an_answer_of_the_server_ends_the_unreachable_streak():
    quarter = D / 4 / 60
    s = run(
        (0, "online"),
        (3, "transient", "reset"),
        (9, "no_evidence", "http_503"),
        (12, "transient", "reset"),
        (3 + quarter, "transient", "reset"),
    )
    assert s.takedown_at is None and s.unreachable_since == at(12) and s.unreachable_streak == 2


def test_server_gone_dates_from_an_earlier_unconfirmed_removed_observation():
    quarter = D / 4 / 60
    s = run(
        (0, "online"),
        (2, "removed", "http_404"),
        (3, "transient", "connect_refused"),
        (9, "transient", "connect_refused"),
        (3 + quarter, "transient", "connect_refused"),
    )
    assert s.takedown_at == at(2) and s.removal_mechanism == "server_gone"


def test_neutral_reasons_do_not_count_as_unreachable():
    quarter = D / 4 / 60
    for outcome, reason in (("no_evidence", "never_resolved"), ("no_evidence", "dns_servfail")):
        s = run(*[(m, outcome, reason) for m in (0, 5, 10, quarter + 20)], has_hoster=False)
        assert s.takedown_at is None and s.unreachable_streak == 0


def test_a_name_that_never_resolved_is_decided_as_a_404_at_the_first_check_when_the_notice_has_a_hoster():
    s = run((0, "removed", "never_resolved"), (3, "removed", "never_resolved"))
    assert s.status == "removed" and s.takedown_at == at(0) and s.removal_mechanism == "domain_gone"
    # checks recorded before methodology 2.0 (`transient`) replay the same way once a hoster is known
    s = run((0, "transient", "never_resolved"), (3, "transient", "never_resolved"))
    assert s.takedown_at == at(0)
    s = run((0, "transient", "never_resolved"), (3, "transient", "never_resolved"), has_hoster=False)
    assert s.takedown_at is None and s.status == "pending"


def _gone(first: float = 60) -> list:
    """Connections refused from `first` minutes on, for a quarter of the deadline: server gone."""
    quarter = D / 4 / 60
    return [(0, "online"), (first, "transient", "connect_refused"), (first + 10, "transient", "connect_refused")] + [
        (first + quarter, "transient", "connect_refused")
    ]


def test_a_server_gone_takedown_is_annulled_when_the_content_comes_back_before_it_settles():
    s = run(*_gone(), (1.5 * D / 60, "online"))  # back at 1.5 D: before the settling point 2 D
    assert s.status == "online" and s.takedown_at is None and s.removal_mechanism == ""
    assert s.annulled_takedowns == 1 and s.reappearance_count == 0 and s.last_online_at == at(1.5 * D / 60)


def test_content_back_after_the_server_gone_takedown_settled_is_a_reappearance():
    s = run(*_gone(), (2 * D / 60, "online"))
    assert s.status == "reappeared" and s.takedown_at == at(60) and s.removal_mechanism == "server_gone"
    assert s.annulled_takedowns == 0 and s.reappearance_count == 1


def test_confirmed_absence_after_the_outage_settles_a_server_gone_takedown_keeping_its_time():
    s = run(*_gone(), (500, "removed", "http_404"), (510, "removed", "http_404"), (1.5 * D / 60, "online"))
    assert s.status == "reappeared" and s.takedown_at == at(60) and s.removal_mechanism == "file_gone"


def test_a_verdict_resting_on_server_gone_waits_until_it_settles():
    s = run(*_gone())
    kwargs = dict(
        status=s.status,
        notified_at=T0,
        deadline_at=T0 + timedelta(seconds=D),
        settles_at=T0 + timedelta(seconds=2 * D),
        takedown_at=s.takedown_at,
        removal_mechanism=s.removal_mechanism,
    )
    assert verdict(**kwargs, now=T0 + timedelta(seconds=1.9 * D)) == "pending"
    assert verdict(**kwargs, now=T0 + timedelta(seconds=2 * D)) == "within"


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
    s = run((0, "online"), (3, "removed", "http_404"), (6, "removed", "http_404"), (600, "transient", "reset"))
    assert s.status == "removed" and s.unreachable_streak == 0 and s.check_count == 4


def test_content_removed_before_the_first_observation_has_no_online_observation():
    s = run((0, "removed", "http_404"), (3, "removed", "http_404"))
    assert s.takedown_at == at(0) and s.last_online_at is None


def test_notices_that_are_no_measurement_only_count_checks():
    for status in ("unresolvable", "repeat", "withdrawn"):
        s = apply_check(Timing(status=status), at=at(0), outcome="removed", reason="http_404", deadline_s=D)
        assert s.status == status and s.check_count == 1 and s.offline_streak == 0


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
    st.sampled_from(["online", "removed", "transient", "refused", "no_evidence"]),
    st.sampled_from(["", "http_404", "moved", "never_resolved", "timeout", "reset", "http_503"]),
    st.floats(min_value=0.01, max_value=600),
)
# What a hoster that flaps, blocks or stalls can answer: none of it is evidence of absence.
NO_EVIDENCE = st.sampled_from(
    [
        ("no_evidence", "http_403"),
        ("no_evidence", "http_429"),
        ("no_evidence", "http_500"),
        ("no_evidence", "http_503"),
        ("no_evidence", "slow_body"),
        ("no_evidence", "timeout"),
        ("no_evidence", "body_reset"),
        ("transient", "http_403"),  # as recorded before methodology 2.0
        ("transient", "http_503"),
        ("transient", "slow_body"),
        ("transient", "timeout"),
        ("online", "online"),
    ]
)


@given(st.lists(st.tuples(NO_EVIDENCE, st.floats(min_value=0.01, max_value=3000)), max_size=60), st.booleans())
def test_no_sequence_of_403_429_5xx_or_stalled_answers_ever_yields_a_takedown(observations, has_hoster):
    checks, t = [], T0
    for (outcome, reason), gap_min in observations:
        t += timedelta(minutes=gap_min)
        checks.append((t, outcome, reason))
    state = replay(checks, deadline_s=D, notified_at=T0, has_hoster=has_hoster)
    assert state.takedown_at is None and state.status in ("pending", "online")
    assert state.unreachable_streak == 0 and state.offline_streak == 0
    assert state == replay(list(reversed(checks)), deadline_s=D, notified_at=T0, has_hoster=has_hoster)


@given(st.lists(OBSERVATION, max_size=40))
def test_replay_equals_folding_checks_one_at_a_time_and_times_stay_ordered(observations):
    checks, t = [], T0
    for outcome, reason, gap_min in observations:
        t += timedelta(minutes=gap_min)
        checks.append((t, outcome, reason))
    state = Timing()
    for c in checks:
        state = apply_check(state, at=c[0], outcome=c[1], reason=c[2], deadline_s=D, notified_at=T0)
    assert state == replay(checks, deadline_s=D, notified_at=T0)
    assert state.check_count == len(checks)
    if state.takedown_at is not None:
        assert state.last_online_at is None or state.last_online_at < state.takedown_at
        assert state.removal_mechanism
        assert state.status in ("removed", "reappeared")
    else:
        assert state.status in ("pending", "online")
