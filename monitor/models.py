"""The monitor's own state: placeholder hashes for classification, the RDAP work queue, probe statuses.

The evidence the monitor writes (checks, attributions, RDAP records) belongs to the domain:
compliance/models.py.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from compliance.models import Hoster, sha256_validator


class PlaceholderHash(models.Model):
    """A body an analyst recognised as a placeholder ("this file was removed"), for one hoster or all.

    A 2xx answer whose body has this SHA-256 counts as removed (monitor/classification.py). The hash is of
    the bytes as served; analysts copy it from a check (`Check.body_sha256`), never from content.
    """

    sha256 = models.CharField(verbose_name=_("SHA-256"), max_length=64, validators=[sha256_validator])
    hoster = models.ForeignKey(
        Hoster,
        verbose_name=_("hoster"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="placeholder_hashes",
        help_text=_("empty: a placeholder for every hoster"),
    )
    description = models.CharField(verbose_name=_("description"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(verbose_name=_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("placeholder hash")
        verbose_name_plural = _("placeholder hashes")
        ordering = ["hoster__name", "sha256"]
        constraints = [
            models.UniqueConstraint(fields=["sha256", "hoster"], name="placeholder_unique_per_hoster"),
            models.UniqueConstraint(
                fields=["sha256"], condition=models.Q(hoster__isnull=True), name="placeholder_unique_global"
            ),
        ]

    def __str__(self) -> str:
        return _("placeholder %(sha256)s… (%(hoster)s)") % {
            "sha256": self.sha256[:12],
            "hoster": self.hoster or _("all hosters"),
        }

    def save(self, *args, **kwargs):
        self.sha256 = self.sha256.strip().lower()
        super().save(*args, **kwargs)


class RdapQueue(models.Model):
    """Addresses waiting for an RDAP lookup (work, not evidence: a row goes when it is done)."""

    ip = models.GenericIPAddressField(verbose_name=_("IP address"), unique=True)
    registry = models.CharField(verbose_name=_("registry"), max_length=20, blank=True)
    next_attempt_at = models.DateTimeField(verbose_name=_("next attempt"))
    attempts = models.PositiveIntegerField(verbose_name=_("attempts"), default=0)
    last_error = models.TextField(verbose_name=_("last error"), blank=True)
    created_at = models.DateTimeField(verbose_name=_("created"))

    class Meta:
        verbose_name = _("RDAP queue entry")
        verbose_name_plural = _("RDAP queue")
        ordering = ["next_attempt_at", "id"]
        # runmonitor's rdap drain: which addresses are due now.
        indexes = [models.Index(fields=["next_attempt_at"], name="rdap_queue_due")]

    def __str__(self) -> str:
        return _("RDAP queue: %(ip)s") % {"ip": self.ip}


class ProbeStatus(models.Model):
    """What the monitor last heard from the probe of a remote vantage (monitor/probe_results.py).

    Not evidence: one row per vantage, overwritten at each heartbeat. A probe silent for longer than
    `MONITOR_PROBE_STALE` is shown stale on /monitor/health/ and gets no checks until it speaks again.
    """

    vantage = models.CharField(verbose_name=_("vantage point"), max_length=50, unique=True)
    probe = models.CharField(verbose_name=_("probe process"), max_length=100, blank=True)
    last_seen_at = models.DateTimeField(verbose_name=_("last heard"))
    in_flight = models.PositiveIntegerField(verbose_name=_("checks in flight"), default=0)
    results_at = models.DateTimeField(verbose_name=_("last results"), null=True, blank=True)
    rejected = models.PositiveIntegerField(
        verbose_name=_("rejected results"), default=0, help_text=_("results for checks it was not given")
    )

    class Meta:
        verbose_name = _("probe status")
        verbose_name_plural = _("probe statuses")

    def __str__(self) -> str:
        return self.vantage
