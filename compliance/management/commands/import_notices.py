"""import_notices PATH [--source NAME] [--strict]: notices from a CSV file (columns: README)."""

from __future__ import annotations

import contextlib
import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from compliance import services
from compliance.csvinput import CSVFileError, CSVSource

BATCH_SIZE = 2000


class StrictAbort(Exception):
    pass


class Command(BaseCommand):
    help = (
        "Import notices from a CSV file with header "
        "url[,notified_at,reference,content_sha256,hoster,deadline_s,regime]. "
        "Bad rows go to stderr with their line number; the last line on stdout is a JSON summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV file, or - for standard input")
        parser.add_argument("--source", default="import", help="where the notices come from (default: import)")
        parser.add_argument("--strict", action="store_true", help="import nothing if any row is bad; exit 1")

    def handle(self, *args, path: str, source: str, strict: bool, **options):
        try:
            source = services.source_parse(source)
        except services.NoticeInputError as exc:
            raise CommandError(f"--source: {' '.join(exc.errors['source'])}", returncode=2) from None
        csv_source = CSVSource(
            path=path,
            required=("url",),
            optional=("notified_at", "reference", "content_sha256", "hoster", "deadline_s", "regime"),
        )
        try:
            rows, total_bytes, counter = csv_source.open()
        except CSVFileError as exc:
            raise CommandError(str(exc), returncode=2) from None

        now = timezone.now()
        hosters = services.HosterLookup()
        summary = {"imported": 0, "duplicates": 0, "rejected": 0, "repeats": 0}
        show_progress = sys.stderr.isatty()
        progress = tqdm(
            total=total_bytes, unit="B", unit_scale=True, desc="importing", disable=not show_progress, file=sys.stderr
        )

        # Messages of the rows read since the last batch was written, so that stderr lists every
        # problem in file order (validation at reading, duplicates and write failures at writing).
        messages: list[tuple[int, str]] = []

        def flush(batch: list[services.NoticeInput], lines: list[int]) -> None:
            if batch:
                result = services.notice_import_batch(rows=batch, source=source, now=now)
                summary["imported"] += result.imported
                summary["duplicates"] += result.duplicates
                summary["repeats"] += result.repeats
                summary["rejected"] += len(result.rejected_rows)
                messages.extend((lines[i], reason) for i, reason in result.rejected_rows)
                for i, earlier in result.duplicate_rows:
                    where = f"as on line {lines[earlier]}" if earlier is not None else f"already in source {source!r}"
                    messages.append((lines[i], f"duplicate reference {batch[i].reference!r} ({where}); skipped"))
            if messages:
                progress.clear()
                for line, message in sorted(messages):
                    self.stderr.write(f"line {line}: {message}")
                messages.clear()

        try:
            # --strict: all batches in one transaction, rolled back if any row was bad.
            with transaction.atomic() if strict else contextlib.nullcontext():
                batch: list[services.NoticeInput] = []
                lines: list[int] = []
                for row in rows:
                    if row.error is None:
                        try:
                            batch.append(
                                services.notice_input_parse(
                                    url=row.values["url"],
                                    notified_at=row.values.get("notified_at"),
                                    reference=row.values.get("reference"),
                                    content_sha256=row.values.get("content_sha256"),
                                    hoster=row.values.get("hoster"),
                                    deadline_s=row.values.get("deadline_s"),
                                    regime=row.values.get("regime"),
                                    now=now,
                                    hosters=hosters,
                                )
                            )
                            lines.append(row.line)
                        except services.NoticeInputError as exc:
                            row.error = str(exc)
                    if row.error is not None:
                        summary["rejected"] += 1
                        messages.append((row.line, row.error))
                    if len(batch) >= BATCH_SIZE or len(messages) >= BATCH_SIZE:
                        flush(batch, lines)
                        batch, lines = [], []
                        progress.update(counter.bytes_read - progress.n)
                flush(batch, lines)
                progress.update(counter.bytes_read - progress.n)
                if strict and summary["rejected"]:
                    raise StrictAbort
        except StrictAbort:
            progress.close()
            self.stderr.write(f"--strict: {summary['rejected']} bad row(s), nothing imported")
            self.stdout.write(
                json.dumps({"imported": 0, "duplicates": 0, "rejected": summary["rejected"], "repeats": 0})
            )
            sys.exit(1)
        progress.close()
        self.stdout.write(json.dumps(summary))
