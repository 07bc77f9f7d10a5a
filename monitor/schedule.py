"""When is a notice's next check due? (pure: plain values in, a datetime or None out)

Everything is measured in multiples of the notice's deadline D (`deadline_s`) from `notified_at`,
so a short deadline compresses the whole schedule (COMPLIANCE_DEADLINE=60 turns a day into a
minute). For D = 24 h the figures in brackets apply.

1. **At intake**: intake sets `next_check_at = now`, so the first check runs at once.
2. **Dense early** (removal times are roughly lognormal: most come early), on a fixed grid from
   `notified_at`: every D/480 [3 min] for the first D/24 [1 h], every D/192 [7.5 min] until D/4
   [6 h], every D/96 [15 min] until the deadline. The spacing never exceeds D/96 before the
   deadline.
3. **The verdict check** at D - D/500 [2 min 53 s before the deadline]: online there means late.
4. **Backing off** after the deadline while the content is still there: the spacing grows with the
   time past the deadline, (t - D)/4, from D/96 up to D/8 [3 h], until 30 D.
5. **Confirmation**: while a removed observation awaits confirmation, the next check is at most
   D/96 away (so confirmation never waits for a backed-off check), never sooner than the grid.
6. **After a takedown**: slow re-checks for reappearance, spaced half the time since the takedown,
   between D/4 and 2 D [6 h .. 2 days], until 30 D. A provisional (server-gone) takedown is checked
   on the grid of an open notice until it settles (2 D): content seen again annuls it, so the
   monitor looks as often as before the outage.
7. **Watching** open notices after 30 D: every D [daily] for as long as the content is online,
   until it is removed or an analyst withdraws the notice.
8. **Stop** at 30 D after notification for removed notices (`None`: `next_check_at` NULL), and at
   once for notices that are no measurement (repeat, withdrawn, unresolvable).

A notice not yet notified (`notified_at` empty while its e-mail waits) is observed every D/96
until it is; the grid then anchors at the notification.

The grid is anchored at `notified_at`, not at the last check, so a monitor that fell behind
skips the points it missed instead of piling them up. No two checks are scheduled closer than
`min_interval_s` (0.5 s), which only matters for deadlines of a few minutes or less.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from compliance.rules import OPEN_STATUSES, REMOVED

# (start, end, step) in fractions of D: the grid before the deadline.
DENSE_GRID = ((0.0, 1 / 24, 1 / 480), (1 / 24, 1 / 4, 1 / 192), (1 / 4, 1.0, 1 / 96))
VERDICT_CHECK = 1 - 1 / 500
BACKOFF_MIN, BACKOFF_MAX = 1 / 96, 1 / 8
CONFIRM_MAX = 1 / 96
REAPPEARANCE_MIN, REAPPEARANCE_MAX = 1 / 4, 2.0
STOP_AFTER = 30.0
WATCH_EVERY = 1.0  # open notices after STOP_AFTER: one check per deadline
MIN_INTERVAL_S = 0.5


def next_check_at(
    *,
    now: datetime,
    notified_at: datetime | None,
    deadline_s: int | float,
    status: str,
    takedown_at: datetime | None = None,
    offline_streak: int = 0,
    is_provisional: bool = False,
    min_interval_s: float = MIN_INTERVAL_S,
) -> datetime | None:
    """The next due time after a check at `now` left the notice in the given state, or None to stop."""
    if status not in OPEN_STATUSES and status != REMOVED:
        return None
    d = float(deadline_s)
    floor = now + timedelta(seconds=min_interval_s)
    if notified_at is None:
        return max(now + timedelta(seconds=d * BACKOFF_MIN), floor)
    stop_at = notified_at + timedelta(seconds=d * STOP_AFTER)
    if now >= stop_at:
        if status in OPEN_STATUSES:
            # Still online after the window: watched at a slow cadence, never forgotten.
            spacing = CONFIRM_MAX if offline_streak > 0 else WATCH_EVERY
            return max(now + timedelta(seconds=d * spacing), floor)
        return None
    x = (now - notified_at).total_seconds() / d  # elapsed, in deadlines

    if status == REMOVED and not is_provisional:
        since_takedown = (now - takedown_at).total_seconds() / d if takedown_at else 0.0
        spacing = min(max(since_takedown / 2, REAPPEARANCE_MIN), REAPPEARANCE_MAX)
        return max(min(now + timedelta(seconds=spacing * d), stop_at), floor)

    nxt = next_grid_point(x)
    due = notified_at + timedelta(seconds=nxt * d)
    if offline_streak > 0:
        due = min(due, now + timedelta(seconds=CONFIRM_MAX * d))
    return max(min(due, stop_at), floor)  # from 30 D on, open notices are watched (above)


def next_grid_point(x: float) -> float:
    """The first schedule point strictly after `x` (both in deadlines since notification)."""
    eps = 1e-9
    if x < 0:
        return 0.0  # notified in the future (clock skew): check at the notification
    if x >= 1.0 - eps:
        return _backoff_after(max(x, 1.0))
    candidates = [VERDICT_CHECK, 1.0]
    for start, end, step in DENSE_GRID:
        if x < end - eps:
            k = math.floor((x - start) / step + eps) + 1
            candidates.append(min(start + k * step, end))
            break
    return min(c for c in candidates if c > x + eps)


def _backoff_after(x: float) -> float:
    return x + min(max((x - 1.0) / 4, BACKOFF_MIN), BACKOFF_MAX)


def tolerance_s(deadline_s: int | float) -> float:
    """How late a check may run while the monitor keeps up: max(2 s, D/500) (docs/monitor.md)."""
    return max(2.0, float(deadline_s) / 500)
