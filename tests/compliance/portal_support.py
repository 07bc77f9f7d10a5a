"""Small builders for the portal, notification and access tests (not fixtures: plain functions)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from compliance.models import Check, Notice


def make_notice(url: str, hoster=None, *, notified_ago_s: float | None = 3600, deadline_s: int = 86400, **fields):
    now = fields.pop("now", None) or timezone.now()
    notified_at = now - timedelta(seconds=notified_ago_s) if notified_ago_s is not None else None
    host = url.split("/")[2]
    values = dict(
        url=url,
        scheme=url.split(":")[0],
        host=host,
        path="/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/",
        received_at=notified_at or now,
        notified_at=notified_at,
        deadline_s=deadline_s,
        hoster=hoster,
        hoster_source=Notice.HosterSource.HOTLINE if hoster else "",
        attribution_state=Notice.AttributionState.DONE if hoster else Notice.AttributionState.PENDING,
        next_check_at=now + timedelta(hours=1),
    )
    values.update(fields)
    return Notice.objects.create(**values)


def make_check(notice, *, ago_s: float, outcome: str = "online", http_status: int | None = 200, trigger="schedule"):
    return Check.objects.create(
        notice=notice,
        checked_at=timezone.now() - timedelta(seconds=ago_s),
        outcome=outcome,
        http_status=http_status,
        trigger=trigger,
        body_sha256="ab" * 32 if outcome == "online" else "",
        byte_count=1234,
        duration_ms=42,
    )
