"""sandbox: run the sandbox internet (demo/sandbox/world.py) in the foreground until stopped.

A real DNS server and HTTP servers on 127.0.0.0/8 serving a fictional hosting market. Point the
monitor at it with `MONITOR_NAMESERVERS=<the printed address>` and
`MONITOR_ALLOWED_PRIVATE_NETWORKS=127.0.0.0/8`. `make demo` starts it for you.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from demo.sandbox import world as market


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise CommandError(f"{text!r} is not host:port")
    return host.strip("[]"), int(port)


class Command(BaseCommand):
    help = "Run the sandbox internet (a fictional hosting market on loopback) until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dns",
            default="{}:{}".format(*market.DEFAULT_DNS),
            help="address of the DNS server, host:port (default %(default)s)",
        )
        parser.add_argument(
            "--http-port",
            type=int,
            default=market.DEFAULT_HTTP_PORT,
            help="port of every site's HTTP server (default %(default)s)",
        )
        parser.add_argument(
            "--smtp",
            default="",
            help="host:port of the hosters' mail server (e.g. {}:{}): their clocks start at the notice e-mail".format(
                *market.DEFAULT_SMTP
            ),
        )
        parser.add_argument(
            "--deadline",
            type=float,
            default=market.DEFAULT_LIVE_DEADLINE_S,
            help="seconds: the live notices' deadline, the unit of the hosters' clocks (default %(default)s)",
        )

    def handle(self, *args, dns: str, http_port: int, deadline: float, smtp: str, **options):
        from django.conf import settings

        world = market.World(
            http_port=http_port,
            dns=parse_hostport(dns),
            deadline_s=deadline,
            smtp=parse_hostport(smtp) if smtp else None,
            asn_zone=settings.MONITOR_ASN_ZONE,
            asn_zone6=settings.MONITOR_ASN_ZONE6,
            asn_name_zone=settings.MONITOR_ASN_NAME_ZONE,
        )
        try:
            world.start()
        except OSError as exc:
            raise CommandError(f"the sandbox could not bind its addresses: {exc}") from None
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        self.stdout.write(f"sandbox DNS on {world.nameserver} (MONITOR_NAMESERVERS={world.nameserver})")
        if smtp:
            self.stdout.write(f"hosters' mail server on {smtp} (EMAIL_URL=smtp://{smtp})")
        for site in market.SITES:
            via = f" via {site.cdn}" if site.cdn else ""
            self.stdout.write(f"  http://{site.host}:{world.http_port}/  {site.served_ip}  {site.hoster}{via}")
        self.stdout.write("sandbox ready", ending="\n")
        self.stdout.flush()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            world.stop()
            self.stdout.write("sandbox stopped")
