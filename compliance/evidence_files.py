"""Reading the evidence: the latest digest of the chains, and a notice's signed evidence file.

- `latest_digest` / `digest_summary`: the newest `evidence.digest` audit event (made by the
  monitor's digest drain, monitor/evidence_digest.py), for /monitor/health/ and `verify_evidence`.
- `notice_bundle`: one notice's evidence (notice, checks, attributions, e-mails and their delivery
  events, audit events, and the chain proof: every row's hash, the heads, the latest digest) as
  a ZIP with `evidence.json`, its Ed25519 signature `evidence.json.sig` (key `EVIDENCE_SIGNING_KEY`),
  the public key and a README saying how to verify it (docs/operations.md); `verify_bundle` checks one.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from compliance import evidence
from compliance.models import Attribution, AuditEvent, Check, DeliveryEvent, Notice, NoticeEmail

DIGEST_ACTION = "evidence.digest"


def latest_digest() -> AuditEvent | None:
    return AuditEvent.objects.filter(action=DIGEST_ACTION).order_by("-id").first()


def digest_summary() -> dict | None:
    """The latest digest for /monitor/health/."""
    event = latest_digest()
    if event is None:
        return None
    detail = event.detail or {}
    stamp = detail.get("tsa") or {}
    return {
        "at": event.at,
        "digest": detail.get("digest", ""),
        "parts": detail.get("parts", {}),
        "tsa_time": stamp.get("gen_time"),
        "tsa_authority": stamp.get("authority", ""),
        "tsa_error": stamp.get("error", ""),
        "is_stamped": bool(stamp.get("token")),
    }


# --- A notice's signed evidence file -----------------------------------------------------------


def signing_key() -> ed25519.Ed25519PrivateKey:
    raw = settings.EVIDENCE_SIGNING_KEY
    if not raw:
        raise ImproperlyConfigured("EVIDENCE_SIGNING_KEY is not set: evidence files cannot be signed")
    try:
        seed = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise ImproperlyConfigured("EVIDENCE_SIGNING_KEY is not base64") from exc
    if len(seed) != 32:
        raise ImproperlyConfigured("EVIDENCE_SIGNING_KEY must be 32 bytes (base64)")
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def public_key_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _rows(model, qs, extra=()) -> list[dict]:
    names = [f.attname for f in model._meta.concrete_fields] + list(extra)
    return [dict(zip(names, values, strict=True)) for values in qs.values_list(*names)]


def _chain_proof(chain: evidence.Chain, rows: list[dict], head: str) -> dict:
    """Recompute the chain from the rows as given: what the authority can redo."""
    prev = evidence.GENESIS
    links = []
    for row in rows:
        values = [row[a] for a in chain.fields]
        computed = chain.link(prev, values)
        links.append(
            {
                "id": row["id"],
                "prev": prev,
                "canonical": chain.canonical(values).decode(),
                "hash": row["chain_hash"],
                "recomputed": computed,
            }
        )
        prev = row["chain_hash"]
    return {
        "fields": list(chain.fields),
        "label": chain.label,
        "rule": 'chain_hash = SHA-256(prev + "\\n" + JSON([label, *fields]))',
        "genesis": evidence.GENESIS,
        "head": head,
        "links": links,
        "intact": all(link["hash"] == link["recomputed"] for link in links) and prev == (head or evidence.GENESIS),
    }


def notice_evidence(notice: Notice, *, now: datetime) -> dict:
    checks = _rows(Check, Check.objects.filter(notice=notice).order_by("id"))
    attributions = _rows(Attribution, Attribution.objects.filter(notice=notice).order_by("id"))
    emails = _rows(NoticeEmail, NoticeEmail.objects.filter(notice=notice).order_by("id"))
    deliveries = _rows(DeliveryEvent, DeliveryEvent.objects.filter(email__notice=notice).order_by("id"))
    audit = _rows(AuditEvent, AuditEvent.objects.filter(notice=notice).order_by("id"))
    digest = latest_digest()
    audit_chain = AuditEvent.evidence_chain
    return {
        "format": "takedown-monitor evidence 1",
        "exported_at": now,
        "notice": _rows(Notice, Notice.objects.filter(pk=notice.pk))[0],
        "checks": checks,
        "attributions": attributions,
        "emails": emails,
        "delivery_events": deliveries,
        "audit_events": audit,
        "chain_proof": {
            "checks": _chain_proof(Check.evidence_chain, checks, notice.check_chain_head),
            "attributions": _chain_proof(Attribution.evidence_chain, attributions, notice.attribution_chain_head),
            # The audit trail is one chain: each of this notice's events with its own link.
            "audit_events": {
                "fields": list(audit_chain.fields),
                "label": audit_chain.label,
                "links": [{"id": e["id"], "hash": e["chain_hash"]} for e in audit],
            },
            "latest_digest": (
                {"at": digest.at, "audit_event_id": digest.pk, "chain_hash": digest.chain_hash, **digest.detail}
                if digest
                else None
            ),
        },
    }


class _Encoder(DjangoJSONEncoder):
    """Times exactly as the chains hash them (UTC, microseconds); DjangoJSONEncoder keeps milliseconds."""

    def default(self, o):
        if isinstance(o, datetime):
            return evidence.utc_text(o)
        return super().default(o)


def notice_bundle(notice: Notice, *, now: datetime | None = None) -> bytes:
    """The signed evidence file (ZIP) of one notice."""
    key = signing_key()
    now = now or timezone.now()
    payload = json.dumps(
        notice_evidence(notice, now=now), cls=_Encoder, indent=1, sort_keys=True, ensure_ascii=False
    ).encode()
    signature = key.sign(payload)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("evidence.json", payload)
        zf.writestr("evidence.json.sig", signature)
        zf.writestr("public_key.pem", public_key_pem(key))
        zf.writestr("README.txt", BUNDLE_README.format(notice=notice.pk))
    return buf.getvalue()


def verify_bundle(data: bytes, *, public_key_pem_bytes: bytes | None = None) -> dict:
    """Check a bundle's signature (with the given public key, else the one inside) and its chain
    proof. Returns {"signature": bool, "chains_intact": bool, "notice": id}."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        payload = zf.read("evidence.json")
        signature = zf.read("evidence.json.sig")
        pem = public_key_pem_bytes or zf.read("public_key.pem")
    public = serialization.load_pem_public_key(pem)
    try:
        public.verify(signature, payload)
        signed = True
    except Exception:
        signed = False
    doc = json.loads(payload)
    proof = doc["chain_proof"]
    return {
        "signature": signed,
        "chains_intact": bool(proof["checks"]["intact"] and proof["attributions"]["intact"]),
        "notice": doc["notice"]["id"],
    }


BUNDLE_README = """Evidence of notice {notice}, exported by the takedown compliance monitor.

evidence.json      the notice, its checks, attributions, e-mails, delivery events, audit events,
                   and the chain proof (every row's hash and how it is computed)
evidence.json.sig  the Ed25519 signature of evidence.json, raw 64 bytes
public_key.pem     the signing key's public half: compare it with the one the hotline publishes

Verify the signature (OpenSSL 3):

    openssl pkeyutl -verify -pubin -inkey public_key.pem -rawin -in evidence.json -sigfile evidence.json.sig

Recompute the chains: for each of checks and attributions, in id order, starting from 64 zeros,
    chain_hash = SHA-256(previous hash + "\\n" + canonical)
where `canonical` (given with each link) is the compact JSON of [label, field values...] with the
fields listed in chain_proof (times as integer microseconds since 1970-01-01 UTC, IP addresses
exploded, JSON keys sorted): compare it with the row's fields. The last hash is the notice's head; the latest
digest (timestamped by an RFC 3161 authority when configured) commits to every notice's head.
"""
