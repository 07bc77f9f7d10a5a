"""The verdict of a notice (`within`, `late`, `pending`, or none for a notice that is no
measurement), in its two forms side by side: `verdict` in Python for one notice, and
`verdict_expression` the same rule as a SQL CASE for reports over many. `is_measured` and
`unmeasured_condition` (with `measured_notices`) are the same pair for "does it count at all".

tests/compliance/test_verdicts.py keeps each pair equal on every combination of the inputs that
decide it: change one form, change the other. Changing the meaning of either requires bumping
`settings.METHODOLOGY_VERSION` (docs/methodology.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Case, CharField, F, Q, QuerySet, Value, When

from compliance.rules import REPEAT, SERVER_GONE, UNRESOLVABLE, WITHDRAWN

if TYPE_CHECKING:
    from compliance.models import Notice

WITHIN = "within"
LATE = "late"
PENDING = "pending"
VERDICTS = (WITHIN, LATE, PENDING)


def is_measured(*, status: str, hoster_id: int | None) -> bool:
    """Counts in compliance figures (`measured_notices` is the SQL twin, which also asks for
    `notified_at`): not a repeat, not withdrawn; `unresolvable` only ever without a hoster, and a
    notice with a hoster counts whatever its status (a stale `unresolvable` one included)."""
    if status in (REPEAT, WITHDRAWN):
        return False
    return not (status == UNRESOLVABLE and hoster_id is None)


def unmeasured_condition() -> Q:
    """`not is_measured(...)` in SQL: a repeat, a withdrawn notice, or an unresolvable one without a
    hoster. A notice with a hoster always counts for it (docs/methodology.md: which notices count)."""
    return Q(status__in=(REPEAT, WITHDRAWN)) | Q(status=UNRESOLVABLE, hoster_id__isnull=True)


def measured_notices(qs: QuerySet[Notice]) -> QuerySet[Notice]:
    """Notices that count in compliance figures: notified, and measured (`is_measured`)."""
    return qs.filter(notified_at__isnull=False).exclude(unmeasured_condition())


def verdict(
    *,
    status: str,
    notified_at: datetime | None,
    deadline_at: datetime | None,
    takedown_at: datetime | None,
    settles_at: datetime | None = None,
    offline_since: datetime | None = None,
    unreachable_since: datetime | None = None,
    is_displaced: bool = False,
    removal_mechanism: str = "",
    hoster_id: int | None = 0,
    now: datetime,
) -> str | None:
    """`within`, `late` or `pending` for a notice; None for a notice that is not a measurement.

    1. Not a measurement (repeat, withdrawn, unresolvable without a hoster): no verdict.
    2. A server-gone takedown waits (pending) until it settles at `settles_at` (2 D after
       notification): content seen again before then annuls it (`rules.apply_check`).
    3. A confirmed takedown decides: within when `takedown_at <= deadline_at`, otherwise late.
       A displacement (the URL now served from another hoster, mechanism `moved`) is not
       compliance: by the deadline it has no verdict (out of the rate, counted as displaced),
       after it the content stayed on this hoster past the deadline: late.
    4. Not notified yet, or the deadline has not passed: pending.
    5. Past the deadline without a confirmed takedown: late, unless an offline (or unreachable)
       streak that began at or before the deadline is still waiting for confirmation, and at the
       latest until `settles_at`; then the verdict waits too (pending), because confirmation may
       date the takedown before the deadline.
    `verdict_expression` below is this function in SQL.
    """
    if not is_measured(status=status, hoster_id=hoster_id):
        return None
    if takedown_at is not None and deadline_at is not None:
        if removal_mechanism == SERVER_GONE and settles_at is not None and now < settles_at:
            return PENDING
        if takedown_at <= deadline_at:
            return None if is_displaced else WITHIN
        return LATE
    if notified_at is None or deadline_at is None or now <= deadline_at:
        return PENDING
    if settles_at is None or now < settles_at:
        for streak_start in (offline_since, unreachable_since):
            if streak_start is not None and streak_start <= deadline_at:
                return PENDING
    return LATE


def compliance_rate(within: int, late: int) -> float | None:
    """`within / (within + late)`; pending notices are excluded; None when nothing is decided."""
    decided = within + late
    return within / decided if decided else None


def verdict_expression(now: datetime) -> Case:
    """`verdict` as a SQL CASE over a notice's columns; the steps are those of `verdict`."""
    decided = Q(takedown_at__isnull=False, deadline_at__isnull=False)
    return Case(
        When(unmeasured_condition(), then=Value(None)),
        # A server-gone takedown waits until it settles.
        When(decided, removal_mechanism=SERVER_GONE, settles_at__gt=now, then=Value(PENDING)),
        # A displacement by the deadline is not compliance: no verdict (see the rule).
        When(decided, takedown_at__lte=F("deadline_at"), is_displaced=True, then=Value(None)),
        When(decided, takedown_at__lte=F("deadline_at"), then=Value(WITHIN)),
        When(decided, then=Value(LATE)),
        When(Q(notified_at__isnull=True) | Q(deadline_at__isnull=True) | Q(deadline_at__gte=now), then=Value(PENDING)),
        # An offline or unreachable streak that began by the deadline waits for its confirmation,
        # at the latest until the notice settles.
        When(
            Q(settles_at__isnull=True) | Q(settles_at__gt=now),
            offline_since__lte=F("deadline_at"),
            then=Value(PENDING),
        ),
        When(
            Q(settles_at__isnull=True) | Q(settles_at__gt=now),
            unreachable_since__lte=F("deadline_at"),
            then=Value(PENDING),
        ),
        default=Value(LATE),
        output_field=CharField(),
    )


def annotate_verdict(qs: QuerySet[Notice], now: datetime) -> QuerySet[Notice]:
    """Adds `verdict_sql` (within / late / pending, NULL for unmeasured notices)."""
    return qs.annotate(verdict_sql=verdict_expression(now))
