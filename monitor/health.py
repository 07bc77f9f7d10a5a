"""The monitor's health, for analysts: is it keeping up, how busy is it, what is failing? (reads only)

Figures (all from the rows themselves, so they hold for any number of monitor processes):

- **due now**: notices whose `next_check_at` has passed and that no monitor holds (unleased, or a
  lease that expired: a monitor died); **oldest due**: how long the oldest of them has waited,
  counted from when its check was first due (`first_due_at` for an expired lease: its
  `next_check_at` is the lease's end, not when the check was due);
- **leases held**: notices a monitor is checking right now, and how long the oldest of them has
  waited since it was first due (a killed monitor's claims grow here until their lease runs out);
  **expired leases**: leases whose time ran out without being released (a killed monitor; they
  are due again and will be re-checked);
- **checks per minute** over the last minute, 10 minutes and hour;
- **lag**: `checked_at - due_at` of the scheduled checks of the last hour (median, 95th
  percentile, maximum) and the share within the tolerance `max(2 s, deadline/500)`;
- **outcomes** and **errors by kind** over the last hour; the **monitor processes** seen;
- **vantage points**: checks per vantage in the hour; a probe silent longer than `MONITOR_PROBE_STALE`
  is **stale** (monitor/dispatch.py gives it no checks until it speaks again).
- the latest **evidence digest** (the chain heads, RFC 3161-stamped when configured: monitor/evidence.py).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, F, Max, Min, Q, When
from django.db.models.functions import Coalesce

from compliance.models import Notice
from monitor import schedule
from monitor.models import Check, ProbeStatus

LAG_SAMPLE = 20_000  # the most recent scheduled checks of the hour that the lag figures use


@dataclass
class Health:
    now: datetime
    due_now: int = 0
    oldest_due_s: float | None = None
    leases_held: int = 0
    oldest_held_s: float | None = None  # the oldest lease held, from its check's first due time
    leases_expired: int = 0
    scheduled: int = 0  # notices with a next check planned
    checks_last_minute: int = 0
    checks_per_minute_10: float = 0.0
    checks_per_minute_60: float = 0.0
    lag_median_s: float | None = None
    lag_p95_s: float | None = None
    lag_max_s: float | None = None
    lag_within_tolerance: float | None = None  # share of scheduled checks within max(2 s, D/500)
    lag_sample: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[str, int]] = field(default_factory=list)
    workers: list[dict] = field(default_factory=list)
    # Per configured vantage point: name, kind, checks in the hour, and for a probe its last
    # heartbeat, whether it is stale (silent longer than MONITOR_PROBE_STALE) and results rejected.
    vantages: list[dict] = field(default_factory=list)
    # The latest digest of the evidence chains (monitor/evidence.py), or None before the first.
    evidence_digest: dict | None = None

    @property
    def outcome_rows(self) -> list[tuple[str, int]]:
        """(translated label, count) per outcome, in the order of Check.Outcome."""
        return [(label, self.outcomes[value]) for value, label in Check.Outcome.choices if value in self.outcomes]

    @property
    def is_keeping_up(self) -> bool:
        return self.lag_within_tolerance is None or self.lag_within_tolerance >= 0.95


def monitor_health(*, now: datetime) -> Health:
    h = Health(now=now)
    # The loop's own index (notice_due_check) serves these three counts.
    due = Notice.objects.filter(next_check_at__lte=now).exclude(status__in=("repeat", "unresolvable"))
    # A leased row's next_check_at is its lease's end; the claim kept the due time in first_due_at.
    first_due = Case(
        When(lease_token__isnull=True, then=F("next_check_at")),
        default=Coalesce(F("first_due_at"), F("next_check_at")),
    )
    agg = due.aggregate(
        n=Count("id"),
        expired=Count("id", filter=Q(lease_token__isnull=False)),
        oldest=Min(first_due),
    )
    h.due_now, h.leases_expired = agg["n"], agg["expired"]
    h.oldest_due_s = max(0.0, (now - agg["oldest"]).total_seconds()) if agg["oldest"] else None
    held = Notice.objects.filter(next_check_at__gt=now, lease_token__isnull=False).aggregate(
        n=Count("id"), oldest=Min(first_due)
    )
    h.leases_held = held["n"]
    h.oldest_held_s = max(0.0, (now - held["oldest"]).total_seconds()) if held["oldest"] else None
    h.scheduled = Notice.objects.filter(next_check_at__isnull=False).count()

    hour = Check.objects.filter(checked_at__gte=now - timedelta(hours=1), checked_at__lte=now)
    counts = hour.aggregate(
        m1=Count("id", filter=Q(checked_at__gte=now - timedelta(minutes=1))),
        m10=Count("id", filter=Q(checked_at__gte=now - timedelta(minutes=10))),
        m60=Count("id"),
    )
    h.checks_last_minute = counts["m1"]
    h.checks_per_minute_10 = counts["m10"] / 10
    h.checks_per_minute_60 = counts["m60"] / 60
    h.outcomes = dict(hour.order_by().values_list("outcome").annotate(n=Count("id")))
    h.errors = sorted(
        hour.exclude(error_kind="").order_by().values_list("error_kind").annotate(n=Count("id")),
        key=lambda kv: (-kv[1], kv[0]),
    )
    h.workers = list(
        hour.exclude(worker="")
        .order_by()
        .values("worker")
        .annotate(checks=Count("id"), last_at=Max("checked_at"))
        .order_by("-last_at")
    )

    h.vantages = _vantages(hour, now=now)

    sample = list(
        hour.filter(trigger=Check.Trigger.SCHEDULE, due_at__isnull=False)
        .order_by("-checked_at")
        .values_list("checked_at", "due_at", "notice__deadline_s")[:LAG_SAMPLE]
    )
    if sample:
        lags = sorted(max(0.0, (checked - due).total_seconds()) for checked, due, _d in sample)
        within = sum(1 for checked, due, d in sample if (checked - due).total_seconds() <= schedule.tolerance_s(d))
        h.lag_sample = len(lags)
        h.lag_median_s = statistics.median(lags)
        h.lag_p95_s = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
        h.lag_max_s = lags[-1]
        h.lag_within_tolerance = within / len(lags)
    h.evidence_digest = evidence_digest_summary()
    return h


def _vantages(hour, *, now: datetime) -> list[dict]:
    counts = dict(hour.order_by().values_list("vantage").annotate(n=Count("id")))
    statuses = {s.vantage: s for s in ProbeStatus.objects.all()}
    stale_after = timedelta(seconds=settings.MONITOR_PROBE_STALE)
    out = []
    for v in settings.MONITOR_VANTAGES:
        status = statuses.get(v.name)
        seen = status.last_seen_at if status else None
        out.append(
            {
                "name": v.name,
                "kind": v.kind,
                "checks": counts.get(v.name, 0),
                "last_seen_at": seen,
                "is_stale": v.is_probe and (seen is None or now - seen > stale_after),
                "rejected": status.rejected if status else 0,
            }
        )
    return out


def evidence_digest_summary() -> dict | None:
    from monitor.evidence import digest_summary

    return digest_summary()
