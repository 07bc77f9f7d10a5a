"""The domain: hosters and their networks, notices, and who may see what.

Terms follow docs/terms.md: a *notice* is one reported URL sent to a hoster at `notified_at`; its
*deadline* is `notified_at + deadline_s`; a *takedown* is confirmed absence, timed by `takedown_at`
(first observation of the confirming offline streak) with `last_online_at` (the last observation
that still saw it) giving the measurement's precision.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from compliance import rules
from compliance.evidence import Chain


def local_datetime(moment: datetime) -> str:
    """A moment as people read it in names (admin titles, choices): the language's short format, in
    Europe/Amsterdam."""
    return date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")


sha256_validator = RegexValidator(r"^[0-9a-f]{64}$", _("a SHA-256 is 64 lower-case hexadecimal characters"))


# --- Evidence is append-only -----------------------------------------------------------------------
# Checks, attributions, RDAP records, delivery and audit events (all below) are
# written once and never changed or deleted. Three layers keep them so:
# 1. the ORM: `save()` of an existing row, `delete()`, and queryset `update()`/`delete()` raise
#    AppendOnlyError (here);
# 2. the database: triggers refuse UPDATE and DELETE whoever sends them, raw SQL included
#    (compliance/triggers.py, installed by compliance/migrations/0011_evidence_chains.py and
#    monitor/migrations/0008_evidence_chains.py);
# 3. the hash chains (compliance/evidence.py): an owner who drops the triggers and edits a row is
#    found by `verify_evidence`.


class AppendOnlyError(ValueError):
    """Evidence rows are written once and never changed or deleted.

    A ValueError (as the audit trail's first guard raised), so callers that caught that still do."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only: no update")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only: no delete")

    # bulk_update goes through update(), so it is refused too.


class AppendOnlyModel(models.Model):
    """Insert-only rows. A model with `evidence_chain` (compliance/evidence.py) is hash-chained:
    `save()` of a new row locks its chain's head, links the row to it and moves the head on."""

    objects = AppendOnlyQuerySet.as_manager()
    evidence_chain = None  # a compliance.evidence.Chain for chained models

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only: no update")
        if self.evidence_chain is None:
            super().save(*args, **kwargs)
            return
        from compliance import evidence

        evidence.save_linked(self, lambda: super(AppendOnlyModel, self).save(*args, **kwargs))

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only: no delete")


class Hoster(models.Model):
    """A hosting provider (or a CDN, which is recognised but never blamed)."""

    class Kind(models.TextChoices):
        HOSTER = "hoster", _("hoster")
        CDN = "cdn", _("CDN")

    slug = models.SlugField(verbose_name=_("slug"), max_length=100, unique=True)
    name = models.CharField(verbose_name=_("name"), max_length=200)
    country = models.CharField(
        verbose_name=_("country"), max_length=2, blank=True, help_text=_("ISO 3166 alpha-2 code")
    )
    abuse_email = models.EmailField(verbose_name=_("abuse e-mail address"), blank=True)
    kind = models.CharField(verbose_name=_("kind"), max_length=10, choices=Kind.choices, default=Kind.HOSTER)
    # Curated hosters come from load_hosters; attribution creates unreviewed ones for unknown ASNs.
    is_reviewed = models.BooleanField(verbose_name=_("reviewed"), default=False)
    created_at = models.DateTimeField(verbose_name=_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(verbose_name=_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("hoster")
        verbose_name_plural = _("hosters")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_cdn(self) -> bool:
        return self.kind == self.Kind.CDN

    def ipv4_address_count(self) -> int:
        """Size measure: IPv4 addresses in the registered prefixes (overlaps counted once)."""
        nets = [ipaddress.ip_network(p.prefix) for p in self.prefixes.all()]
        return sum(n.num_addresses for n in ipaddress.collapse_addresses(n for n in nets if n.version == 4))


class HosterASN(models.Model):
    hoster = models.ForeignKey(Hoster, verbose_name=_("hoster"), on_delete=models.CASCADE, related_name="asns")
    asn = models.PositiveBigIntegerField(
        verbose_name=_("ASN"), unique=True, validators=[MinValueValidator(1), MaxValueValidator(4294967295)]
    )

    class Meta:
        verbose_name = _("hoster ASN")
        verbose_name_plural = _("hoster ASNs")
        ordering = ["asn"]

    def __str__(self) -> str:
        return f"AS{self.asn}"


class HosterPrefix(models.Model):
    hoster = models.ForeignKey(Hoster, verbose_name=_("hoster"), on_delete=models.CASCADE, related_name="prefixes")
    prefix = models.CharField(
        verbose_name=_("prefix"), max_length=50, unique=True, help_text=_("CIDR, e.g. 192.0.2.0/24")
    )
    version = models.PositiveSmallIntegerField(verbose_name=_("IP version"), choices=[(4, "IPv4"), (6, "IPv6")])
    length = models.PositiveSmallIntegerField(verbose_name=_("prefix length"))

    class Meta:
        verbose_name = _("hoster prefix")
        verbose_name_plural = _("hoster prefixes")
        ordering = ["prefix"]

    def __str__(self) -> str:
        return self.prefix

    def save(self, *args, **kwargs):
        net = ipaddress.ip_network(self.prefix)
        self.prefix, self.version, self.length = str(net), net.version, net.prefixlen
        super().save(*args, **kwargs)


# What the database itself accepts for a notice (CheckConstraints below), whoever writes: every
# value inside can be read back by Python on both databases and computed with (a deadline of a
# year, schedules). Intake's own ranges are narrower (compliance/services.py: notified_at not
# after now + 5 minutes).
NOTIFIED_AT_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
NOTIFIED_AT_CEILING = datetime(2200, 1, 1, tzinfo=UTC)
DEADLINE_S_MAX = 365 * 86400


class Notice(models.Model):
    """One reported URL sent to a hoster, and the state of its measurement."""

    class Status(models.TextChoices):
        # Open: the monitor is waiting for a takedown.
        PENDING = rules.PENDING, _("pending")  # not yet observed
        ONLINE = rules.ONLINE, _("online")  # last confirmed state: the content is there
        REAPPEARED = rules.REAPPEARED, _("reappeared")  # online again after a confirmed takedown
        # Closed.
        REMOVED = rules.REMOVED, _("removed")  # takedown confirmed
        UNRESOLVABLE = rules.UNRESOLVABLE, _("unresolvable")  # host name never resolved: no measurement
        REPEAT = rules.REPEAT, _("repeat")  # a repeat notice of an open notice: not a measurement of its own
        WITHDRAWN = rules.WITHDRAWN, _("withdrawn")  # closed by an analyst (sent in error): outside every rate

    OPEN_STATUSES = tuple(map(Status, rules.OPEN_STATUSES))

    class Regime(models.TextChoices):
        """Under which rule the hoster was asked to act: it decides the deadline's meaning. Figures
        are split by regime, and a survival curve never pools notices of different deadlines."""

        COVENANT = "covenant", _("covenant (24 h)")  # the sector's notice-and-takedown agreement
        ORDER = "order", _("removal order")  # an authority's order, with its own (short) deadline
        OTHER = "other", _("other")

    class AttributionState(models.TextChoices):
        PENDING = "pending", _("to attribute")
        DONE = "done", _("attributed")
        RETRY = "retry", _("retrying: no answer yet")
        UNRESOLVABLE = "unresolvable", _("unresolvable at notice time")

    class HosterSource(models.TextChoices):
        HOTLINE = "hotline", _("given by the hotline")
        ATTRIBUTION = "attribution", _("attributed from DNS and routing data")
        ANALYST = "analyst", _("set by an analyst")

    class RemovalMechanism(models.TextChoices):
        FILE_GONE = "file_gone", _("file gone")  # 404 / 410
        BLOCKED = "blocked", _("blocked")  # 451
        REPLACED = "replaced", _("replaced")  # other content or a placeholder, or redirected away
        DOMAIN_GONE = "domain_gone", _("domain gone")  # NXDOMAIN
        SERVER_GONE = "server_gone", _("server gone")  # unreachable over a long enough streak
        MOVED = "moved", _("moved")  # now served from another hoster: displacement, not compliance

    # The URL, normalised (compliance/urlnorm.py), and its parts.
    url = models.CharField(verbose_name=_("URL"), max_length=2048)
    scheme = models.CharField(verbose_name=_("scheme"), max_length=5)
    host = models.CharField(verbose_name=_("host name"), max_length=253)
    port = models.PositiveIntegerField(verbose_name=_("port"), null=True, blank=True)
    path = models.TextField(verbose_name=_("path"), default="/")
    query = models.TextField(verbose_name=_("query"), blank=True)

    source = models.CharField(verbose_name=_("source"), max_length=100, default="api")
    # NULL when the sender gave none: NULLs never collide in the unique (source, reference) index,
    # so one plain index serves both uniqueness and intake's duplicate lookups.
    reference = models.CharField(verbose_name=_("reference"), max_length=200, null=True, blank=True)  # noqa: DJ001
    content_sha256 = models.CharField(
        verbose_name=_("SHA-256 of the reported file"), max_length=64, blank=True, validators=[sha256_validator]
    )
    repeat_of = models.ForeignKey(
        "self", verbose_name=_("repeat of"), null=True, blank=True, on_delete=models.PROTECT, related_name="repeats"
    )

    received_at = models.DateTimeField(verbose_name=_("received"), help_text=_("when the product received the notice"))
    notified_at = models.DateTimeField(
        verbose_name=_("notified"),
        null=True,
        blank=True,
        help_text=_("when the hoster was notified; empty until the notice e-mail is accepted"),
    )
    deadline_s = models.PositiveIntegerField(verbose_name=_("deadline (seconds)"), validators=[MinValueValidator(1)])
    regime = models.CharField(verbose_name=_("regime"), max_length=20, choices=Regime.choices, default=Regime.COVENANT)
    # notified_at + deadline_s, and notified_at + 2 x deadline_s (when a provisional server-gone
    # takedown settles: compliance/rules.py), stored so that SQL can filter and aggregate on them.
    # Both are set by `Notice.timeline` and nowhere else.
    deadline_at = models.DateTimeField(verbose_name=_("deadline"), null=True, blank=True)
    settles_at = models.DateTimeField(
        verbose_name=_("settles"),
        null=True,
        blank=True,
        help_text=_("one deadline after the deadline: a provisional server-gone takedown is decided by then"),
    )

    status = models.CharField(verbose_name=_("status"), max_length=20, choices=Status.choices, default=Status.PENDING)

    # Attribution (evidence rows in monitor.Attribution).
    # Not indexed on its own: the (hoster, notified_at) index below serves lookups by hoster.
    hoster = models.ForeignKey(
        Hoster,
        verbose_name=_("hoster"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notices",
        db_index=False,
    )
    hoster_source = models.CharField(
        verbose_name=_("hoster given by"), max_length=20, choices=HosterSource.choices, blank=True
    )
    cdn = models.ForeignKey(
        Hoster,
        verbose_name=_("CDN"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="fronted_notices",
        db_index=False,
        help_text=_("the CDN in front of the origin: an intermediary, never the hoster"),
    )
    is_behind_cdn = models.BooleanField(verbose_name=_("behind a CDN"), default=False)
    is_ambiguous = models.BooleanField(verbose_name=_("ambiguous"), default=False)
    attribution_state = models.CharField(
        verbose_name=_("attribution"), max_length=20, choices=AttributionState.choices, default=AttributionState.PENDING
    )
    next_attribution_at = models.DateTimeField(verbose_name=_("next attribution attempt"), null=True, blank=True)

    # The measurement. Every value here can be recomputed from the notice's checks.
    next_check_at = models.DateTimeField(verbose_name=_("next check"), null=True, blank=True)
    lease_token = models.UUIDField(verbose_name=_("lease token"), null=True, blank=True)
    # When the check in hand first became due. The check drain's claim pushes `next_check_at` to the
    # end of its lease; this keeps the due time from before, and a claim that takes over an expired
    # lease (a killed monitor) keeps it too, so the check's `due_at` and the lag count from here.
    first_due_at = models.DateTimeField(verbose_name=_("first due"), null=True, blank=True)
    check_count = models.PositiveIntegerField(verbose_name=_("number of checks"), default=0)
    last_checked_at = models.DateTimeField(verbose_name=_("last checked"), null=True, blank=True)
    last_online_at = models.DateTimeField(verbose_name=_("last seen online"), null=True, blank=True)
    takedown_at = models.DateTimeField(verbose_name=_("takedown"), null=True, blank=True)
    # The current streak of removed observations not yet confirmed, and of transient failures.
    offline_since = models.DateTimeField(verbose_name=_("offline since"), null=True, blank=True)
    offline_streak = models.PositiveIntegerField(verbose_name=_("offline streak"), default=0)
    unreachable_since = models.DateTimeField(verbose_name=_("unreachable since"), null=True, blank=True)
    unreachable_streak = models.PositiveIntegerField(verbose_name=_("unreachable streak"), default=0)
    removal_mechanism = models.CharField(
        verbose_name=_("removal mechanism"), max_length=20, choices=RemovalMechanism.choices, blank=True
    )
    is_displaced = models.BooleanField(verbose_name=_("displaced"), default=False)
    reappearance_count = models.PositiveIntegerField(verbose_name=_("reappearances"), default=0)
    reappeared_at = models.DateTimeField(verbose_name=_("reappeared"), null=True, blank=True)
    # Server-gone takedowns annulled because the content came back before they settled (rules.py).
    annulled_takedowns = models.PositiveIntegerField(verbose_name=_("annulled server-gone takedowns"), default=0)
    # Vantage points (rules.py, methodology 2.1): the vantages behind the current offline and
    # unreachable streaks (comma-joined names), the last check's vantage and evidence class, and how
    # often the content was seen from one vantage right after another saw it absent or was refused it.
    offline_vantages = models.CharField(
        verbose_name=_("vantage points of the offline streak"), max_length=200, blank=True
    )
    unreachable_vantages = models.CharField(
        verbose_name=_("vantage points of the unreachable streak"), max_length=200, blank=True
    )
    last_vantage = models.CharField(verbose_name=_("vantage point of the last check"), max_length=50, blank=True)
    last_evidence = models.CharField(verbose_name=_("evidence of the last check"), max_length=20, blank=True)
    served_selectively_count = models.PositiveIntegerField(
        verbose_name=_("served selectively"),
        default=0,
        help_text=_("times the content was seen from one vantage point right after another saw it absent or blocked"),
    )
    served_selectively_at = models.DateTimeField(verbose_name=_("first served selectively"), null=True, blank=True)

    # The hoster's response (portal and hoster API).
    acknowledged_at = models.DateTimeField(verbose_name=_("acknowledged"), null=True, blank=True)
    reported_removed_at = models.DateTimeField(verbose_name=_("reported removed by the hoster"), null=True, blank=True)
    # An analyst's "check now" (admin): checked at once by the monitor, with the trigger `analyst`.
    check_requested_at = models.DateTimeField(verbose_name=_("check requested by an analyst"), null=True, blank=True)

    # An analyst's close (status `withdrawn`): the notice was sent in error. Audited; outside every rate.
    withdrawn_at = models.DateTimeField(verbose_name=_("withdrawn"), null=True, blank=True)
    withdrawn_reason = models.TextField(verbose_name=_("reason for withdrawal"), blank=True, max_length=2000)

    # The heads of the notice's evidence chains (compliance/evidence.py): the hash of its last check
    # and of its last attribution. Moved on by the writer that holds the notice's row lock.
    check_chain_head = models.CharField(verbose_name=_("check chain head"), max_length=64, blank=True, default="")
    attribution_chain_head = models.CharField(
        verbose_name=_("attribution chain head"), max_length=64, blank=True, default=""
    )

    created_at = models.DateTimeField(verbose_name=_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(verbose_name=_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "reference"], name="notice_unique_source_reference"),
            # One open measurement per URL: a later notice for it is a repeat (compliance.services).
            models.UniqueConstraint(
                fields=["url"],
                condition=Q(status__in=list(rules.OPEN_STATUSES)),
                name="notice_one_open_per_url",
            ),
            models.CheckConstraint(
                condition=Q(repeat_of__isnull=True) | Q(status=rules.REPEAT), name="notice_repeat_has_repeat_status"
            ),
            # Readable times only: a year-1 notified_at would be stored on PostgreSQL as a BC
            # timestamp no reader could load, and every page, report and drain over it would fail.
            models.CheckConstraint(
                condition=Q(notified_at__isnull=True)
                | Q(notified_at__gte=NOTIFIED_AT_FLOOR, notified_at__lt=NOTIFIED_AT_CEILING),
                name="notice_notified_at_range",
            ),
            models.CheckConstraint(
                condition=Q(deadline_s__gte=1, deadline_s__lte=DEADLINE_S_MAX), name="notice_deadline_s_range"
            ),
        ]
        indexes = [
            # runmonitor's check drain: which notices are due now.
            models.Index(fields=["next_check_at"], condition=Q(next_check_at__isnull=False), name="notice_due_check"),
            # runmonitor's attribution drain.
            models.Index(
                fields=["next_attribution_at"],
                condition=Q(attribution_state__in=["pending", "retry"]),
                name="notice_due_attribution",
            ),
            # Intake: repeat detection, the open notice for a URL.
            models.Index(fields=["url"], name="notice_url"),
            # Scorecards and the portal: one hoster's notices by time.
            models.Index(fields=["hoster", "notified_at"], name="notice_hoster_notified"),
            models.Index(fields=["notified_at"], name="notice_notified"),
            models.Index(fields=["status", "deadline_at"], name="notice_status_deadline"),
            # A hoster's open notices by deadline: the portal's list and the scorecard's overdue list
            # (many times faster for the biggest hoster with it: bench/README.md has the figures).
            models.Index(
                fields=["hoster", "deadline_at"],
                condition=Q(status__in=list(rules.OPEN_STATUSES)),
                name="notice_open_hoster_deadline",
            ),
            # runmonitor's notifications drain (NOTIFY_BY_EMAIL=on): notices waiting for their first e-mail.
            models.Index(fields=["id"], condition=Q(notified_at__isnull=True), name="notice_to_notify"),
            # runmonitor's rollup drain (reports/rollups.py): the notices changed since its last pass.
            models.Index(fields=["updated_at"], name="notice_updated"),
        ]

    def __str__(self) -> str:
        return _("notice %(id)s (%(host)s)") % {"id": self.pk, "host": self.host}

    # Written only by the evidence writers (compliance/evidence.py), under the notice's row lock.
    CHAIN_HEAD_FIELDS = ("check_chain_head", "attribution_chain_head")

    def save(self, *args, **kwargs):
        self.deadline_at, self.settles_at = self.timeline(self.notified_at, self.deadline_s)
        if not self._state.adding and kwargs.get("update_fields") is None:
            # A full save of an instance read earlier must not put back a chain head that a check
            # or attribution has moved on since (that would fork the chain): every field but those.
            # (Deferred fields stay out, as Django's own save leaves them.)
            deferred = self.get_deferred_fields()
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in self.CHAIN_HEAD_FIELDS and f.attname not in deferred
            ]
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "notified_at" in update_fields:
            kwargs["update_fields"] = {*update_fields, "deadline_at", "settles_at"}
        super().save(*args, **kwargs)

    @staticmethod
    def timeline(notified_at: datetime | None, deadline_s: int) -> tuple[datetime | None, datetime | None]:
        """`(deadline_at, settles_at)` of a notice notified at `notified_at`: the one home of both."""
        if notified_at is None:
            return None, None
        return notified_at + timedelta(seconds=deadline_s), rules.settles_at(notified_at, deadline_s)

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def ttt_s(self) -> float | None:
        """Time to takedown in seconds (docs/terms.md), rounded up to the millisecond: never below
        `takedown_at - notified_at`, which is an observation (rules.seconds_up)."""
        if self.takedown_at and self.notified_at:
            return rules.seconds_up(self.takedown_at - self.notified_at)
        return None

    @property
    def precision_s(self) -> float | None:
        """Width of the interval in which the removal happened: takedown_at - last_online_at, rounded
        up to the millisecond. Without any online observation the interval starts at notification."""
        if not self.takedown_at:
            return None
        start = self.last_online_at or self.notified_at
        return rules.seconds_up(self.takedown_at - start) if start else None

    @property
    def is_provisional(self) -> bool:
        """A server-gone takedown that has not settled yet (rules.is_provisional)."""
        return rules.is_provisional(
            removal_mechanism=self.removal_mechanism, takedown_at=self.takedown_at, settles_at=self.settles_at
        )

    def verdict(self, now: datetime) -> str | None:
        from compliance import verdicts

        return verdicts.verdict(
            status=self.status,
            notified_at=self.notified_at,
            deadline_at=self.deadline_at,
            settles_at=self.settles_at,
            takedown_at=self.takedown_at,
            offline_since=self.offline_since,
            unreachable_since=self.unreachable_since,
            is_displaced=self.is_displaced,
            removal_mechanism=self.removal_mechanism,
            hoster_id=self.hoster_id,
            now=now,
        )


class Role(models.TextChoices):
    ANALYST = "analyst", _("analyst")
    MINISTRY = "ministry", _("ministry")
    RESEARCHER = "researcher", _("researcher")
    HOSTER = "hoster", _("hoster")


class Membership(models.Model):
    """A user's role, and for hoster users the one hoster whose data they see."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="membership"
    )
    role = models.CharField(verbose_name=_("role"), max_length=20, choices=Role.choices)
    hoster = models.ForeignKey(
        Hoster, verbose_name=_("hoster"), null=True, blank=True, on_delete=models.CASCADE, related_name="members"
    )

    class Meta:
        verbose_name = _("user role")
        verbose_name_plural = _("user roles")
        constraints = [
            models.CheckConstraint(
                condition=(Q(role="hoster") & Q(hoster__isnull=False)) | (~Q(role="hoster") & Q(hoster__isnull=True)),
                name="membership_hoster_iff_hoster_role",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"


# --- The hosters' response, notices by e-mail, and the audit trail -----------------------------
# docs/portal.md and docs/access-control.md describe them; compliance/notifications.py sends the
# e-mails, compliance/audit.py records the trail.


class Dispute(models.Model):
    """A hoster's objection to a notice ("comply or explain"), answered by an analyst.

    A dispute changes no measurement by itself: an analyst who agrees corrects the attribution (or
    the notice) with the tools for that; the answer is shown to the hoster.
    """

    class Reason(models.TextChoices):
        NOT_OUR_CUSTOMER = "not_our_customer", _("not our customer")
        BEHIND_CDN = "behind_cdn", _("behind a CDN")
        ALREADY_REMOVED = "already_removed", _("already removed")
        OTHER = "other", _("other")

    class State(models.TextChoices):
        OPEN = "open", _("open: waiting for an analyst")
        UPHELD = "upheld", _("upheld: the analyst agrees")
        REJECTED = "rejected", _("rejected: the analyst disagrees")

    notice = models.ForeignKey(Notice, verbose_name=_("notice"), on_delete=models.PROTECT, related_name="disputes")
    # The hoster that raised it: the notice's hoster may change later (re-attribution).
    hoster = models.ForeignKey(Hoster, verbose_name=_("hoster"), on_delete=models.PROTECT, related_name="disputes")
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("raised by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reason = models.CharField(verbose_name=_("reason"), max_length=30, choices=Reason.choices)
    removed_at = models.DateTimeField(
        verbose_name=_("removed according to the hoster"),
        null=True,
        blank=True,
        help_text=_("for 'already removed': when the hoster says it removed the content"),
    )
    text = models.TextField(
        verbose_name=_("explanation"), blank=True, max_length=4000, help_text=_("the hoster's explanation")
    )
    created_at = models.DateTimeField(verbose_name=_("raised"))
    state = models.CharField(verbose_name=_("state"), max_length=20, choices=State.choices, default=State.OPEN)
    answer = models.TextField(verbose_name=_("answer"), blank=True, max_length=4000, help_text=_("shown to the hoster"))
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("answered by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    answered_at = models.DateTimeField(verbose_name=_("answered"), null=True, blank=True)

    class Meta:
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        ordering = ["-created_at", "-id"]
        constraints = [
            # One open dispute per notice at a time; after the answer the hoster may dispute again.
            models.UniqueConstraint(fields=["notice"], condition=Q(state="open"), name="dispute_one_open_per_notice"),
            models.CheckConstraint(
                condition=Q(state="open") | Q(answered_at__isnull=False), name="dispute_answered_has_time"
            ),
        ]
        indexes = [
            # The analysts' dispute queue: open disputes, oldest first.
            models.Index(fields=["created_at"], condition=Q(state="open"), name="dispute_queue"),
            models.Index(fields=["hoster", "created_at"], name="dispute_hoster_time"),
        ]

    def __str__(self) -> str:
        return _("dispute %(id)s of notice %(notice)s (%(reason)s)") % {
            "id": self.pk,
            "notice": self.notice_id,
            "reason": self.get_reason_display(),
        }

    @property
    def is_open(self) -> bool:
        return self.state == self.State.OPEN


class NoticeEmail(models.Model):
    """One e-mail the product sends (or will send) about a notice, and its delivery state.

    The row is written before the e-mail is sent (the intent), so a crash between the mail
    server's acceptance and our record can be recognised afterwards: the row stays `sending`, and
    becomes `uncertain` when its lease runs out; it is never sent again automatically (at most
    once; compliance/notifications.py explains the choice).
    """

    class Kind(models.TextChoices):
        NOTICE = "notice", _("notice")  # the first notification: its acceptance is notified_at
        REMINDER = "reminder", _("reminder before the deadline")
        REPEAT = "repeat", _("repeat notice: still online after a deadline period")

    class State(models.TextChoices):
        SCHEDULED = "scheduled", _("scheduled")
        CLAIMED = "claimed", _("claimed by a monitor process")
        SENDING = "sending", _("sending")
        SENT = "sent", _("accepted by the mail server")
        RETRY = "retry", _("waiting to retry")
        FAILED = "failed", _("refused by the mail server")
        UNCERTAIN = "uncertain", _("uncertain: interrupted while sending")
        SKIPPED = "skipped", _("not needed any more")
        BOUNCED = "bounced", _("bounced after acceptance")

    # States the drain still works on; `due_at` is their schedule (claimed/sending: lease expiry).
    ACTIVE_STATES = (State.SCHEDULED, State.RETRY, State.CLAIMED, State.SENDING)

    notice = models.ForeignKey(Notice, verbose_name=_("notice"), on_delete=models.PROTECT, related_name="emails")
    kind = models.CharField(verbose_name=_("kind"), max_length=20, choices=Kind.choices)
    seq = models.PositiveIntegerField(
        verbose_name=_("deadline period"), default=0, help_text=_("the deadline period of a repeat notice (1, 2, ...)")
    )
    hoster = models.ForeignKey(
        Hoster,
        verbose_name=_("hoster"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notice_emails",
        db_index=False,
    )
    to_address = models.EmailField(verbose_name=_("to"), blank=True)
    message_id = models.CharField(verbose_name=_("Message-ID"), max_length=255, blank=True)
    state = models.CharField(verbose_name=_("state"), max_length=20, choices=State.choices, default=State.SCHEDULED)
    due_at = models.DateTimeField(verbose_name=_("due"), null=True, blank=True)
    claim_token = models.UUIDField(verbose_name=_("claim token"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(verbose_name=_("attempts"), default=0)
    created_at = models.DateTimeField(verbose_name=_("created"))
    sending_at = models.DateTimeField(
        verbose_name=_("sending started"), null=True, blank=True, help_text=_("when the last attempt started")
    )
    sent_at = models.DateTimeField(
        verbose_name=_("accepted by the mail server"),
        null=True,
        blank=True,
        help_text=_("when the mail server accepted it"),
    )
    last_error = models.CharField(verbose_name=_("last error"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("notice e-mail")
        verbose_name_plural = _("notice e-mails")
        ordering = ["notice", "created_at", "id"]
        constraints = [
            # Idempotence: one e-mail of each kind and period per notice, however often the drain runs.
            models.UniqueConstraint(fields=["notice", "kind", "seq"], name="notice_email_once"),
        ]
        indexes = [
            # runmonitor's notifications drain: e-mails due (or leases expired) now.
            models.Index(
                fields=["due_at"],
                condition=Q(state__in=["scheduled", "retry", "claimed", "sending"]),
                name="notice_email_due",
            ),
            # Delivery per hoster (admin, findings).
            models.Index(fields=["hoster", "state"], name="notice_email_hoster_state"),
            models.Index(fields=["message_id"], name="notice_email_message_id"),
        ]

    def __str__(self) -> str:
        return _("e-mail %(id)s of notice %(notice)s: %(kind)s, %(state)s") % {
            "id": self.pk,
            "notice": self.notice_id,
            "kind": self.get_kind_display(),
            "state": self.get_state_display(),
        }


class DeliveryEvent(AppendOnlyModel):
    """What happened to one delivery attempt (or a later bounce), per hoster: evidence, append-only.

    A hoster whose abuse address refuses or bounces notices is a finding, not an excuse.
    """

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", _("accepted by the mail server")
        REFUSED = "refused", _("refused by the mail server")
        TEMPORARY_FAILURE = "temporary_failure", _("temporary failure")
        NO_ADDRESS = "no_address", _("the hoster has no abuse address")
        UNCERTAIN = "uncertain", _("interrupted: acceptance unknown")
        BOUNCED = "bounced", _("bounced after acceptance")

    email = models.ForeignKey(NoticeEmail, verbose_name=_("e-mail"), on_delete=models.PROTECT, related_name="events")
    hoster = models.ForeignKey(
        Hoster,
        verbose_name=_("hoster"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="delivery_events",
    )
    at = models.DateTimeField(verbose_name=_("time"))
    outcome = models.CharField(verbose_name=_("outcome"), max_length=20, choices=Outcome.choices)
    to_address = models.EmailField(verbose_name=_("to"), blank=True)
    smtp_code = models.PositiveSmallIntegerField(verbose_name=_("SMTP code"), null=True, blank=True)
    detail = models.CharField(verbose_name=_("detail"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("delivery event")
        verbose_name_plural = _("delivery events")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["hoster", "at"], name="delivery_hoster_time")]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} ({self.to_address})"


class AuditEvent(AppendOnlyModel):
    """Who did what, when: the trail of analysts' and hosters' actions (append-only, hash-chained).

    Semantic events (`notice.acknowledge`, `dispute.answer`, `login.failed`, ...) come from the
    services; every other state-changing request by a signed-in user is recorded as `request`
    by compliance.audit.AuditMiddleware, so no write escapes the trail.
    """

    at = models.DateTimeField(verbose_name=_("time"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept as text too: the trail must still say who after a user is deleted.
    actor_username = models.CharField(verbose_name=_("user name"), max_length=150, blank=True)
    actor_role = models.CharField(verbose_name=_("role"), max_length=20, blank=True)
    action = models.CharField(verbose_name=_("action"), max_length=50)
    # PROTECT: the notice is part of the chained evidence (a notice is never deleted anyway). The
    # actor and the hoster may still go (SET_NULL, the one UPDATE the database allows on this table):
    # the chain covers the actor's name and role as text, not these two ids.
    notice = models.ForeignKey(
        Notice, verbose_name=_("notice"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    hoster = models.ForeignKey(
        Hoster, verbose_name=_("hoster"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.JSONField(verbose_name=_("detail"), default=dict, blank=True)
    ip_address = models.GenericIPAddressField(verbose_name=_("IP address"), null=True, blank=True)
    method = models.CharField(verbose_name=_("method"), max_length=10, blank=True)
    path = models.CharField(
        verbose_name=_("path"), max_length=500, blank=True, help_text=_("the request path, never its query string")
    )
    status_code = models.PositiveSmallIntegerField(verbose_name=_("status code"), null=True, blank=True)
    chain_hash = models.CharField(
        verbose_name=_("chain hash"),
        max_length=64,
        blank=True,
        help_text=_("SHA-256 of the previous event's hash and this event (compliance/evidence.py)"),
    )

    # One chain over the whole trail, head in ChainHead "audit". The actor's and hoster's ids are
    # not covered: they may become NULL when a user or hoster is deleted (the name stays, covered).
    evidence_chain = Chain("audit", group=None, exclude=("actor_id", "hoster_id"))

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["at"], name="audit_time"),
            models.Index(fields=["actor", "at"], name="audit_actor_time"),
            models.Index(fields=["notice", "at"], name="audit_notice_time"),
        ]

    def __str__(self) -> str:
        return f"{local_datetime(self.at)} {self.actor_username or '-'} {self.action}"


class MethodologyRecord(models.Model):
    """A methodology version and the settings that tuned it, as used here (compliance/methodology.py):
    one row per distinct combination, with when it was first and last seen in use."""

    version = models.CharField(verbose_name=_("version"), max_length=20)
    settings = models.JSONField(verbose_name=_("settings"), default=dict)
    fingerprint = models.CharField(verbose_name=_("fingerprint"), max_length=64, unique=True)
    first_seen_at = models.DateTimeField(verbose_name=_("first in use"))
    last_seen_at = models.DateTimeField(verbose_name=_("last in use"))

    class Meta:
        verbose_name = _("methodology in use")
        verbose_name_plural = _("methodologies in use")
        ordering = ["first_seen_at", "id"]

    def __str__(self) -> str:
        return f"{self.version} ({local_datetime(self.first_seen_at)})"


class ChainHead(models.Model):
    """The head of a global evidence chain (the audit trail's): its row lock serialises the writers,
    so concurrent requests and monitors never fork the chain (compliance/evidence.py)."""

    name = models.CharField(verbose_name=_("chain"), max_length=50, primary_key=True)
    head = models.CharField(verbose_name=_("head"), max_length=64, blank=True)
    length = models.PositiveBigIntegerField(verbose_name=_("length"), default=0)

    class Meta:
        verbose_name = _("evidence chain head")
        verbose_name_plural = _("evidence chain heads")

    def __str__(self) -> str:
        return f"{self.name}: {self.head[:12]}… ({self.length})"


# --- Evidence: what the monitor observed -------------------------------------------------------------
# Checks, attributions and RDAP records are the domain's evidence: a notice's timing is a fold over
# its checks (compliance/rules.py), and the portal, API, reports and verify_measurements read them.
# The monitor (monitor/) only writes them, through compliance's services. Their tables keep the
# names the monitor app gave them.


class Check(AppendOnlyModel):
    """One observation of a notice's URL. Never the body: only its SHA-256 and length."""

    class Outcome(models.TextChoices):
        """What one check saw (monitor/classification.py); compliance/rules.py `evidence` reads it."""

        ONLINE = rules.ONLINE, _("online")
        REMOVED = rules.REMOVED, _("removed")  # evidence of absence
        # A failure at the network level before any response: may add up to "server gone".
        TRANSIENT = rules.TRANSIENT, _("unreachable")
        REFUSED = rules.REFUSED, _("refused destination")  # the checker would not connect (non-public address)
        # An answer that is neither the content nor its absence (403, 429, 5xx, a stalled body): no
        # evidence either way. Before methodology 2.0 these were recorded as `transient`.
        NO_EVIDENCE = rules.NO_EVIDENCE, _("no evidence")

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
        default=rules.DEFAULT_VANTAGE,
        db_default=rules.DEFAULT_VANTAGE,  # bulk writers (COPY, the demo history) that name no vantage
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
        db_table = "monitor_check"  # created by the monitor app; the table keeps its name
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
        db_table = "monitor_attribution"  # created by the monitor app; the table keeps its name
        verbose_name = _("attribution")
        verbose_name_plural = _("attributions")
        ordering = ["notice", "created_at", "id"]
        indexes = [models.Index(fields=["notice", "created_at"], name="attribution_notice_time")]

    def __str__(self) -> str:
        return _("attribution %(id)s of notice %(notice)s") % {"id": self.pk, "notice": self.notice_id}


class RdapRecord(AppendOnlyModel):
    """What RDAP said about an address's registered network at a moment: evidence, append-only.

    An attribution made before the address's RDAP was known shows the first record looked up
    after it (selectors in monitor/attribution_drain.py); a later attribution carries it inline.
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
        db_table = "monitor_rdaprecord"  # created by the monitor app; the table keeps its name
        verbose_name = _("RDAP record")
        verbose_name_plural = _("RDAP records")
        ordering = ["ip", "looked_up_at", "id"]
        indexes = [models.Index(fields=["ip", "looked_up_at"], name="rdap_record_ip_time")]

    def __str__(self) -> str:
        return _("RDAP of %(ip)s at %(at)s") % {"ip": self.ip, "at": local_datetime(self.looked_up_at)}
