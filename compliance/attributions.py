"""Attribution evidence that is not network work: the analysts' override, re-attribution, and reading
RDAP records beside attributions.

The attribution drain and the RDAP drain (DNS, Team Cymru, RDAP: the network) are the monitor's
(monitor/attribution_drain.py); they write Attribution and RdapRecord rows, which are the domain's.
"""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from compliance import bulk, measurements
from compliance.models import Attribution, Hoster, Notice, RdapRecord

OPEN_ATTRIBUTION = (Notice.AttributionState.PENDING, Notice.AttributionState.RETRY)


def rdap_evidence(record: RdapRecord) -> dict:
    return {
        "status": record.status,
        "looked_up_at": record.looked_up_at.isoformat(),
        "registry": record.registry,
        "record_id": record.pk,
        **record.network,
    }


def rdap_records_after(attributions) -> dict[int, RdapRecord]:
    """For DNS attributions made while their address's RDAP was pending: the first record looked
    up after each (attribution id -> record). Evidence rows are never updated; this joins them."""
    pending = [a for a in attributions if a.chosen_ip and (a.rdap or {}).get("status") == "pending"]
    if not pending:
        return {}
    records = list(RdapRecord.objects.filter(ip__in={a.chosen_ip for a in pending}).order_by("looked_up_at", "id"))
    out = {}
    for attribution in pending:
        out[attribution.pk] = next(
            (r for r in records if r.ip == attribution.chosen_ip and r.looked_up_at >= attribution.created_at), None
        )
    return {k: v for k, v in out.items() if v is not None}


def notice_reattribute(*, notice_ids: list[int], now: datetime | None = None) -> int:
    """Queue notices for a new attribution (a new evidence row; the old ones stay).

    Repeats (which follow their open notice) and notices already waiting are left alone.
    Returns how many were queued.
    """
    now = now or timezone.now()
    queued = 0
    with transaction.atomic():
        for chunk in bulk.chunks(notice_ids):
            queued += (
                Notice.objects.filter(id__in=chunk)
                .exclude(status=Notice.Status.REPEAT)
                .exclude(attribution_state__in=OPEN_ATTRIBUTION)
                .update(attribution_state=Notice.AttributionState.PENDING, next_attribution_at=now, updated_at=now)
            )
    return queued


@transaction.atomic
def attribution_override(
    *,
    notice: Notice,
    hoster: Hoster,
    cdn: Hoster | None = None,
    reason: str,
    user,
    now: datetime | None = None,
) -> Attribution:
    """An analyst sets the origin hoster (and the CDN in front, if any), saying why.

    Recorded as an Attribution row with method "analyst", who and when; the notice's hoster
    becomes the analyst's (hoster_source "analyst"), which later DNS attributions keep.
    """
    now = now or timezone.now()
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if not reason:
        errors["reason"] = ["say why the attribution changes"]
    if hoster.kind == Hoster.Kind.CDN:
        errors["hoster"] = [f"{hoster.slug} is a CDN: a CDN is never the hoster; set it as the cdn"]
    if cdn is not None and cdn.kind != Hoster.Kind.CDN:
        errors["cdn"] = [f"{cdn.slug} is not a CDN"]
    if errors:
        raise ValidationError(errors)
    notice = Notice.objects.select_for_update().get(pk=notice.pk)
    row = Attribution(
        notice=notice,
        created_at=now,
        method=Attribution.Method.ANALYST,
        hostname=notice.host,
        hoster=hoster,
        cdn=cdn,
        decided_by=user,
        reason=reason[:2000],
    )
    row.save()
    notice.hoster = hoster
    notice.hoster_source = Notice.HosterSource.ANALYST
    notice.cdn = cdn
    notice.is_behind_cdn = cdn is not None
    notice.is_ambiguous = False
    notice.save(update_fields=["hoster", "hoster_source", "cdn", "is_behind_cdn", "is_ambiguous", "updated_at"])
    # With a hoster, a name that never resolved is evidence of absence: the measurement follows.
    measurements.notices_remeasure([notice.pk], actor=user, reason=f"attribution override: {reason}"[:2000], now=now)
    return row
