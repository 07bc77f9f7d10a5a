"""The accounting rules: pure functions on plain values with an explicit `now`.

These define what the published numbers mean (see docs/methodology.md). Changing the meaning of
any of them requires bumping `settings.METHODOLOGY_VERSION`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

# What one check saw: the values of Check.Outcome (compliance/models.py builds it from these).
ONLINE, REMOVED, TRANSIENT, REFUSED, NO_EVIDENCE = "online", "removed", "transient", "refused", "no_evidence"

# A notice's statuses: the values of Notice.Status (built from these). `online` and `removed` are
# the same words as the outcomes. Open: the monitor waits for a takedown. `removed`: a takedown
# confirmed, watched for reappearance. Unmeasured, never a measurement of their own (only
# measurements count: docs/methodology.md): a repeat notice of an open one, a notice an analyst
# withdrew (sent in error), and `unresolvable`, only ever given to a notice without a hoster.
PENDING, REAPPEARED = "pending", "reappeared"
REPEAT, WITHDRAWN, UNRESOLVABLE = "repeat", "withdrawn", "unresolvable"
OPEN_STATUSES = (PENDING, ONLINE, REAPPEARED)
UNMEASURED_STATUSES = (REPEAT, WITHDRAWN, UNRESOLVABLE)

# A server-gone takedown is provisional until `settles_at`: one deadline after the deadline, 2 D
# from notification. Content seen again before then annuls it; after, it is a reappearance.
SETTLE_AFTER_DEADLINES = 2.0


def settles_at(notified_at: datetime, deadline_s: float) -> datetime:
    """When a provisional server-gone takedown of a notice notified at `notified_at` settles."""
    return notified_at + timedelta(seconds=SETTLE_AFTER_DEADLINES * deadline_s)


def seconds_up(delta: timedelta) -> float:
    """A duration in seconds, rounded UP to the millisecond: times built on observations are upper
    bounds (a takedown was seen at `takedown_at`, not before), so no rounding may make them smaller."""
    microseconds = delta // timedelta(microseconds=1)
    return math.ceil(microseconds / 1000) / 1000


def is_provisional(*, removal_mechanism: str, takedown_at: datetime | None, settles_at: datetime | None) -> bool:
    """A server-gone takedown the settling rule has not decided yet (it is decided by time:
    `verdicts.verdict` treats it as pending while `now < settles_at`)."""
    return removal_mechanism == SERVER_GONE and takedown_at is not None and settles_at is not None


# --- The accounting of checks: observations -> a notice's timing state ----------------------------
#
# Every timing field of a notice is a fold of `apply_check` over its checks in time order, so
# `replay(checks)` recomputes them from the evidence and every number can be traced to its checks.
# docs/methodology.md ("Evidence") says the same in words; methodology 2.0.
#
# A check's `outcome` (Check.Outcome, written by monitor/classification.py) and `reason` give its
# *evidence class* (`evidence`), which is all the accounting reads:
#
# - ONLINE: the content is served (the same body hash, or a 2xx where no hash is known).
# - ABSENT: evidence of absence: 404, 410, 451, NXDOMAIN of a name that resolved, other content where
#   the hash is known, a placeholder, a redirect away, `moved` (displaced); and, for a notice that has
#   a hoster, a host name that does not resolve (the hotline saw the content when it was reported:
#   decided as a 404 would be).
# - UNREACHABLE: a network-level failure before any response: connection refused or timed out, no
#   route, reset or closed before any response, a name with no address, a non-public address.
# - ANSWERED: no evidence, but the server answered: 403, 429, any 5xx, other 4xx, a stalled body, a
#   protocol or TLS error. Never a takedown, however long it lasts; it ends an unreachable streak.
# - NEUTRAL: no evidence at all (the resolver failed, the checker failed, a name that never resolved
#   for a notice without hoster): changes nothing but the check count.
#
# The rules:
# 1. ONLINE: `last_online_at` moves (until the first takedown, which freezes it); both streaks end.
#    A provisional server-gone takedown (seen before `settles_at`) is annulled: the outage was not a
#    takedown, the notice is measured as if it had stayed online (`annulled_takedowns` counts it).
#    Any other takedown stays, and the notice is `reappeared` (its first takedown keeps defining the
#    time to takedown).
# 2. ABSENT: starts or extends the offline streak; `confirmations` (2) consecutive ABSENT
#    observations confirm the takedown, timed at the first of them. ANSWERED, UNREACHABLE and NEUTRAL
#    observations in between neither extend nor break it. On a provisional server-gone takedown,
#    confirmed absence settles it: the mechanism becomes the absence's, the time stays.
# 3. UNREACHABLE: starts or extends the unreachable streak. When it has lasted `server_gone_checks`
#    (3) checks spanning `server_gone_share` (1/4) of the deadline, the server is gone: a takedown
#    timed at the first observation of the streak (or of an earlier unconfirmed offline streak),
#    mechanism `server_gone`, provisional until `settles_at`.
# 4. ANSWERED: ends the unreachable streak (the server is there), nothing else.
# 5. The removal mechanism is that of the observation that confirmed the takedown; `moved` marks the
#    notice displaced.

# Evidence classes (see above).
ABSENT, UNREACHABLE, ANSWERED, NEUTRAL = "absent", "unreachable", "answered", "neutral"
# An answer that refuses the content to this requester (no evidence either way, but with several
# vantages, the content seen from another right after it is selective serving).
BLOCKED = "blocked"
BLOCKING_REASONS = frozenset({"http_401", "http_403"})

# Reasons of a failure before any response: the only ones that can add up to "server gone".
NETWORK_REASONS = frozenset(
    {"connect_refused", "connect_error", "connect_timeout", "reset", "disconnected", "dns_no_answer", "os_error"}
)
# Reasons of a check where the server did answer, but neither with the content nor with its absence.
ANSWERED_REASONS = frozenset(
    {"slow_body", "body_reset", "body_disconnected", "payload_error", "protocol_error", "tls", "timeout"}
)
NEVER_RESOLVED = "never_resolved"

MECHANISM_BY_REASON = {
    "http_404": "file_gone",
    "http_410": "file_gone",
    "http_451": "blocked",
    "content_changed": "replaced",
    "placeholder": "replaced",
    "redirect_front_page": "replaced",
    "redirect_removed_page": "replaced",
    "nxdomain": "domain_gone",
    NEVER_RESOLVED: "domain_gone",
    "moved": "moved",
}
SERVER_GONE = "server_gone"


def evidence(outcome: str, reason: str, *, has_hoster: bool = True) -> str:
    """The evidence class of one check (see above). Reads checks of every methodology version:
    before 2.0 a 403 or 503 was recorded as `transient` with reason `http_403`, now `no_evidence`."""
    if outcome == ONLINE:
        return ONLINE
    if outcome == REMOVED:
        return ABSENT
    if reason == NEVER_RESOLVED:
        return ABSENT if has_hoster else NEUTRAL
    if outcome == REFUSED:
        return UNREACHABLE
    if outcome == TRANSIENT and reason in NETWORK_REASONS:
        return UNREACHABLE
    if reason.startswith("http_") or reason in ANSWERED_REASONS:
        return ANSWERED
    return NEUTRAL


@dataclass(frozen=True)
class Timing:
    """A notice's measurement state; the field names are those of `compliance.models.Notice`."""

    status: str = PENDING
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
    annulled_takedowns: int = 0
    # Vantage points (methodology 2.1): which vantages saw the current offline / unreachable streak,
    # the last observation's vantage and evidence class, and selective serving (content seen from
    # one vantage right after another saw it absent or was refused it: 401, 403).
    offline_vantages: str = ""
    unreachable_vantages: str = ""
    last_vantage: str = ""
    last_evidence: str = ""
    served_selectively_count: int = 0
    served_selectively_at: datetime | None = None

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
        "annulled_takedowns",
        "offline_vantages",
        "unreachable_vantages",
        "last_vantage",
        "last_evidence",
        "served_selectively_count",
        "served_selectively_at",
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
    """The tunable constants of the accounting (settings MONITOR_CONFIRMATIONS, MONITOR_SERVER_GONE_*).
    They are part of the methodology: compliance/methodology.py records them with its version."""

    confirmations: int = 2
    server_gone_checks: int = 3
    server_gone_share: float = 0.25
    # The names of the vantage points configured (MONITOR_VANTAGES): two or more ask for a second opinion.
    vantages: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls) -> Rules:
        from django.conf import settings

        return cls(
            confirmations=settings.MONITOR_CONFIRMATIONS,
            server_gone_checks=settings.MONITOR_SERVER_GONE_CHECKS,
            server_gone_share=settings.MONITOR_SERVER_GONE_SHARE,
            vantages=tuple(v.name for v in settings.MONITOR_VANTAGES),
        )


DEFAULT_RULES = Rules()
DEFAULT_VANTAGE = "local"  # Check.vantage's default: the monitor's own place


def removal_mechanism(reason: str) -> str:
    return MECHANISM_BY_REASON.get(reason, "replaced")


def apply_check(
    state: Timing,
    *,
    at: datetime,
    outcome: str,
    reason: str = "",
    deadline_s: float,
    notified_at: datetime | None = None,
    has_hoster: bool = True,
    rules: Rules = DEFAULT_RULES,
    can_reopen: bool = True,
    vantage: str = DEFAULT_VANTAGE,
) -> Timing:
    """The state after one more observation at `at` (which must not precede the last one).

    `vantage` names where the observation came from (`Check.vantage`). With more than one vantage
    configured (`rules.vantages`; see `_several` for checks from others): a takedown is confirmed
    only once absence was seen from two of them; server gone needs the unreachable streak seen from
    every one; and content seen from one
    vantage right after another saw it absent or was refused it (401, 403) is *selective serving*: counted
    (`served_selectively_count`, first at `served_selectively_at`), never a takedown.

    `notified_at` dates the settling of a server-gone takedown (`settles_at`; None: not notified
    yet, so nothing has settled). `has_hoster`: the notice has a hoster (a name that never resolved
    is then evidence of absence). `can_reopen` is False when another open notice exists for the same
    URL: a reappearance is then recorded (count, time) but the notice stays removed, since the other
    notice measures the URL now.
    """
    # One dict of the fields, changed in place and frozen once: `dataclasses.replace` per step cost
    # more than everything else of the check drain's bookkeeping.
    s = state.as_dict()
    s["check_count"] += 1
    s["last_checked_at"] = at
    if s["status"] in UNMEASURED_STATUSES:
        return Timing(**s)
    kind = evidence(outcome, reason, has_hoster=has_hoster)
    previous_vantage, previous_kind = s["last_vantage"], s["last_evidence"]
    # Kept as the last evidence: the class, except that a refusal to serve (401, 403) is told apart
    # from other answers without the content (429, 5xx, stalls): those are a flaky server's, not a
    # hoster hiding the content from one vantage.
    s.update(last_vantage=vantage, last_evidence=BLOCKED if reason in BLOCKING_REASONS else kind)
    if kind == ONLINE and previous_kind in (ABSENT, BLOCKED) and previous_vantage != vantage:
        # Seen here right after another vantage saw it gone or was refused it: served selectively.
        s["served_selectively_count"] += 1
        s["served_selectively_at"] = s["served_selectively_at"] or at
    provisional = s["removal_mechanism"] == SERVER_GONE and (
        notified_at is None or at < settles_at(notified_at, deadline_s)
    )
    is_open = s["status"] != REMOVED

    if kind == ONLINE:
        s.update(
            offline_since=None,
            offline_streak=0,
            unreachable_since=None,
            unreachable_streak=0,
            offline_vantages="",
            unreachable_vantages="",
        )
        if provisional and s["takedown_at"] is not None and s["reappearance_count"] == 0:
            # The server was not gone: the outage was no takedown. Measured as if it stayed online.
            s.update(takedown_at=None, removal_mechanism="", is_displaced=False)
            s["annulled_takedowns"] += 1
        if s["takedown_at"] is None:
            s.update(status=ONLINE, last_online_at=at)
        elif not is_open:
            # The content is back after a confirmed takedown.
            s["reappearance_count"] += 1
            s["reappeared_at"] = at
            if can_reopen:
                s["status"] = REAPPEARED
        # else: still (or again) online after a reappearance
        return Timing(**s)

    if not is_open:
        if provisional and kind == ABSENT:
            # Absence seen after the outage, confirmed, settles a server-gone takedown: its time stays.
            s["offline_streak"] += 1
            s["offline_vantages"] = _with(s["offline_vantages"], vantage)
            if _confirmed(s, rules):
                mechanism = removal_mechanism(reason)
                s.update(removal_mechanism=mechanism, is_displaced=mechanism == "moved", offline_streak=0)
        return Timing(**s)  # otherwise removed stays removed; faults after a takedown change nothing

    if kind == ABSENT:
        s.update(
            offline_since=s["offline_since"] or at,
            unreachable_since=None,
            unreachable_streak=0,
            unreachable_vantages="",
        )
        s["offline_streak"] += 1
        s["offline_vantages"] = _with(s["offline_vantages"], vantage)
        if _confirmed(s, rules):
            _takedown(s, at=s["offline_since"], mechanism=removal_mechanism(reason))
        return Timing(**s)

    if kind == ANSWERED:
        s.update(unreachable_since=None, unreachable_streak=0, unreachable_vantages="")  # the server is there
        return Timing(**s)

    if kind == NEUTRAL:
        return Timing(**s)

    # UNREACHABLE
    s["unreachable_since"] = s["unreachable_since"] or at
    s["unreachable_streak"] += 1
    s["unreachable_vantages"] = _with(s["unreachable_vantages"], vantage)
    spanned_s = (at - s["unreachable_since"]).total_seconds()
    seen = set(s["unreachable_vantages"].split(","))
    every_vantage = not _several(seen, rules) or seen >= set(rules.vantages)
    if (
        s["unreachable_streak"] >= rules.server_gone_checks
        and spanned_s >= rules.server_gone_share * deadline_s
        and every_vantage
    ):
        first = min(t for t in (s["offline_since"], s["unreachable_since"]) if t is not None)
        _takedown(s, at=first, mechanism=SERVER_GONE)
    return Timing(**s)


def _with(names: str, vantage: str) -> str:
    """A comma-joined set of vantage names, with `vantage` in it (sorted: equal sets, equal text)."""
    return ",".join(sorted(set(filter(None, names.split(","))) | {vantage}))


def _several(seen: set[str], rules: Rules) -> bool:
    """Whether a streak seen from `seen` is judged by the rules of several vantages: more than one is
    configured and every observation came from one of them. A check from a vantage that is not
    configured (made before vantages were, named `local`; or a retired one) is judged as then, by
    the single-vantage rules, so replaying old evidence does not re-judge it."""
    return len(rules.vantages) > 1 and seen <= set(rules.vantages)


def _confirmed(s: dict, rules: Rules) -> bool:
    """Enough absent observations, and with several vantages, from two of them."""
    if s["offline_streak"] < rules.confirmations:
        return False
    seen = set(s["offline_vantages"].split(","))
    return not _several(seen, rules) or len(seen) >= 2


def _takedown(s: dict, *, at: datetime, mechanism: str) -> None:
    s.update(
        status=REMOVED,
        offline_since=None,
        offline_streak=0,
        unreachable_since=None,
        unreachable_streak=0,
        offline_vantages="",
        unreachable_vantages="",
    )
    if s["takedown_at"] is None:
        # A first takedown; removed again after a reappearance, the first keeps defining the time.
        s.update(takedown_at=at, removal_mechanism=mechanism, is_displaced=mechanism == "moved")


def replay(
    checks: Iterable[tuple[datetime, str, str]],
    *,
    deadline_s: float,
    notified_at: datetime | None = None,
    has_hoster: bool = True,
    rules: Rules = DEFAULT_RULES,
    initial: Timing | None = None,
    can_reopen: bool = True,
) -> Timing:
    """Recompute a notice's timing state from its checks `(checked_at, outcome, reason[, vantage])`
    in order (without a vantage: the default one, `local`, as `Check.vantage`)."""
    state = initial or Timing()
    for at, outcome, reason, *rest in sorted(checks, key=lambda c: c[0]):
        state = apply_check(
            state,
            at=at,
            outcome=outcome,
            reason=reason,
            deadline_s=deadline_s,
            notified_at=notified_at,
            has_hoster=has_hoster,
            rules=rules,
            can_reopen=can_reopen,
            vantage=rest[0] if rest else DEFAULT_VANTAGE,
        )
    return state
