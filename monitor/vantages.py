"""Vantage points: the named places checks come from (pure: parsing and rotation, no I/O).

A vantage is a source address, the resolvers its lookups go to, and so the network it sees the
web from. `MONITOR_VANTAGES` lists them, `;`-separated, each `NAME=KIND[:SOURCE][@RESOLVER,...]`:

    ams=local:127.0.0.1@127.53.0.1:10053;fra=local:127.0.0.2;lon=probe

- `NAME`: lower-case letters, digits and `-` (at most 30): recorded on every check (`Check.vantage`);
- `KIND`: `local` (checked by the monitor's own check process, monitor/checker.py) or `probe` (a
  `runprobe --vantage NAME` process elsewhere, reached through RabbitMQ: monitor/probes.py);
- `SOURCE`: the address connections (and DNS queries) are made from (`[::1]` for IPv6); none: the
  system picks, as before;
- `RESOLVER`: `host` or `host:port` (IPv6 `[::1]:53`), comma separated; none: `MONITOR_NAMESERVERS`.

A probe's SOURCE and RESOLVERs apply where the probe runs (its own `MONITOR_VANTAGES` names them);
the monitor only needs `NAME=probe`. The probe's RabbitMQ user is `probe-NAME` (docs/probes.md).

The default is one local vantage named `local` with no source address and the monitor's resolvers:
exactly the monitor without vantages.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

LOCAL = "local"
PROBE = "probe"
DEFAULT_NAME = "local"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")


class VantageError(ValueError):
    """MONITOR_VANTAGES cannot be read (the message says where)."""


@dataclass(frozen=True)
class Vantage:
    name: str
    kind: str = LOCAL
    source: str | None = None  # the local address connections are made from
    nameservers: tuple[tuple[str, int], ...] | None = None  # None: MONITOR_NAMESERVERS

    @property
    def is_probe(self) -> bool:
        return self.kind == PROBE

    @property
    def queue(self) -> str:
        """The RabbitMQ queue of a probe's check batches."""
        return f"checks.{self.name}"

    @property
    def broker_user(self) -> str:
        """The RabbitMQ user a probe of this vantage connects as (and its results must carry)."""
        return f"probe-{self.name}"


DEFAULT = (Vantage(DEFAULT_NAME),)


def parse(text: str) -> tuple[Vantage, ...]:
    """`MONITOR_VANTAGES` -> vantages (see the module docstring); empty text: the default."""
    out: list[Vantage] = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, spec = part.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name):
            raise VantageError(f"{part!r}: expected NAME=KIND[:SOURCE][@RESOLVER,...] with a name of [a-z0-9-]")
        spec, _at, resolvers = spec.strip().partition("@")
        kind, _colon, source = spec.partition(":")
        if kind not in (LOCAL, PROBE):
            raise VantageError(f"{part!r}: the kind is 'local' or 'probe', not {kind!r}")
        out.append(
            Vantage(
                name=name,
                kind=kind,
                source=_address(source, part) if source else None,
                nameservers=tuple(_nameserver(r, part) for r in resolvers.split(",") if r.strip()) or None,
            )
        )
    names = [v.name for v in out]
    if len(set(names)) != len(names):
        raise VantageError(f"a vantage name is used twice: {names}")
    return tuple(out) or DEFAULT


def _address(text: str, part: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise VantageError(f"{part!r}: {text!r} is not an IP address") from None


def _nameserver(text: str, part: str) -> tuple[str, int]:
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _sep, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], part)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text, part)
    return _address(host, part), port


def _port(text: str, part: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise VantageError(f"{part!r}: {text!r} is not a port")
    return int(text)


def by_name(vantages: Sequence[Vantage], name: str) -> Vantage | None:
    return next((v for v in vantages if v.name == name), None)


def next_after(last: str | None, order: Sequence[str], available: Sequence[str], *, seed: int = 0) -> str:
    """The vantage for a notice's next check: the first available one after `last` in `order`.

    Consecutive checks of a notice so rotate over the configured vantages; one that is not
    available now (a silent or backlogged probe) is skipped, so its checks go to the others. A
    notice never checked from any of them starts at `seed` (its id), so new notices spread evenly.
    `available` must not be empty.
    """
    if len(available) == 1:
        return available[0]
    start = order.index(last) + 1 if last in order else seed % len(order)
    for i in range(len(order)):
        name = order[(start + i) % len(order)]
        if name in available:
            return name
    return available[0]
