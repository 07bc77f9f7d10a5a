"""Rollups: the figures of a period as computed at a moment, so that pages need not scan every notice.

A `RollupCell` holds one local day's partial figures per hoster, regime and deadline; a `Rollup`
is the merge of a period's cells (`365d`, `2026`, `2026-03`, ..., for all regimes or one) as the
pages show it. The monitor's rollup drain recomputes the cells of the days that changed notices
touch and then the periods holding those days (reports/rollups.py). Pages show `computed_at`.
Nothing here is evidence: it can always be recomputed.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from compliance.models import Hoster, local_datetime


class Rollup(models.Model):
    key = models.CharField(
        verbose_name=_("period key"), max_length=40, help_text=_("period key, e.g. 365d, 2026, 2026-03")
    )
    regime = models.CharField(
        verbose_name=_("regime"), max_length=20, blank=True, help_text=_("empty: all regimes together")
    )
    start = models.DateTimeField(verbose_name=_("start"), null=True, blank=True)
    end = models.DateTimeField(verbose_name=_("end"), null=True, blank=True)
    computed_at = models.DateTimeField(verbose_name=_("computed"))
    compute_ms = models.PositiveIntegerField(verbose_name=_("computation time (ms)"), default=0)
    # Set when cells of its days were recomputed after it: the drain merges it again.
    is_stale = models.BooleanField(verbose_name=_("stale"), default=False)
    methodology_version = models.CharField(verbose_name=_("methodology version"), max_length=20)
    # reports.scorecards.HosterMetrics as JSON: all notices, and the unattributed ones.
    national = models.JSONField(verbose_name=_("national figures"))
    unattributed = models.JSONField(verbose_name=_("figures of unattributed notices"), null=True, blank=True)
    national_charts = models.JSONField(verbose_name=_("national charts"), default=dict)

    class Meta:
        verbose_name = _("rollup")
        verbose_name_plural = _("rollups")
        ordering = ["key", "regime"]
        constraints = [models.UniqueConstraint(fields=["key", "regime"], name="rollup_unique_key_regime")]

    def __str__(self) -> str:
        return _("rollup %(key)s at %(at)s") % {"key": self.key, "at": local_datetime(self.computed_at)}


class RollupRow(models.Model):
    rollup = models.ForeignKey(Rollup, verbose_name=_("rollup"), on_delete=models.CASCADE, related_name="rows")
    hoster = models.ForeignKey(Hoster, verbose_name=_("hoster"), on_delete=models.CASCADE, related_name="+")
    metrics = models.JSONField(verbose_name=_("figures"))
    charts = models.JSONField(
        verbose_name=_("charts"), default=dict, help_text=_("survival curve points and takedown-time histogram")
    )

    class Meta:
        verbose_name = _("rollup row")
        verbose_name_plural = _("rollup rows")
        constraints = [models.UniqueConstraint(fields=["rollup", "hoster"], name="rollup_row_unique_hoster")]

    def __str__(self) -> str:
        return f"{self.rollup_id}/{self.hoster_id}"


def _count(label) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(verbose_name=label, default=0)


class RollupCell(models.Model):
    """One day's partial figures: the notices notified on one local day (Europe/Amsterdam), of one
    hoster (NULL: unattributed), one regime and one deadline.

    Counts and grouped observations are additive, so any period of whole days is the sum of its
    cells (reports/rollups.py): the drain recomputes only the days that changed notices touch.
    Nothing here is evidence: it can always be recomputed from the notices."""

    day = models.DateField(verbose_name=_("day"))
    # A month's cell (`day` its first day): the sum of that month's day cells, kept with them so
    # that a year is merged from 12 cells per hoster rather than 365 (reports/rollups.py).
    is_month = models.BooleanField(verbose_name=_("whole month"), default=False)
    hoster = models.ForeignKey(
        Hoster, verbose_name=_("hoster"), null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    regime = models.CharField(verbose_name=_("regime"), max_length=20)
    deadline_s = models.PositiveIntegerField(verbose_name=_("deadline (seconds)"))
    computed_at = models.DateTimeField(verbose_name=_("computed"))
    methodology_version = models.CharField(verbose_name=_("methodology version"), max_length=20)
    # The counts of reports.scorecards.CELL_COUNTS, one column each (summed in SQL per period).
    notices = _count(_("notices"))
    removed = _count(_("removed"))
    within = _count(_("within"))
    late = _count(_("late"))
    pending = _count(_("pending"))
    open = _count(_("open"))
    open_past_deadline = _count(_("open past the deadline"))
    taken_down = _count(_("taken down"))
    reappeared = _count(_("reappeared"))
    reappearances = _count(_("reappearances"))
    displaced = _count(_("displaced"))
    served_selectively = _count(_("served selectively"))
    server_gone_provisional = _count(_("provisional server-gone takedowns"))
    mechanism_file_gone = _count(_("file gone"))
    mechanism_blocked = _count(_("blocked"))
    mechanism_replaced = _count(_("replaced"))
    mechanism_domain_gone = _count(_("domain gone"))
    mechanism_server_gone = _count(_("server gone"))
    mechanism_moved = _count(_("moved"))
    # Notified notices outside every rate, counted apart (docs/terms.md): repeats, withdrawn, unresolvable.
    repeats = _count(_("repeats"))
    withdrawn = _count(_("withdrawn"))
    unresolvable = _count(_("unresolvable"))
    oldest_open_notified_at = models.DateTimeField(verbose_name=_("oldest open notice"), null=True, blank=True)
    # When a pending verdict of the cell next changes without any check (a deadline passes, a
    # provisional server-gone takedown settles): the drain recomputes the day then.
    next_change_at = models.DateTimeField(verbose_name=_("next change without a check"), null=True, blank=True)
    # survival.Grouped as little-endian int64 triples (milliseconds, takedowns, observations).
    observations = models.BinaryField(verbose_name=_("grouped observations"), default=b"")

    class Meta:
        verbose_name = _("rollup cell")
        verbose_name_plural = _("rollup cells")
        indexes = [
            models.Index(fields=["is_month", "day"], name="rollup_cell_day"),
            # The rollup drain: days whose verdicts change with time alone.
            models.Index(fields=["next_change_at"], name="rollup_cell_next_change"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.hoster_id} {self.regime} {self.deadline_s}"


class RollupState(models.Model):
    """One row: how far the rollup drain has looked at changed notices (reports/rollups.py)."""

    scanned_until = models.DateTimeField(verbose_name=_("changes scanned until"))
    methodology_version = models.CharField(verbose_name=_("methodology version"), max_length=20)

    class Meta:
        verbose_name = _("rollup state")
        verbose_name_plural = _("rollup states")

    def __str__(self) -> str:
        return f"{self.scanned_until}"
