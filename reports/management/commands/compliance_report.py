"""compliance_report [--format json|csv] [--from ISO] [--to ISO] [--regime R] (README, "Commands").

One row per hoster over the notices notified in [from, to): the same rows as
`/api/v1/metrics/hosters/`, from the same implementation (reports.scorecards).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from compliance.models import Notice
from reports import exports, periods, scorecards


class Command(BaseCommand):
    help = (
        "Compliance per hoster over notices notified in [from, to): notices, removed, within, late, pending, open, "
        "compliance_rate, median_ttt_s, p90_ttt_s, km_median_ttt_s, then regime, taken_down, reappeared, "
        "server_gone, server_gone_provisional, repeats, withdrawn (see docs/methodology.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=["json", "csv"], default="json")
        parser.add_argument("--from", dest="start", help="ISO 8601 date or datetime (inclusive); default: the start")
        parser.add_argument("--to", dest="end", help="ISO 8601 date or datetime (exclusive); default: now")
        parser.add_argument(
            "--regime",
            choices=list(Notice.Regime.values),
            help="only notices of this regime (covenant, order, other); default: all regimes together",
        )
        parser.add_argument(
            "--all-columns",
            action="store_true",
            help="add the other figures (intervals, reappearances, deadlines, methodology version, ...)",
        )

    def handle(self, *args, format, start, end, regime, all_columns, **options):
        now = timezone.now()
        try:
            asked = periods.Period.parse({"from": start, "to": end}, now, default=None, bound_names=("--from", "--to"))
        except periods.PeriodError as exc:
            raise CommandError(str(exc), returncode=2) from None
        period = asked or periods.custom(None, None)  # no bounds: every notice, computed on the spot
        rows = [
            scorecards.report_row(m, all_columns=all_columns)
            for m in scorecards.report_rows(period, now=now, regime=regime)
        ]
        if format == "json":
            self.stdout.write(json.dumps(rows, indent=2))
            return
        exports.write_report_csv(self.stdout, rows, scorecards.report_columns(all_columns=all_columns))
