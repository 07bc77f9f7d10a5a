"""verify_evidence [--bundle PATH]: recompute the evidence hash chains (compliance/evidence.py).

Every chain (each notice's checks, each notice's attributions, the audit trail) is recomputed link
by link from the rows; each chain's last hash is compared with its stored head; the latest digest
(audit event `evidence.digest`) is recomputed from the rows up to its cut-offs and its RFC 3161
token, if any, checked against it. Safe while the monitor runs (it only reads; rows appended
meanwhile may show as a head mismatch of their notice only if they land between the two reads,
so run it again before acting on one).

The first broken link of each chain kind goes to stderr (`chain`, notice, row id, reason); the
last line on stdout is JSON:
`{"ok": bool, "chains": {"checks": {"rows", "chains", "broken"}, ...}, "digest": {...}|null,
"first_broken": {...}|null, "seconds": s}`; exit 1 when anything is broken.

With `--bundle PATH` it checks a notice's signed evidence file instead (signature and chain proof).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand

from compliance import evidence, tsa
from monitor.evidence import latest_digest, verify_bundle


class Command(BaseCommand):
    help = "Recompute the evidence hash chains; exit 1 and name the first broken link when one is broken."

    def add_arguments(self, parser):
        parser.add_argument("--bundle", help="check a notice's signed evidence file (ZIP) instead")
        parser.add_argument("--public-key", help="with --bundle: the hotline's published public key (PEM)")

    def handle(self, *args, bundle: str | None = None, public_key: str | None = None, **options):
        if bundle:
            pem = Path(public_key).read_bytes() if public_key else None
            result = verify_bundle(Path(bundle).read_bytes(), public_key_pem_bytes=pem)
            result["ok"] = result["signature"] and result["chains_intact"]
            self.stdout.write(json.dumps(result))
            if not result["ok"]:
                sys.exit(1)
            return
        started = time.perf_counter()
        digest_event = latest_digest()
        digest = (digest_event.detail or {}) if digest_event else {}
        parts = digest.get("parts", {})
        reports = []
        first = None
        for chain in evidence.chains():
            cutoff = parts.get(chain.name, {}).get("cutoff")
            report = evidence.verify(chain, cutoff=cutoff)
            reports.append(report)
            if report.first is not None:
                self.stderr.write(self._describe(report.first, report.broken))
                first = first or report.first.as_dict()
        digest_out = None
        broken = sum(r.broken for r in reports)
        if digest_event is not None:
            recomputed = evidence.digest_parts(r for r in reports if r.chain in parts)
            problems = []
            for name, part in parts.items():
                if recomputed.get(name) != part:
                    problems.append(f"{name}: the rows up to id {part.get('cutoff')} no longer give the digest's heads")
            if evidence.digest_of(parts) != digest.get("digest"):
                problems.append("the digest value does not match its parts")
            stamp = digest.get("tsa") or {}
            stamped = None
            if stamp.get("token"):
                import base64

                try:
                    stamped = tsa.verify_token(base64.b64decode(stamp["token"]), digest["digest"]).gen_time.isoformat()
                except tsa.TimestampError as exc:
                    problems.append(f"the time-stamp token: {exc}")
            for problem in problems:
                self.stderr.write(f"digest of {digest_event.at.isoformat()} (audit event {digest_event.pk}): {problem}")
                first = first or {"chain": "digest", "notice_id": None, "row_id": digest_event.pk, "reason": problem}
            broken += len(problems)
            digest_out = {
                "at": digest_event.at.isoformat(),
                "digest": digest.get("digest"),
                "matches": not problems,
                "stamped_at": stamped,
            }
        summary = {
            "ok": broken == 0,
            "chains": {r.chain: r.summary() for r in reports},
            "digest": digest_out,
            "first_broken": first,
            "seconds": round(time.perf_counter() - started, 1),
        }
        self.stdout.write(json.dumps(summary))
        if broken:
            sys.exit(1)

    @staticmethod
    def _describe(b: evidence.Break, count: int) -> str:
        where = f"notice {b.notice_id}" if b.notice_id is not None else "the trail"
        row = f", row {b.row_id}" if b.row_id is not None else ""
        more = f" ({count} broken links in this chain kind)" if count > 1 else ""
        return f"{b.chain}: first broken link at {where}{row}: {b.reason}{more}"
