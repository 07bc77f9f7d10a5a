"""`/api/v1/notices/` and `/api/v1/hosters/`: parse input, call one service or selector, serialise."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms as django_forms
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance import selectors, services
from compliance.attributions import attribution_override
from compliance.models import Hoster, Notice, Role
from compliance.pseudonym import pseudonymise, pseudonymise_address
from compliance.serializers import AttributionOverrideSerializer, AttributionSerializer, attribution_context


class HasRole(permissions.BasePermission):
    """Allow the roles named in the view's `allowed_roles` (per action in `allowed_roles_by_action`)."""

    def has_permission(self, request, view) -> bool:
        by_action = getattr(view, "allowed_roles_by_action", {})
        allowed = by_action.get(getattr(view, "action", None), getattr(view, "allowed_roles", ()))
        return selectors.role_of(request.user) in allowed


ALL_ROLES = tuple(Role.values)


# --- Serializers --------------------------------------------------------------------------------


VERDICT_FIELD = serializers.ChoiceField(
    choices=["within", "late", "pending"],
    allow_null=True,
    help_text="within, late or pending; null for a notice that is not a measurement (repeat, unresolvable, "
    "withdrawn, or displaced by the deadline)",
)


class CheckSerializer(serializers.Serializer):
    """One check. The server address is shown to analysts and to the notice's hoster; ministry
    users and researchers get its keyed pseudonym (`resolved_ip_hash`) instead."""

    checked_at = serializers.DateTimeField()
    vantage = serializers.CharField(help_text="the named place the check came from (`local` by default)")
    outcome = serializers.CharField()
    http_status = serializers.IntegerField(allow_null=True)
    error_kind = serializers.CharField(allow_blank=True)
    reason = serializers.CharField(allow_blank=True)
    resolved_ip = serializers.SerializerMethodField(help_text="analysts and the notice's hoster; else null")
    resolved_ip_hash = serializers.SerializerMethodField(
        help_text="keyed pseudonym of the address, for roles that do not see it; else null"
    )
    body_sha256 = serializers.SerializerMethodField()
    byte_count = serializers.IntegerField()
    duration_ms = serializers.IntegerField()
    trigger = serializers.CharField()
    vantage = serializers.CharField(help_text="the vantage point the check came from (MONITOR_VANTAGES)")

    def _shows_addresses(self) -> bool:
        return selectors.can_see_addresses(self.context["request"].user)

    def get_resolved_ip(self, obj) -> str | None:
        return obj.resolved_ip if self._shows_addresses() else None

    def get_resolved_ip_hash(self, obj) -> str | None:
        if self._shows_addresses() or not obj.resolved_ip:
            return None
        return pseudonymise_address(obj.resolved_ip)

    def get_body_sha256(self, obj) -> str | None:
        return obj.body_sha256 if selectors.can_see_content_hashes(self.context["request"].user) else None


class NoticeSerializer(serializers.ModelSerializer):
    """One notice. URL and host are shown raw to analysts and hoster users, pseudonymised to
    researchers and ministry users (`url_hash`/`host_hash` stand in for them)."""

    url = serializers.SerializerMethodField()
    host = serializers.SerializerMethodField()
    url_hash = serializers.SerializerMethodField()
    host_hash = serializers.SerializerMethodField()
    reference = serializers.CharField(read_only=True, allow_null=True, allow_blank=True)
    hoster = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    hoster_source = serializers.ChoiceField(
        choices=Notice.HosterSource.choices, read_only=True, allow_blank=True, help_text="empty while unattributed"
    )
    cdn = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    verdict = serializers.SerializerMethodField()
    repeat_of = serializers.SerializerMethodField(
        help_text="for a repeat: the notice it repeats, when you may see that notice; else null"
    )
    content_sha256 = serializers.SerializerMethodField()
    ttt_s = serializers.FloatField(
        read_only=True, allow_null=True, help_text="time to takedown in seconds (takedown_at - notified_at)"
    )
    precision_s = serializers.FloatField(
        read_only=True, allow_null=True, help_text="seconds between the last online and the takedown observation"
    )
    removal_mechanism = serializers.ChoiceField(
        choices=Notice.RemovalMechanism.choices, read_only=True, allow_blank=True, help_text="empty until removed"
    )

    class Meta:
        model = Notice
        fields = [
            "id",
            "url",
            "host",
            "url_hash",
            "host_hash",
            "source",
            "reference",
            "content_sha256",
            "received_at",
            "notified_at",
            "deadline_s",
            "deadline_at",
            "regime",
            "status",
            "verdict",
            "repeat_of",
            "hoster",
            "hoster_source",
            "cdn",
            "is_behind_cdn",
            "is_ambiguous",
            "attribution_state",
            "check_count",
            "last_checked_at",
            "last_online_at",
            "takedown_at",
            "ttt_s",
            "precision_s",
            "removal_mechanism",
            "is_displaced",
            "reappearance_count",
            "reappeared_at",
            "acknowledged_at",
            "reported_removed_at",
        ]
        read_only_fields = fields

    def _shows_urls(self) -> bool:
        return selectors.can_see_urls(self.context["request"].user)

    def get_url(self, obj) -> str | None:
        return obj.url if self._shows_urls() else None

    def get_host(self, obj) -> str | None:
        return obj.host if self._shows_urls() else None

    def get_url_hash(self, obj) -> str | None:
        return pseudonymise(obj.url) if not self._shows_urls() else None

    def get_host_hash(self, obj) -> str | None:
        return pseudonymise(obj.host) if not self._shows_urls() else None

    def get_content_sha256(self, obj) -> str | None:
        """Analysts only (selectors.can_see_content_hashes); null for everyone else."""
        return obj.content_sha256 if selectors.can_see_content_hashes(self.context["request"].user) else None

    def get_repeat_of(self, obj) -> int | None:
        return selectors.visible_repeat_of_id(obj, self.context["request"].user)

    @extend_schema_field(VERDICT_FIELD)
    def get_verdict(self, obj) -> str | None:
        return obj.verdict(self.context.get("now") or timezone.now())


class NoticeDetailSerializer(NoticeSerializer):
    checks = CheckSerializer(many=True, read_only=True)
    attributions = serializers.SerializerMethodField()  # the attribution evidence (compliance/serializers.py)

    class Meta(NoticeSerializer.Meta):
        fields = [*NoticeSerializer.Meta.fields, "checks", "attributions"]
        read_only_fields = fields

    @extend_schema_field(AttributionSerializer(many=True))
    def get_attributions(self, obj) -> list[dict]:
        rows = list(obj.attributions.all())
        return AttributionSerializer(rows, many=True, context=attribution_context(self.context["request"], rows)).data


class NoticeCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=4096, trim_whitespace=False)
    notified_at = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="ISO 8601 with UTC offset, from 2000-01-01 to 5 minutes ahead of the server's clock",
    )
    reference = serializers.CharField(required=False, allow_blank=True, max_length=services.REFERENCE_MAX)
    content_sha256 = serializers.CharField(required=False, allow_blank=True, max_length=100)
    hoster = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="hoster slug, if already known"
    )
    deadline_s = serializers.IntegerField(
        required=False,
        min_value=services.DEADLINE_MIN_S,
        max_value=services.DEADLINE_MAX_S,
        # The intake's own words (compliance/services.py), as the import and the admin give them.
        error_messages={"min_value": services.DEADLINE_RANGE_MESSAGE, "max_value": services.DEADLINE_RANGE_MESSAGE},
        help_text="a deadline of its own in seconds, e.g. 3600 (1 s to 365 days)",
    )
    regime = serializers.ChoiceField(
        choices=Notice.Regime.choices,
        required=False,
        allow_blank=True,
        help_text="covenant (default), order (a removal order; the default when deadline_s is given), other",
    )
    source = serializers.CharField(required=False, max_length=services.SOURCE_MAX, default="api")


class HosterSerializer(serializers.ModelSerializer):
    asns = serializers.SerializerMethodField()
    prefixes = serializers.SerializerMethodField()

    class Meta:
        model = Hoster
        fields = ["slug", "name", "country", "abuse_email", "kind", "is_reviewed", "asns", "prefixes"]

    def get_asns(self, obj) -> list[int]:
        return [a.asn for a in obj.asns.all()]

    def get_prefixes(self, obj) -> list[str]:
        return [p.prefix for p in obj.prefixes.all()]


# --- Filters ------------------------------------------------------------------------------------


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 filter bound, in UTC. Python takes offsets up to ±23:59, PostgreSQL only up to
    ±15:59 (a 500 for `?notified_before=2026-01-01T00:00:00+23:41`); in UTC every database takes
    it. A moment that has no UTC equivalent (year 1 with a positive offset) is a 400."""

    def to_python(self, value):
        try:
            moment = super().to_python(value)
            return moment.astimezone(UTC) if moment is not None else None
        except OverflowError:  # in parsing (year 1 made aware) or in the conversion
            raise django_forms.ValidationError("out of range", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class NoticeFilter(django_filters.FilterSet):
    hoster = django_filters.CharFilter(field_name="hoster__slug", help_text="hoster slug")
    status = django_filters.ChoiceFilter(choices=Notice.Status.choices)
    notified_after = UtcIsoDateTimeFilter(field_name="notified_at", lookup_expr="gte")
    notified_before = UtcIsoDateTimeFilter(field_name="notified_at", lookup_expr="lt")

    class Meta:
        model = Notice
        fields = ["hoster", "status", "notified_after", "notified_before"]


# --- Views --------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Notices visible to you (a hoster user sees only its own hoster's)"),
    retrieve=extend_schema(summary="One notice with its checks; 404 if it is not visible to you"),
)
class NoticeViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [HasRole]
    allowed_roles = ALL_ROLES
    allowed_roles_by_action = {"create": (Role.ANALYST,)}
    filterset_class = NoticeFilter

    def get_queryset(self):
        user = self.request.user
        qs = selectors.with_visible_repeat_of(selectors.notices_visible_to(user), user).select_related("hoster", "cdn")
        if self.action == "retrieve":
            qs = qs.prefetch_related("checks")
            qs = qs.prefetch_related("attributions__hoster", "attributions__cdn", "attributions__decided_by")
        return qs.order_by("-received_at", "-id")

    def get_serializer_class(self):
        return NoticeDetailSerializer if self.action == "retrieve" else NoticeSerializer

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": timezone.now()}

    @extend_schema(
        request=NoticeCreateSerializer,
        responses={
            201: NoticeSerializer,
            400: OpenApiResponse(description='field errors, e.g. {"url": ["the scheme \'ftp\' is not allowed"]}'),
            409: OpenApiResponse(description="a notice with this source and reference exists; its id is given"),
        },
        summary="Create a notice (analysts)",
    )
    def create(self, request, *args, **kwargs):
        payload = NoticeCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        now = timezone.now()
        values = payload.validated_data
        try:
            data = services.notice_input_parse(
                url=values["url"],
                notified_at=values.get("notified_at"),
                reference=values.get("reference", ""),
                content_sha256=values.get("content_sha256", ""),
                hoster=values.get("hoster", ""),
                deadline_s=values.get("deadline_s"),
                regime=values.get("regime", ""),
                source=values["source"],
                now=now,
            )
        except services.NoticeInputError as exc:
            return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
        # The answer is built inside the write's transaction: if building it fails, nothing is
        # saved (a value that could be stored but not shown was once saved behind a 400).
        with transaction.atomic():
            notice, outcome = services.notice_create(data=data, source=data.source, now=now)
            if outcome == "duplicate":
                return Response(
                    {"detail": "a notice with this source and reference exists", "id": notice.pk},
                    status=status.HTTP_409_CONFLICT,
                )
            body = NoticeSerializer(notice, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)


class HosterViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [HasRole]
    allowed_roles = ALL_ROLES
    serializer_class = HosterSerializer
    lookup_field = "slug"

    def get_queryset(self):
        return selectors.hosters_visible_to(self.request.user).prefetch_related("asns", "prefixes").order_by("slug")


# --- An analyst sets a notice's origin hoster (and CDN), saying why ----------------------------------


class AttributionOverrideView(APIView):
    permission_classes = [HasRole]
    allowed_roles = (Role.ANALYST,)

    @extend_schema(
        request=AttributionOverrideSerializer,
        responses={
            200: NoticeDetailSerializer,
            400: OpenApiResponse(description='field errors, e.g. {"hoster": ["shieldcdn is a CDN: ..."]}'),
            404: OpenApiResponse(description="no such notice"),
        },
        summary="Set a notice's origin hoster and CDN, with the reason (analysts)",
        operation_id="v1_notices_attribution_create",
    )
    def post(self, request, pk: int):
        notice = get_object_or_404(selectors.notices_visible_to(request.user), pk=pk)
        payload = AttributionOverrideSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        values = payload.validated_data
        errors = {}
        hoster = Hoster.objects.filter(slug=values["hoster"]).first()
        if hoster is None:
            errors["hoster"] = [f"no hoster with slug {values['hoster']!r}"]
        cdn = None
        if values.get("cdn"):
            cdn = Hoster.objects.filter(slug=values["cdn"]).first()
            if cdn is None:
                errors["cdn"] = [f"no hoster with slug {values['cdn']!r}"]
        if errors:
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        try:
            attribution_override(notice=notice, hoster=hoster, cdn=cdn, reason=values["reason"], user=request.user)
        except ValidationError as exc:
            return Response(exc.message_dict, status=status.HTTP_400_BAD_REQUEST)
        notice = (
            selectors.notices_visible_to(request.user)
            .select_related("hoster", "cdn")
            .prefetch_related("checks")
            .get(pk=notice.pk)
        )
        return Response(NoticeDetailSerializer(notice, context={"request": request}).data)
