"""recompute_measurements: every notice's timing replayed from its checks under the current methodology.

Measurements are evidence and the methodology is versioned (compliance/methodology.py): when the
rules change, this brings stored figures to the new version. It replays every measured notice's
append-only checks (compliance/rules.py), rewrites the timing fields that differ (one audit event
per notice changed, with the old and new values), makes open notices the monitor had stopped
checking due again, records the methodology in use, and forgets the reports' rollups so they are
rebuilt. Safe while the monitor runs (each batch locks its notices). `verify_measurements` is clean
afterwards. The last line on stdout is a JSON summary.
"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand
from tqdm import tqdm

from compliance import measurements
from compliance.models import Notice


class Command(BaseCommand):
    help = "Replay every notice's checks under the current methodology version and rewrite its timing fields."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=1000, help="notices per transaction (default 1000)")

    def handle(self, *args, batch: int, **options):
        record = measurements.methodology_record()
        progress = tqdm(total=Notice.objects.count(), unit="notices", disable=not sys.stderr.isatty(), file=sys.stderr)
        result = measurements.notices_remeasure(
            reason=f"recompute_measurements under methodology {record.version}",
            batch=batch,
            progress=progress.update,
        )
        progress.close()
        self.stdout.write(json.dumps(result.as_dict()))
