"""Tickets and observations on the wire (monitor/dispatch.py, monitor/broker.py): no broker needed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from monitor import broker, dispatch, recheck
from monitor.fetch import Observation

AT = datetime(2026, 3, 1, 11, 0, 0, 123457, tzinfo=UTC)


def claimed(**kw) -> recheck.Claimed:
    values = dict(
        id=42,
        url="http://files.example/a.jpg",
        hoster_id=7,
        content_sha256="ab" * 32,
        due_at=AT,
        trigger="hoster_claim",
        reported_removed_at=AT,
        check_requested_at=None,
    )
    values.update(kw)
    return recheck.Claimed(**values)


def test_a_ticket_gives_back_exactly_what_recording_needs():
    token = uuid.uuid4()
    ticket = dispatch.read_ticket(dispatch.ticket(claimed(), vantage="lon", token=token))
    assert ticket == dispatch.Ticket("lon", token, 42, AT, "hoster_claim", AT, None, 7, "ab" * 32)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: "ams" + t[3:],  # another vantage
        lambda t: t.replace("|42|", "|43|", 1),  # another notice
        lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # another signature
        lambda t: t.rsplit("|", 1)[0],  # no signature
        lambda t: 42,
        lambda t: "x" * 1000,
    ],
)
def test_a_ticket_changed_in_any_way_is_refused(tamper):
    text = dispatch.ticket(claimed(), vantage="lon", token=uuid.uuid4())
    assert dispatch.read_ticket(tamper(text)) is None


def test_a_ticket_signed_with_another_secret_is_refused(settings):
    text = dispatch.ticket(claimed(), vantage="lon", token=uuid.uuid4())
    settings.SECRET_KEY = "another deployment"
    assert dispatch.read_ticket(text) is None


def test_an_observation_survives_the_wire_exactly_and_carries_no_body():
    obs = Observation(
        url="http://files.example/a.jpg",
        started_at=AT,
        duration_ms=12,
        dns_outcome="resolved",
        resolved_ip="192.0.2.7",
        http_status=200,
        body_sha256="cd" * 32,
        byte_count=1234,
        is_body_complete=True,
    )
    wire = broker.loads(broker.dumps(broker.encode_observation(obs)))
    assert broker.decode_observation(wire) == obs
    assert broker.decode_observation(None) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("resolved_ip", "not an address"), ("body_sha256", "x" * 64), ("http_status", "200"), ("byte_count", -1)],
)
def test_a_malformed_observation_is_refused(field, value):
    wire = broker.encode_observation(Observation(url="http://a.example/", started_at=AT, http_status=200))
    wire[[f for f in broker._FIELDS].index(field)] = value
    with pytest.raises((TypeError, ValueError)):
        broker.decode_observation(wire)
