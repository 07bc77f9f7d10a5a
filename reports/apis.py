"""The research API: `/api/v1/metrics/hosters/` and the notice exports. Parse, call, serialise.

Scoping is compliance.selectors': every role may use these; a hoster user's rows are its own only.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance import selectors
from compliance.apis import ALL_ROLES, HasRole
from compliance.models import Notice
from reports import exports, periods, rollups, scorecards

PERIOD_PARAMETERS = [
    OpenApiParameter(
        "from",
        OpenApiTypes.STR,
        description="Start (inclusive) of the period by `notified_at`: ISO 8601 date (local midnight, "
        "Europe/Amsterdam) or datetime (with offset; local if none). Default: the first notice.",
    ),
    OpenApiParameter("to", OpenApiTypes.STR, description="End (exclusive), as `from`. Default: now."),
    OpenApiParameter(
        "period",
        OpenApiTypes.STR,
        description="Instead of from/to: a named period, `30d`, `90d`, `365d`, `all`, a year `2026` or a month "
        "`2026-03`. Named periods are served from rollups (see `X-Computed-At`).",
    ),
    OpenApiParameter(
        "regime",
        OpenApiTypes.STR,
        enum=list(Notice.Regime.values),
        description="Only notices of this regime (`covenant`: the 24 h agreement; `order`: a removal order with "
        "its own deadline; `other`). Default: all regimes together.",
    ),
]


def parse_regime(params) -> str | None:
    regime = params.get("regime") or None
    if regime is not None and regime not in Notice.Regime.values:
        raise ValidationError({"regime": [f"one of {', '.join(Notice.Regime.values)}"]})
    return regime


def parse_period(params, now) -> periods.Period | None:
    """from/to -> a custom period; period=KEY -> that period; nothing -> None (all notices)."""
    try:
        return periods.Period.parse(params, now, default=None)
    except periods.PeriodError as exc:
        raise ValidationError({"period": [str(exc)]}) from None


class HosterMetricsSerializer(serializers.Serializer):
    """One row of `compliance_report`, with the figures beyond the report's columns after them."""

    hoster = serializers.SlugField()
    notices = serializers.IntegerField(
        help_text="measured notices: notified, not a repeat, not withdrawn, not unresolvable without a hoster"
    )
    removed = serializers.IntegerField(help_text="status removed now: takedown confirmed and the content not back")
    within = serializers.IntegerField()
    late = serializers.IntegerField()
    pending = serializers.IntegerField()
    open = serializers.IntegerField(help_text="status pending, online or reappeared")
    compliance_rate = serializers.FloatField(allow_null=True, help_text="within / (within + late)")
    median_ttt_s = serializers.FloatField(allow_null=True, help_text="over taken-down notices")
    p90_ttt_s = serializers.FloatField(allow_null=True)
    km_median_ttt_s = serializers.FloatField(allow_null=True, help_text="Kaplan-Meier median; null if not reached")
    regime = serializers.CharField(allow_null=True, help_text="the regime filtered to; null: all regimes together")
    taken_down = serializers.IntegerField(help_text="with a takedown, including reappeared ones")
    reappeared = serializers.IntegerField(help_text="notices whose content came back after a takedown (open again)")
    server_gone = serializers.IntegerField(help_text="takedowns resting on server gone (network failure only)")
    server_gone_provisional = serializers.IntegerField(
        help_text="of those, not settled yet: their verdict stays pending until they settle"
    )
    repeats = serializers.IntegerField(help_text="repeat notices: outside every rate, counted apart")
    withdrawn = serializers.IntegerField(help_text="notices withdrawn by an analyst: outside every rate")
    name = serializers.CharField()
    compliance_rate_low = serializers.FloatField(allow_null=True, help_text="Wilson 95% interval")
    compliance_rate_high = serializers.FloatField(allow_null=True)
    reappearances = serializers.IntegerField()
    unresolvable = serializers.IntegerField(help_text="without a hoster only (outside every rate)")
    displaced = serializers.IntegerField(help_text="takedowns by moving to another hoster")
    open_past_deadline = serializers.IntegerField()
    oldest_open_notified_at = serializers.DateTimeField(allow_null=True)
    ipv4_addresses = serializers.IntegerField(allow_null=True, help_text="in the hoster's registered prefixes")
    notices_per_10k_addresses = serializers.FloatField(allow_null=True)
    is_small_sample = serializers.BooleanField(help_text="fewer decided notices than SCORECARD_MIN_NOTICES")
    deadlines_s = serializers.ListField(child=serializers.IntegerField())
    methodology_version = serializers.CharField()


@extend_schema(
    summary="Compliance per hoster (the rows of compliance_report)",
    description="One row per hoster with measured notices in the period. A hoster user gets its own row only. "
    "Headers: `X-Methodology-Version`, `X-Computed-At` (the moment the figures were computed).",
    parameters=PERIOD_PARAMETERS,
    responses={200: HosterMetricsSerializer(many=True), 400: OpenApiResponse(description="a bad period")},
    tags=["metrics"],
)
class HosterMetricsView(APIView):
    permission_classes = [HasRole]
    allowed_roles = ALL_ROLES

    def get(self, request):
        now = timezone.now()
        period = parse_period(request.query_params, now) or periods.custom(None, None)
        regime = parse_regime(request.query_params)
        hosters = selectors.hosters_visible_to(request.user)
        notices = selectors.notices_visible_to(request.user)
        # Named periods from their rollups; from/to (or nothing) computed on the spot, as compliance_report.
        result = rollups.figures(period, now=now, hosters=hosters, notices=notices, regime=regime)
        rows = [scorecards.report_row(m, all_columns=True) for m in result.hosters]
        response = Response(rows)
        response["X-Methodology-Version"] = result.methodology_version
        response["X-Computed-At"] = result.computed_at.isoformat()
        return response


class IgnoreClientContentNegotiation(BaseContentNegotiation):
    """The export's format is its URL (.csv, .jsonl, .parquet), whatever the Accept header says."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return (renderers[0], renderers[0].media_type)


CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}

EXPORT_PARAMETERS = [
    *PERIOD_PARAMETERS,
    OpenApiParameter("hoster", OpenApiTypes.STR, pattern=r"^[-a-zA-Z0-9_]+$", description="hoster slug"),
    OpenApiParameter(
        "status",
        OpenApiTypes.STR,
        description="notice status, or several separated by commas: " + ", ".join(Notice.Status.values),
    ),
    OpenApiParameter("verdict", OpenApiTypes.STR, enum=list(exports.VERDICTS), description="within, late or pending"),
]

EXPORT_DESCRIPTION = (
    "Streamed, one row per notice visible to you (a hoster user: its own notices only). Columns: "
    + ", ".join(exports.COLUMNS)
    + ". Times are ISO 8601 UTC. `url` and `host` are keyed pseudonyms for researchers and ministry users "
    "(stable within this deployment, not reversible). Every row carries `methodology_version` and "
    "`exported_at`; the headers `X-Methodology-Version` and `X-Exported-At` repeat them."
)


SLUG = re.compile(r"[-a-zA-Z0-9_]+")

EXPORT_BODIES = {
    "csv": ("text/csv", OpenApiTypes.STR, "CSV with a header row"),
    "jsonl": ("application/x-ndjson", OpenApiTypes.STR, "one JSON object per line"),
    "parquet": ("application/vnd.apache.parquet", OpenApiTypes.BINARY, "Parquet"),
}


class NoticeExportView(APIView):
    """`/api/v1/export/notices.{csv,jsonl,parquet}`: one view, documented per format (`export_view`)."""

    permission_classes = [HasRole]
    allowed_roles = ALL_ROLES
    content_negotiation_class = IgnoreClientContentNegotiation
    export_format = "csv"

    def get(self, request):
        now = timezone.now()
        params = request.query_params
        statuses = tuple(s for s in params.get("status", "").split(",") if s)
        bad = [s for s in statuses if s not in Notice.Status.values]
        if bad:
            raise ValidationError({"status": [f"unknown status {', '.join(bad)}"]})
        verdict = params.get("verdict") or None
        if verdict is not None and verdict not in exports.VERDICTS:
            raise ValidationError({"verdict": ["within, late or pending"]})
        hoster = params.get("hoster") or None
        if hoster is not None and not SLUG.fullmatch(hoster):
            # Checked before the stream starts: a NUL byte reaching PostgreSQL mid-stream would
            # break a response already sent as 200.
            raise ValidationError({"hoster": ["a hoster slug: letters, digits, - and _"]})
        flt = exports.ExportFilter(
            period=parse_period(params, now),
            hoster=hoster,
            statuses=statuses,
            verdict=verdict,
            regime=parse_regime(params),
        )
        metadata = {
            "methodology_version": settings.METHODOLOGY_VERSION,
            "exported_at": now.isoformat(),
            **{f"filter_{k}": v for k, v in flt.describe().items()},
        }
        if self.export_format == "csv":
            stream = exports.csv_stream(request.user, flt, now=now)
        elif self.export_format == "jsonl":
            stream = exports.jsonl_stream(request.user, flt, now=now)
        else:
            stream = exports.parquet_stream(request.user, flt, now=now, metadata=metadata)
        response = StreamingHttpResponse(stream, content_type=CONTENT_TYPES[self.export_format])
        response["Content-Disposition"] = f'attachment; filename="{exports.filename(self.export_format, now)}"'
        response["X-Methodology-Version"] = metadata["methodology_version"]
        response["X-Exported-At"] = metadata["exported_at"]
        response["Cache-Control"] = "no-store"
        return response


def export_view(export_format: str):
    """The export view of one format, with its own media type in the OpenAPI schema."""
    media_type, body, description = EXPORT_BODIES[export_format]
    schema = extend_schema(
        parameters=EXPORT_PARAMETERS,
        description=EXPORT_DESCRIPTION,
        tags=["exports"],
        responses={
            (200, media_type): OpenApiResponse(body, description=description),
            400: OpenApiResponse(description="a bad filter"),
        },
    )
    view = type(f"Notice{export_format.capitalize()}ExportView", (NoticeExportView,), {"export_format": export_format})
    return schema(view).as_view()
