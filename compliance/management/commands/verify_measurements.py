"""verify_measurements [--hoster SLUG]: every measured notice's stored timing is the replay of its checks.

Measurements are evidence: `status`, `takedown_at`, `last_online_at`, the streaks and counters of a
notice must follow from its append-only checks by the accounting rules (compliance/rules.py), so
that every figure on a scorecard can be traced to the checks behind it. This recomputes them all
(safe while the monitor runs: it only reads) and reports each field that differs on stderr. The
last line on stdout is JSON `{"notices": N, "consistent": N, "inconsistent": N}`; exit 1 when any
notice is inconsistent.
"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from compliance import selectors
from compliance.models import Hoster, Notice


class Command(BaseCommand):
    help = "Check that every measured notice's timing fields are the replay of its checks."

    def add_arguments(self, parser):
        parser.add_argument("--hoster", help="only this hoster's notices (slug)")

    def handle(self, *args, hoster: str | None = None, **options):
        notices = Notice.objects.all()
        if hoster:
            try:
                notices = notices.filter(hoster=Hoster.objects.get(slug=hoster))
            except Hoster.DoesNotExist:
                raise CommandError(f"no hoster {hoster!r}", returncode=2) from None
        verified, inconsistent = 0, set()
        for item in selectors.measurement_discrepancies(notices):
            if isinstance(item, int):
                verified += item
                continue
            inconsistent.add(item.notice_id)
            self.stderr.write(
                f"notice {item.notice_id}: {item.field} is {item.stored!r}, its checks give {item.replayed!r}"
            )
        summary = {"notices": verified, "consistent": verified - len(inconsistent), "inconsistent": len(inconsistent)}
        self.stdout.write(json.dumps(summary))
        if inconsistent:
            sys.exit(1)
