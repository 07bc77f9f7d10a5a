"""The evidence chains' daily digest: a drain of runmonitor, stamped over the network.

The chains are compliance/evidence.py's; reading digests and a notice's signed evidence file are
compliance/evidence_files.py's. Here `drain_digest`: once every `EVIDENCE_DIGEST_HOURS`, the digest
of every chain's heads (compliance.evidence.compute_digest) is stamped by the RFC 3161 authority at
`EVIDENCE_TSA_URL` (when set) and recorded as the audit event `evidence.digest`, which the audit
chain then covers; /monitor/health/ shows the latest. A failing TSA does not stop the digest: it is
recorded without a stamp and the error is logged and shown.
"""

from __future__ import annotations

import base64
import logging
import urllib.request
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance import evidence, tsa
from compliance.audit import audit_record
from compliance.evidence_files import DIGEST_ACTION, latest_digest
from compliance.models import AuditEvent, ChainHead

log = logging.getLogger("monitor.evidence_digest")

_CLAIM = "digest-claim"  # a ChainHead row used as the digest job's claim (its `head` is the claim time)


def drain_digest(*, now: datetime | None = None) -> bool:
    """Record a digest if the last one is `EVIDENCE_DIGEST_HOURS` old; never more work waiting.

    1. Claim: compare-and-set on the claim row, so of several monitors one makes the digest (a
       claim older than an hour is taken over: its process died).
    2. Compute the digest (reads only; a moment's lock for the cut-offs).
    3. Stamp it (network, no transaction) when `EVIDENCE_TSA_URL` is set.
    4. Record it in the audit trail.
    """
    now = now or timezone.now()
    last = latest_digest()
    if last is not None and last.at > now - timedelta(hours=settings.EVIDENCE_DIGEST_HOURS):
        return False
    if not _claim(now):
        return False
    record_digest(now=now)
    return False


def _claim(now: datetime) -> bool:
    ChainHead.objects.get_or_create(name=_CLAIM, defaults={"head": ""})
    stale = (now - timedelta(hours=1)).isoformat()
    # ISO times of one offset compare as text; "" (never claimed) is older than any.
    return bool(ChainHead.objects.filter(name=_CLAIM, head__lt=stale).update(head=now.isoformat()))


def record_digest(*, now: datetime | None = None) -> AuditEvent:
    now = now or timezone.now()
    digest = evidence.compute_digest()
    detail = {**digest, "tsa": None}
    if settings.EVIDENCE_TSA_URL:
        try:
            stamp = timestamp(digest["digest"])
            detail["tsa"] = {
                "url": settings.EVIDENCE_TSA_URL,
                "gen_time": stamp.gen_time.isoformat(),
                "serial": str(stamp.serial),
                "authority": stamp.tsa,
                "token": base64.b64encode(stamp.token).decode(),
            }
        except (OSError, tsa.TimestampError) as exc:
            log.warning("evidence digest: the time-stamping authority failed: %s", exc)
            detail["tsa"] = {"url": settings.EVIDENCE_TSA_URL, "error": str(exc)[:500]}
    with transaction.atomic():
        return audit_record(actor=None, action=DIGEST_ACTION, detail=detail)


def timestamp(digest_hex: str) -> tsa.Stamp:
    """Ask the TSA at EVIDENCE_TSA_URL to stamp a SHA-256 digest (RFC 3161 over HTTP)."""
    body, nonce = tsa.request(digest_hex)
    req = urllib.request.Request(
        settings.EVIDENCE_TSA_URL,
        data=body,
        headers={"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=settings.EVIDENCE_TSA_TIMEOUT) as resp:  # noqa: S310 (configured URL)
        der = resp.read(1_000_000)
    return tsa.from_response(der, digest_hex, nonce)
