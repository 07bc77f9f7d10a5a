"""record_bounce [PATH|-]: record a bounce (a delivery status notification) of a notice e-mail.

Point the sender address's mailbox at it, e.g. an MTA alias `| manage.py record_bounce -`, or run
it on saved messages. Prints one JSON line: which e-mail bounced, or `"email": null` if the
message is not a bounce of ours (exit 0 either way, so the MTA does not bounce the bounce).
"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from compliance.notifications import bounce_record


class Command(BaseCommand):
    help = "Record a bounce (RFC 3464 delivery status notification) of a notice e-mail, read from PATH or stdin."

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", default="-", help="a message file, or - for stdin")

    def handle(self, *args, path: str, **options):
        try:
            raw = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}", returncode=2) from None
        result = bounce_record(raw)
        self.stdout.write(
            json.dumps(
                {"email": result.email_id, "recipient": result.recipient, "status": result.status}, sort_keys=True
            )
        )
