"""RabbitMQ between the monitor and its probes: the topology, connections, and what messages carry.

Topology (declared by the monitor, which alone may configure; a probe declares nothing):

    monitor --publish--> exchange "checks" (direct) --routing key NAME--> queue "checks.NAME" --> probe NAME
    probe   --publish--> exchange "results" (fanout) -------------------> queue "results.monitor" --> monitors

- A check batch (one message per chunk of claimed notices for one vantage): `{"checks": [[notice_id,
  url, start_by, ticket], ...]}`. `start_by` is a UNIX time: a check the probe could not start by
  then comes back unchecked (the notice is due again at once), so no check outlives its lease.
  `ticket` is opaque to the probe (monitor/dispatch.py signs it): it names the vantage, the lease
  and what recording needs, so the monitor takes back only what it handed out.
- A result message: `{"probe": "host:pid", "results": [[ticket, observation | null], ...]}`, or a
  heartbeat `{"probe": ..., "heartbeat": {"in_flight": n}}`. Sent with the AMQP `user_id`
  property, which RabbitMQ checks against the connection's user: the monitor trusts it to name
  the probe (`probe-NAME`). An observation is monitor/fetch.py's `Observation` as a list of its
  fields (`encode_observation`): never a body, only its SHA-256 and length.

Messages are persistent and queues durable: a broker restart keeps what was waiting. Probes
acknowledge a batch only after its results are published and confirmed by the broker (late
acknowledgement): a probe killed mid-batch gets the batch again (or another probe of the vantage
does) and the monitor records each check once (the lease is released at the first record).

Why kombu and not Celery: Celery's worker declares queues, event and remote-control exchanges of
its own (pidbox, celeryev), so a probe could not run with the permissions of one queue and one
exchange; and its task model runs a task per message synchronously, where a probe runs one
long-lived asyncio check client (its connections, DNS cache and concurrency span batches) fed by
many batches at once. kombu (Celery's messaging layer) gives the connection handling and
reconnection without that model.
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import astuple, fields
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from monitor import addresses
from monitor.fetch import Observation

CHECKS_EXCHANGE = "checks"
RESULTS_EXCHANGE = "results"
RESULTS_QUEUE = "results.monitor"
CONTENT_TYPE = "application/json"
HEARTBEAT_S = 5.0  # a probe says it is alive this often (MONITOR_PROBE_STALE judges silence)
AMQP_HEARTBEAT_S = 30  # the connection's own heartbeat: a half-open connection is noticed

PROBE_ID = f"{socket.gethostname()}:{os.getpid()}"[:100]


def connection(url: str, *, heartbeat: int = 0):
    """A kombu connection with publisher confirms (a publish returns once the broker has it).

    `amqps://` is TLS with the broker's certificate verified against the system's CAs (or the
    file in `SSL_CERT_FILE`) and its host name checked: a probe in a foreign network must not hand
    its results, or take its batches, from whoever answers on the way.
    """
    import ssl

    from kombu import Connection

    tls = False
    if url.startswith("amqps://"):
        tls = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": urlsplit(url).hostname}
    return Connection(
        url,
        ssl=tls,
        heartbeat=heartbeat,
        connect_timeout=5,
        transport_options={"confirm_publish": True, "max_retries": 0},
    )


def exchanges():
    from kombu import Exchange

    checks = Exchange(CHECKS_EXCHANGE, type="direct", durable=True)
    results = Exchange(RESULTS_EXCHANGE, type="fanout", durable=True)
    return checks, results


def checks_queue(vantage_name: str):
    from kombu import Queue

    checks, _results = exchanges()
    return Queue(f"checks.{vantage_name}", exchange=checks, routing_key=vantage_name, durable=True)


def results_queue():
    from kombu import Queue

    _checks, results = exchanges()
    return Queue(RESULTS_QUEUE, exchange=results, durable=True)


def declare(channel, probe_names) -> None:
    """The monitor's topology: both exchanges, the results queue, one queue per probe vantage."""
    for exchange in exchanges():
        exchange(channel).declare()
    results_queue()(channel).declare()
    for name in probe_names:
        checks_queue(name)(channel).declare()


def dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def loads(body: bytes | str) -> object:
    return json.loads(body)


# --- Observations on the wire -----------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = tuple(f.name for f in fields(Observation))
_STARTED = _FIELDS.index("started_at")


def encode_observation(obs: Observation | None) -> list | None:
    if obs is None:
        return None
    values = list(astuple(obs))
    values[_STARTED] = (obs.started_at - _EPOCH) // _US  # microseconds, exactly
    return values


def decode_observation(values: list | None) -> Observation | None:
    """An observation from a probe. Raises ValueError/TypeError for anything malformed."""
    if values is None:
        return None
    if not isinstance(values, list) or len(values) != len(_FIELDS):
        raise ValueError("an observation has the wrong shape")
    data = dict(zip(_FIELDS, values, strict=True))
    if not isinstance(data["started_at"], int):
        raise TypeError("started_at is not a time")
    data["started_at"] = _EPOCH + data["started_at"] * _US
    for name in ("url", "dns_outcome", "error_kind", "refused_reason", "body_sha256", "content_encoding"):
        if not isinstance(data[name], str):
            raise TypeError(f"{name} is not text")
    for name in ("duration_ms", "error_hop", "byte_count", "redirect_count"):
        if not isinstance(data[name], int) or data[name] < 0:
            raise TypeError(f"{name} is not a count")
    if data["http_status"] is not None and not isinstance(data["http_status"], int):
        raise TypeError("http_status is not a number")
    if data["resolved_ip"] is not None and (
        not isinstance(data["resolved_ip"], str) or addresses.parse_ip(data["resolved_ip"]) is None
    ):
        raise TypeError("resolved_ip is not an IP address")
    if data["body_sha256"] and not _SHA256.match(data["body_sha256"]):
        raise TypeError("body_sha256 is not a SHA-256")
    if len(data["error_kind"]) > 40 or (data["http_status"] is not None and not 100 <= data["http_status"] <= 999):
        raise TypeError("error_kind or http_status out of range")
    if not isinstance(data["final_url"], str) or not isinstance(data["error_detail"], str):
        raise TypeError("final_url is not text")
    return Observation(**data)
