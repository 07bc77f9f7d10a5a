"""Rollups: the figures of a period as computed at a moment, so that pages need not scan every notice.

A rollup is a cache of `reports.scorecards.period_metrics` for one period key (`365d`, `2026`,
`2026-03`, ...). It is recomputed when older than SCORECARD_ROLLUP_MAX_AGE (periods that ended more
than 31 days ago: SCORECARD_SETTLED_MAX_AGE) by the monitor's rollup drain, or by the page that
finds it stale. Pages show `computed_at`. Nothing here is evidence: it can always be recomputed.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from compliance.models import Hoster, local_datetime


class Rollup(models.Model):
    key = models.CharField(
        verbose_name=_("period key"), max_length=40, unique=True, help_text=_("period key, e.g. 365d, 2026, 2026-03")
    )
    start = models.DateTimeField(verbose_name=_("start"), null=True, blank=True)
    end = models.DateTimeField(verbose_name=_("end"), null=True, blank=True)
    computed_at = models.DateTimeField(verbose_name=_("computed"))
    compute_ms = models.PositiveIntegerField(verbose_name=_("computation time (ms)"), default=0)
    methodology_version = models.CharField(verbose_name=_("methodology version"), max_length=20)
    # reports.scorecards.HosterMetrics as JSON: all notices, and the unattributed ones.
    national = models.JSONField(verbose_name=_("national figures"))
    unattributed = models.JSONField(verbose_name=_("figures of unattributed notices"), null=True, blank=True)
    national_charts = models.JSONField(verbose_name=_("national charts"), default=dict)

    class Meta:
        verbose_name = _("rollup")
        verbose_name_plural = _("rollups")
        ordering = ["key"]

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
