"""`POST /api/v1/notices/{id}/attribution/`: an analyst sets the origin hoster (and CDN) of a notice,
saying why. Parse input, call the service (monitor/attribute.py), answer with the notice."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance import selectors
from compliance.apis import HasRole, NoticeDetailSerializer
from compliance.models import Hoster, Role
from monitor.attribute import attribution_override
from monitor.serializers import AttributionOverrideSerializer


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
