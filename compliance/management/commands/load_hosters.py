"""load_hosters PATH: the curated registry of hosters and their networks (columns: README)."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from compliance import services
from compliance.csvinput import CSVFileError, CSVSource


class Command(BaseCommand):
    help = (
        "Create or update hosters from a CSV with header slug,name,country,abuse_email,asns,prefixes,kind. "
        "ASNs and prefixes are space-separated; a hoster's networks become exactly those listed."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="CSV file, or - for standard input")
        parser.add_argument("--strict", action="store_true", help="load nothing if any row is bad; exit 1")

    def handle(self, *args, path: str, strict: bool, **options):
        source = CSVSource(
            path=path, required=("slug", "name"), optional=("country", "abuse_email", "asns", "prefixes", "kind")
        )
        try:
            rows, _total, _counter = source.open()
        except CSVFileError as exc:
            raise CommandError(str(exc), returncode=2) from None

        good: dict[str, services.HosterInput] = {}
        rejected = 0
        for row in rows:
            if row.error is None:
                try:
                    parsed = services.hoster_input_parse(row.values)
                    if parsed.slug in good:
                        raise ValueError(f"slug {parsed.slug!r} appears twice in the file")
                    good[parsed.slug] = parsed
                except ValueError as exc:
                    row.error = str(exc)
            if row.error is not None:
                rejected += 1
                self.stderr.write(f"line {row.line}: {row.error}")
        if strict and rejected:
            self.stderr.write(f"--strict: {rejected} bad row(s), nothing loaded")
            self.stdout.write(json.dumps({"created": 0, "updated": 0, "rejected": rejected}))
            sys.exit(1)
        try:
            result = services.hosters_load(hosters=list(good.values()))
        except ValueError as exc:
            raise CommandError(f"conflicting networks, nothing loaded: {exc}", returncode=2) from None
        for note in result["moved"]:
            self.stderr.write(f"moved {note} (an unreviewed hoster) to the curated registry")
        self.stdout.write(
            json.dumps({"created": result["created"], "updated": result["updated"], "rejected": rejected})
        )
