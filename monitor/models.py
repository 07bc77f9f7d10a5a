"""Evidence: checks and attributions. Both are append-only: a measurement is never rewritten.

Append-only is enforced in the ORM (compliance.models.AppendOnlyModel: `save()` of an existing row,
`delete()`, and queryset `update()`/`delete()` raise `AppendOnlyError`), in the database
(compliance/triggers.py) and made evident by per-notice hash chains (compliance/evidence.py);
notices with evidence cannot be deleted (PROTECT).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from compliance.evidence import Chain
from compliance.models import (  # noqa: F401  (AppendOnlyError, AppendOnlyQuerySet: re-exported)
    AppendOnlyError,
    AppendOnlyModel,
    AppendOnlyQuerySet,
    Hoster,
    Notice,
    local_datetime,
    sha256_validator,
)


class Check(AppendOnlyModel):
    """One observation of a notice's URL. Never the body: only its SHA-256 and length."""

    class Outcome(models.TextChoices):
        """What one check saw (monitor/outcomes.py); compliance/rules.py `evidence` reads it."""

        ONLINE = "online", _("online")
        REMOVED = "removed", _("removed")  # evidence of absence
        # A failure at the network level before any response: may add up to "server gone".
        TRANSIENT = "transient", _("unreachable")
        REFUSED = "refused", _("refused destination")  # the checker would not connect (non-public address)
        # An answer that is neither the content nor its absence (403, 429, 5xx, a stalled body): no
        # evidence either way. Before methodology 2.0 these were recorded as `transient`.
        NO_EVIDENCE = "no_evidence", _("no evidence")

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", _("schedule")
        HOSTER_CLAIM = "hoster_claim", _("hoster reported removal")
        ANALYST = "analyst", _("analyst")

    # No index of its own: check_notice_time (notice, checked_at) serves every lookup by notice, and
    # each index more is one more write per check.
    notice = models.ForeignKey(
        Notice, verbose_name=_("notice"), on_delete=models.PROTECT, related_name="checks", db_index=False
    )
    checked_at = models.DateTimeField(verbose_name=_("checked"), help_text=_("when the request started"))
    due_at = models.DateTimeField(
        verbose_name=_("due"), null=True, blank=True, help_text=_("when the schedule wanted it")
    )
    duration_ms = models.PositiveIntegerField(verbose_name=_("duration (ms)"), default=0)
    trigger = models.CharField(
        verbose_name=_("trigger"), max_length=20, choices=Trigger.choices, default=Trigger.SCHEDULE
    )
    resolved_ip = models.GenericIPAddressField(verbose_name=_("resolved IP address"), null=True, blank=True)
    outcome = models.CharField(verbose_name=_("outcome"), max_length=20, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField(verbose_name=_("HTTP status"), null=True, blank=True)
    error_kind = models.CharField(verbose_name=_("error"), max_length=40, blank=True)
    reason = models.CharField(
        verbose_name=_("reason"), max_length=40, blank=True, help_text=_("why the outcome was classified so")
    )
    body_sha256 = models.CharField(
        verbose_name=_("body SHA-256"), max_length=64, blank=True, validators=[sha256_validator]
    )
    byte_count = models.PositiveBigIntegerField(verbose_name=_("bytes"), default=0)
    is_truncated = models.BooleanField(
        verbose_name=_("truncated"), default=False, help_text=_("the body passed the byte cap")
    )
    redirect_count = models.PositiveSmallIntegerField(verbose_name=_("redirects"), default=0)
    final_url = models.CharField(
        verbose_name=_("final URL"), max_length=2048, blank=True, help_text=_("after redirects; empty if none")
    )
    worker = models.CharField(
        verbose_name=_("monitor process"), max_length=100, blank=True, help_text=_("the monitor process that made it")
    )
    vantage = models.CharField(
        verbose_name=_("vantage point"),
        max_length=50,
        default="local",
        db_default="local",  # bulk writers (COPY, the demo history) that name no vantage
        help_text=_("the named place (source address, resolvers, network) the check came from"),
    )
    chain_hash = models.CharField(
        verbose_name=_("chain hash"),
        max_length=64,
        blank=True,
        help_text=_("SHA-256 of the notice's previous check's hash and this check (compliance/evidence.py)"),
    )

    # One chain per notice, head in Notice.check_chain_head; every field above is covered.
    evidence_chain = Chain("checks", group="notice_id", head_field="check_chain_head")

    class Meta:
        verbose_name = _("check")
        verbose_name_plural = _("checks")
        ordering = ["notice", "checked_at", "id"]
        indexes = [
            models.Index(fields=["notice", "checked_at"], name="check_notice_time"),
            # Monitor health: checks per minute and lag over the last hour.
            models.Index(fields=["checked_at"], name="check_time"),
        ]

    def __str__(self) -> str:
        return _("check %(id)s of notice %(notice)s: %(outcome)s") % {
            "id": self.pk,
            "notice": self.notice_id,
            "outcome": self.get_outcome_display(),
        }


class Attribution(AppendOnlyModel):
    """Who hosted a notice's URL at a moment, and the evidence for it. Re-attribution adds a row."""

    class Method(models.TextChoices):
        DNS = "dns", _("DNS, origin ASN and registry")
        HOTLINE = "hotline", _("given by the hotline")
        ANALYST = "analyst", _("analyst override")

    notice = models.ForeignKey(Notice, verbose_name=_("notice"), on_delete=models.PROTECT, related_name="attributions")
    created_at = models.DateTimeField(verbose_name=_("created"))
    method = models.CharField(verbose_name=_("method"), max_length=20, choices=Method.choices)
    hostname = models.CharField(verbose_name=_("host name"), max_length=253, blank=True)
    cname_chain = models.JSONField(verbose_name=_("CNAME chain"), default=list, blank=True)
    resolved_ips = models.JSONField(verbose_name=_("resolved IP addresses"), default=list, blank=True)
    chosen_ip = models.GenericIPAddressField(verbose_name=_("chosen IP address"), null=True, blank=True)
    asn = models.PositiveBigIntegerField(verbose_name=_("ASN"), null=True, blank=True)
    asns = models.JSONField(
        verbose_name=_("ASNs"), default=list, blank=True, help_text=_("all origin ASNs announced for the prefix")
    )
    routed_prefix = models.CharField(verbose_name=_("routed prefix"), max_length=50, blank=True)
    as_name = models.CharField(verbose_name=_("AS name"), max_length=200, blank=True)
    as_country = models.CharField(verbose_name=_("AS country"), max_length=2, blank=True)
    registry = models.CharField(verbose_name=_("registry"), max_length=20, blank=True)
    rdap = models.JSONField(
        verbose_name=_("RDAP"),
        default=dict,
        blank=True,
        help_text=_("registered network: cidr, name, handle, parent_handle, abuse_emails"),
    )
    candidates = models.JSONField(
        verbose_name=_("candidates"), default=list, blank=True, help_text=_("per resolved IP: ASN, prefix, hoster")
    )
    hoster = models.ForeignKey(
        Hoster, verbose_name=_("hoster"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    cdn = models.ForeignKey(
        Hoster, verbose_name=_("CDN"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_ambiguous = models.BooleanField(verbose_name=_("ambiguous"), default=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("decided by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    reason = models.TextField(verbose_name=_("reason"), blank=True)
    chain_hash = models.CharField(
        verbose_name=_("chain hash"),
        max_length=64,
        blank=True,
        help_text=_("SHA-256 of the notice's previous attribution's hash and this one (compliance/evidence.py)"),
    )

    evidence_chain = Chain("attributions", group="notice_id", head_field="attribution_chain_head")

    class Meta:
        verbose_name = _("attribution")
        verbose_name_plural = _("attributions")
        ordering = ["notice", "created_at", "id"]
        indexes = [models.Index(fields=["notice", "created_at"], name="attribution_notice_time")]

    def __str__(self) -> str:
        return _("attribution %(id)s of notice %(notice)s") % {"id": self.pk, "notice": self.notice_id}


class PlaceholderHash(models.Model):
    """A body an analyst recognised as a placeholder ("this file was removed"), for one hoster or all.

    A 2xx answer whose body has this SHA-256 counts as removed (monitor/outcomes.py). The hash is of
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


# --- RDAP (issue 3: monitor/rdap.py, monitor/attribute.py's drain_rdap) --------------------------


class RdapRecord(AppendOnlyModel):
    """What RDAP said about an address's registered network at a moment: evidence, append-only.

    An attribution made before the address's RDAP was known shows the first record looked up
    after it (selectors in monitor/attribute.py); a later attribution carries it inline.
    """

    class Status(models.TextChoices):
        FOUND = "found", _("registered network found")
        NOT_APPLICABLE = "not_applicable", _("not a registered public address")

    ip = models.GenericIPAddressField(verbose_name=_("IP address"))
    looked_up_at = models.DateTimeField(verbose_name=_("looked up"))
    registry = models.CharField(verbose_name=_("registry"), max_length=20, blank=True)
    status = models.CharField(verbose_name=_("status"), max_length=20, choices=Status.choices)
    network = models.JSONField(
        verbose_name=_("network"),
        default=dict,
        blank=True,
        help_text=_("cidr, name, handle, parent_handle, country, abuse_emails, abuse_source"),
    )
    url = models.CharField(verbose_name=_("URL"), max_length=500, blank=True, help_text=_("the RDAP request made"))

    class Meta:
        verbose_name = _("RDAP record")
        verbose_name_plural = _("RDAP records")
        ordering = ["ip", "looked_up_at", "id"]
        indexes = [models.Index(fields=["ip", "looked_up_at"], name="rdap_record_ip_time")]

    def __str__(self) -> str:
        return _("RDAP of %(ip)s at %(at)s") % {"ip": self.ip, "at": local_datetime(self.looked_up_at)}


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
    """What the monitor last heard from the probe of a remote vantage (monitor/probes.py).

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
