"""runprobe --vantage NAME: a probe of a remote vantage (monitor/probe.py); wiring and nothing else.

Needs MONITOR_BROKER_URL (the probe's own RabbitMQ user) and its vantage settings only: manage.py
starts it without a database, SECRET_KEY or e-mail settings (config/settings.py IS_PROBE).
"""

from __future__ import annotations

import logging

from django.core.management.base import BaseCommand, CommandError

from monitor import probe


class Command(BaseCommand):
    help = "Run a probe: take check batches for one vantage from RabbitMQ and send back observations."

    def add_arguments(self, parser):
        parser.add_argument("--vantage", required=True, help="the vantage's name in MONITOR_VANTAGES")

    def handle(self, *args, vantage: str, **options):
        logging.getLogger("monitor").setLevel(logging.INFO)
        try:
            probe.run(vantage)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
