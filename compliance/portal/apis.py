"""The hoster API (`/api/v1/portal/`): an abuse desk's token lists its own open notices and responds.

Same selectors and services as the portal pages: another hoster's notice is a 404, and the
actions are the portal's buttons (acknowledge, removed, dispute). Other roles get 403.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from compliance import selectors
from compliance.apis import VERDICT_FIELD, HasRole
from compliance.models import Dispute, Notice, Role
from compliance.portal import services


class PortalCheckSerializer(serializers.Serializer):
    """A check as the hoster sees it: when and what came back, never content."""

    checked_at = serializers.DateTimeField()
    vantage = serializers.CharField(help_text="the named place the check came from (`local` by default)")
    outcome = serializers.CharField()
    http_status = serializers.IntegerField(allow_null=True)
    error_kind = serializers.CharField(allow_blank=True)
    trigger = serializers.CharField()


class PortalDisputeSerializer(serializers.ModelSerializer):
    notice = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Dispute
        fields = ["id", "notice", "reason", "removed_at", "text", "created_at", "state", "answer", "answered_at"]
        read_only_fields = fields


class PortalNoticeSerializer(serializers.ModelSerializer):
    seconds_to_deadline = serializers.SerializerMethodField(
        help_text="seconds until the deadline; negative when it has passed"
    )
    verdict = serializers.SerializerMethodField()
    reference = serializers.CharField(read_only=True, allow_null=True, allow_blank=True)
    removal_mechanism = serializers.ChoiceField(
        choices=Notice.RemovalMechanism.choices, read_only=True, allow_blank=True, help_text="empty until removed"
    )

    class Meta:
        model = Notice
        fields = [
            "id",
            "url",
            "host",
            "reference",
            "status",
            "verdict",
            "notified_at",
            "deadline_at",
            "seconds_to_deadline",
            "is_behind_cdn",
            "check_count",
            "last_checked_at",
            "last_online_at",
            "takedown_at",
            "removal_mechanism",
            "acknowledged_at",
            "reported_removed_at",
        ]
        read_only_fields = fields

    def _now(self):
        return self.context.get("now") or timezone.now()

    def get_seconds_to_deadline(self, obj) -> int | None:
        return int((obj.deadline_at - self._now()).total_seconds()) if obj.deadline_at else None

    @extend_schema_field(VERDICT_FIELD)
    def get_verdict(self, obj) -> str | None:
        return obj.verdict(self._now())


class PortalNoticeDetailSerializer(PortalNoticeSerializer):
    checks = serializers.SerializerMethodField()
    disputes = serializers.SerializerMethodField()

    class Meta(PortalNoticeSerializer.Meta):
        fields = [*PortalNoticeSerializer.Meta.fields, "checks", "disputes"]
        read_only_fields = fields

    @extend_schema_field(PortalCheckSerializer(many=True))
    def get_checks(self, obj) -> list[dict]:
        return PortalCheckSerializer(obj.checks.order_by("checked_at", "id"), many=True).data

    @extend_schema_field(PortalDisputeSerializer(many=True))
    def get_disputes(self, obj) -> list[dict]:
        qs = selectors.disputes_visible_to(self.context["request"].user).filter(notice=obj)
        return PortalDisputeSerializer(qs, many=True).data


class DisputeInputSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=Dispute.Reason.choices)
    removed_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="with reason already_removed: ISO 8601 with offset"
    )
    text = serializers.CharField(required=False, allow_blank=True, max_length=4000)


class RemovedResponseSerializer(serializers.Serializer):
    recheck = serializers.ChoiceField(
        choices=[services.RECHECK_QUEUED, services.RECHECK_ALREADY_QUEUED, services.CLAIM_CLOSED],
        help_text="queued: an independent re-check is due now; already_queued: an earlier report still "
        "waits for its check; closed: the notice is closed",
    )
    notice = PortalNoticeSerializer()


NOT_FOUND = OpenApiResponse(description="no such notice among your hoster's notices")


@extend_schema_view(
    list=extend_schema(
        summary="Your hoster's open notices, nearest deadline first",
        parameters=[
            OpenApiParameter(
                "include_closed",
                OpenApiTypes.BOOL,
                description="also closed notices (newest first, after the open ones)",
            )
        ],
        tags=["hoster portal"],
    ),
    retrieve=extend_schema(
        summary="One of your notices with its checks and disputes",
        responses={200: PortalNoticeDetailSerializer, 404: NOT_FOUND},
        tags=["hoster portal"],
    ),
)
class PortalNoticeViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [HasRole]
    allowed_roles = (Role.HOSTER,)

    def get_queryset(self):
        user = self.request.user
        if self.action == "list":
            if self.request.query_params.get("include_closed", "").lower() in ("1", "true", "yes", "on"):
                return selectors.portal_notices(user).order_by("deadline_at", "id")
            return selectors.portal_open_notices(user)
        return selectors.portal_notices(user)

    def get_serializer_class(self):
        return PortalNoticeDetailSerializer if self.action == "retrieve" else PortalNoticeSerializer

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": timezone.now()}

    @extend_schema(
        request=None,
        responses={200: PortalNoticeSerializer, 404: NOT_FOUND},
        summary="Acknowledge a notice (the first acknowledgement counts)",
        tags=["hoster portal"],
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        notice = self.get_object()
        services.notice_acknowledge(notice=notice, user=request.user, now=timezone.now(), request=request)
        return Response(PortalNoticeSerializer(notice, context=self.get_serializer_context()).data)

    @extend_schema(
        request=None,
        responses={202: RemovedResponseSerializer, 404: NOT_FOUND},
        summary="Report the content removed: the monitor re-checks it now (the report itself changes no verdict)",
        tags=["hoster portal"],
    )
    @action(detail=True, methods=["post"])
    def removed(self, request, pk=None):
        notice = self.get_object()
        outcome = services.notice_report_removed(notice=notice, user=request.user, now=timezone.now(), request=request)
        body = {
            "recheck": outcome,
            "notice": PortalNoticeSerializer(notice, context=self.get_serializer_context()).data,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=DisputeInputSerializer,
        responses={
            201: PortalDisputeSerializer,
            400: OpenApiResponse(description="field errors"),
            404: NOT_FOUND,
            409: OpenApiResponse(description="this notice already has an open dispute"),
        },
        summary="Dispute a notice; an analyst answers (see GET /api/v1/portal/disputes/)",
        tags=["hoster portal"],
    )
    @action(detail=True, methods=["post"])
    def dispute(self, request, pk=None):
        notice = self.get_object()
        payload = DisputeInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            dispute = services.dispute_raise(
                notice=notice,
                user=request.user,
                reason=payload.validated_data["reason"],
                text=payload.validated_data.get("text", ""),
                removed_at=payload.validated_data.get("removed_at"),
                now=timezone.now(),
                request=request,
            )
        except ValidationError as exc:
            return Response(exc.message_dict, status=status.HTTP_400_BAD_REQUEST)
        except services.ResponseError as exc:
            return Response({"detail": exc.message, "code": exc.code}, status=status.HTTP_409_CONFLICT)
        return Response(PortalDisputeSerializer(dispute).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Your hoster's disputes with the analysts' answers", tags=["hoster portal"]),
    retrieve=extend_schema(summary="One of your disputes", tags=["hoster portal"]),
)
class PortalDisputeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [HasRole]
    allowed_roles = (Role.HOSTER,)
    serializer_class = PortalDisputeSerializer

    def get_queryset(self):
        return selectors.disputes_visible_to(self.request.user).order_by("-created_at", "-id")
