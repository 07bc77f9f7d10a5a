"""The accounting rules: pure functions on plain values with an explicit `now`.

These define what the published numbers mean (see docs/methodology.md). Changing the meaning of
any of them requires bumping `settings.METHODOLOGY_VERSION`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

WITHIN = "within"
LATE = "late"
PENDING = "pending"
VERDICTS = (WITHIN, LATE, PENDING)

# Statuses whose notices carry no verdict of their own (CONTRACT: only measurements count).
_UNMEASURED = frozenset({"repeat", "unresolvable"})


def verdict(
    *,
    status: str,
    notified_at: datetime | None,
    deadline_at: datetime | None,
    takedown_at: datetime | None,
    offline_since: datetime | None = None,
    unreachable_since: datetime | None = None,
    is_displaced: bool = False,
    now: datetime,
) -> str | None:
    """`within`, `late` or `pending` for a notice; None for a notice that is not a measurement.

    1. A confirmed takedown decides: within when `takedown_at <= deadline_at`, otherwise late.
       A displacement (the URL now served from another hoster, mechanism `moved`) is not
       compliance: by the deadline it has no verdict (out of the rate, counted as displaced),
       after it the content stayed on this hoster past the deadline: late.
    2. Not notified yet, or the deadline has not passed: pending.
    3. Past the deadline without a confirmed takedown: late, unless an offline (or unreachable)
       streak that began at or before the deadline is still waiting for confirmation; then the
       verdict waits too (pending), because confirmation may date the takedown before the deadline.
    """
    if status in _UNMEASURED:
        return None
    if takedown_at is not None and deadline_at is not None:
        if takedown_at <= deadline_at:
            return None if is_displaced else WITHIN
        return LATE
    if notified_at is None or deadline_at is None or now <= deadline_at:
        return PENDING
    for streak_start in (offline_since, unreachable_since):
        if streak_start is not None and streak_start <= deadline_at:
            return PENDING
    return LATE


def compliance_rate(within: int, late: int) -> float | None:
    """`within / (within + late)`; pending notices are excluded; None when nothing is decided."""
    decided = within + late
    return within / decided if decided else None


# --- The accounting of checks: observations -> a notice's timing state (issue 4) ------------------
#
# Every timing field of a notice is a fold of `apply_check` over its checks in time order, so
# `replay(checks)` recomputes them from the evidence and every number can be traced to its checks.
#
# Observation kinds (`Check.outcome`): online, removed (a definitive observation of absence),
# transient (a fault that says nothing about the content), refused (the checker would not connect:
# a non-public address). The rules:
#
# 1. online: `last_online_at` moves (until the first takedown, which freezes it: it is the last
#    observation before the takedown); both streaks end. A notice removed before comes back as
#    `reappeared` (counted in `reappearance_count`, `reappeared_at`); its first takedown keeps
#    defining the time to takedown.
# 2. removed: starts or extends the offline streak (`offline_since`, `offline_streak`) and ends the
#    unreachable streak (the server answered). `confirmations` (2) consecutive removed
#    observations confirm the takedown, timed at the first of them. Transient and refused
#    observations in between neither extend nor break the streak: they say nothing about the content.
# 3. transient / refused: start or extend the unreachable streak (`unreachable_since`,
#    `unreachable_streak`); never a takedown by itself. Only when it has lasted
#    `server_gone_checks` (3) checks spanning `server_gone_share` (1/4) of the deadline is the
#    server gone: a takedown timed at the first observation of the streak (or of an earlier
#    unconfirmed offline streak), mechanism `server_gone`. Reasons in NEUTRAL_REASONS (the host
#    never resolved; a 2xx body that arrived too slowly) say nothing about reachability either.
# 4. The removal mechanism is that of the observation that confirmed the takedown; `moved` marks
#    the notice displaced (the URL is now served from another hoster).

ONLINE, REMOVED, TRANSIENT, REFUSED = "online", "removed", "transient", "refused"

MECHANISM_BY_REASON = {
    "http_404": "file_gone",
    "http_410": "file_gone",
    "http_451": "blocked",
    "content_changed": "replaced",
    "placeholder": "replaced",
    "redirect_front_page": "replaced",
    "redirect_removed_page": "replaced",
    "nxdomain": "domain_gone",
    "moved": "moved",
}
SERVER_GONE = "server_gone"
NEUTRAL_REASONS = frozenset({"never_resolved", "slow_body"})
_CLOSED_UNMEASURED = frozenset({"repeat", "unresolvable"})


@dataclass(frozen=True)
class Timing:
    """A notice's measurement state; the field names are those of `compliance.models.Notice`."""

    status: str = "pending"
    check_count: int = 0
    last_checked_at: datetime | None = None
    last_online_at: datetime | None = None
    takedown_at: datetime | None = None
    offline_since: datetime | None = None
    offline_streak: int = 0
    unreachable_since: datetime | None = None
    unreachable_streak: int = 0
    removal_mechanism: str = ""
    is_displaced: bool = False
    reappearance_count: int = 0
    reappeared_at: datetime | None = None

    FIELDS = (
        "status",
        "check_count",
        "last_checked_at",
        "last_online_at",
        "takedown_at",
        "offline_since",
        "offline_streak",
        "unreachable_since",
        "unreachable_streak",
        "removal_mechanism",
        "is_displaced",
        "reappearance_count",
        "reappeared_at",
    )

    @classmethod
    def of(cls, obj) -> Timing:
        """From a Notice (or a dict of its fields)."""
        get = obj.get if isinstance(obj, dict) else lambda name: getattr(obj, name)
        return cls(**{name: get(name) for name in cls.FIELDS})

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.FIELDS}


@dataclass(frozen=True)
class Rules:
    """The tunable constants of the accounting (settings MONITOR_CONFIRMATIONS, MONITOR_SERVER_GONE_*)."""

    confirmations: int = 2
    server_gone_checks: int = 3
    server_gone_share: float = 0.25

    @classmethod
    def from_settings(cls) -> Rules:
        from django.conf import settings

        return cls(
            confirmations=settings.MONITOR_CONFIRMATIONS,
            server_gone_checks=settings.MONITOR_SERVER_GONE_CHECKS,
            server_gone_share=settings.MONITOR_SERVER_GONE_SHARE,
        )


DEFAULT_RULES = Rules()


def removal_mechanism(reason: str) -> str:
    return MECHANISM_BY_REASON.get(reason, "replaced")


def apply_check(
    state: Timing,
    *,
    at: datetime,
    outcome: str,
    reason: str = "",
    deadline_s: float,
    rules: Rules = DEFAULT_RULES,
    can_reopen: bool = True,
) -> Timing:
    """The state after one more observation at `at` (which must not precede the last one).

    `can_reopen` is False when another open notice exists for the same URL: a reappearance is then
    recorded (count, time) but the notice stays removed, since the other notice measures the URL now.
    """
    # One dict of the fields, changed in place and frozen once: `dataclasses.replace` per step cost
    # more than everything else of the check drain's bookkeeping.
    s = state.as_dict()
    s["check_count"] += 1
    s["last_checked_at"] = at
    if s["status"] in _CLOSED_UNMEASURED:
        return Timing(**s)
    removed_before = s["takedown_at"] is not None
    is_open = s["status"] != "removed"

    if outcome == ONLINE:
        s.update(offline_since=None, offline_streak=0, unreachable_since=None, unreachable_streak=0)
        if not removed_before:
            s.update(status="online", last_online_at=at)
        elif not is_open:
            # The content is back after a confirmed takedown.
            s["reappearance_count"] += 1
            s["reappeared_at"] = at
            if can_reopen:
                s["status"] = "reappeared"
        # else: still (or again) online after a reappearance
        return Timing(**s)

    if not is_open:
        return Timing(**s)  # removed stays removed; faults after a takedown change nothing

    if outcome == REMOVED:
        s.update(offline_since=s["offline_since"] or at, unreachable_since=None, unreachable_streak=0)
        s["offline_streak"] += 1
        if s["offline_streak"] >= rules.confirmations:
            _takedown(s, at=s["offline_since"], mechanism=removal_mechanism(reason))
        return Timing(**s)

    # transient or refused
    if reason in NEUTRAL_REASONS:
        return Timing(**s)
    s["unreachable_since"] = s["unreachable_since"] or at
    s["unreachable_streak"] += 1
    spanned_s = (at - s["unreachable_since"]).total_seconds()
    if s["unreachable_streak"] >= rules.server_gone_checks and spanned_s >= rules.server_gone_share * deadline_s:
        first = min(t for t in (s["offline_since"], s["unreachable_since"]) if t is not None)
        _takedown(s, at=first, mechanism=SERVER_GONE)
    return Timing(**s)


def _takedown(s: dict, *, at: datetime, mechanism: str) -> None:
    s.update(status="removed", offline_since=None, offline_streak=0, unreachable_since=None, unreachable_streak=0)
    if s["takedown_at"] is None:
        # A first takedown; removed again after a reappearance, the first keeps defining the time.
        s.update(takedown_at=at, removal_mechanism=mechanism, is_displaced=mechanism == "moved")


def replay(
    checks: Iterable[tuple[datetime, str, str]],
    *,
    deadline_s: float,
    rules: Rules = DEFAULT_RULES,
    initial: Timing | None = None,
    can_reopen: bool = True,
) -> Timing:
    """Recompute a notice's timing state from its checks `(checked_at, outcome, reason)` in order."""
    state = initial or Timing()
    for at, outcome, reason in sorted(checks, key=lambda c: c[0]):
        state = apply_check(
            state, at=at, outcome=outcome, reason=reason, deadline_s=deadline_s, rules=rules, can_reopen=can_reopen
        )
    return state
