"""Notices and checks with known values, written directly (the monitor is not needed)."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta

from django.core.management import call_command
from django.http import StreamingHttpResponse

from compliance.models import Check, Notice

_serial = itertools.count(1)


def notice(hoster, notified_at: datetime | None, *, status="removed", ttt_s=None, deadline_s=86400, **fields):
    """A notice notified at `notified_at`; with `ttt_s`, taken down that many seconds later."""
    n = next(_serial)
    values = dict(
        url=f"http://files{n}.example/img/{n}.jpg",
        scheme="http",
        host=f"files{n}.example",
        path=f"/img/{n}.jpg",
        received_at=notified_at or datetime(2026, 1, 1, tzinfo=UTC),
        notified_at=notified_at,
        deadline_s=deadline_s,
        hoster=hoster,
        status=status,
    )
    if ttt_s is not None:
        values["takedown_at"] = notified_at + timedelta(seconds=ttt_s)
        values["last_online_at"] = values["takedown_at"] - timedelta(seconds=600)
        values.setdefault("last_checked_at", values["takedown_at"] + timedelta(seconds=900))
    values.update(fields)
    return Notice.objects.create(**values)


def checks_for(notice_obj: Notice) -> list[Check]:
    """The checks that would have produced the notice's timing fields: online until
    `last_online_at`, then removed twice (the confirming streak) from `takedown_at`."""
    made = []
    first = notice_obj.notified_at + timedelta(seconds=30)
    made.append(Check.objects.create(notice=notice_obj, checked_at=first, outcome="online", http_status=200))
    if notice_obj.last_online_at and notice_obj.last_online_at > first:
        made.append(
            Check.objects.create(
                notice=notice_obj, checked_at=notice_obj.last_online_at, outcome="online", http_status=200
            )
        )
    if notice_obj.takedown_at:
        for offset in (0, 900):
            made.append(
                Check.objects.create(
                    notice=notice_obj,
                    checked_at=notice_obj.takedown_at + timedelta(seconds=offset),
                    outcome="removed",
                    http_status=404,
                    reason="http_404",
                )
            )
    return made


LEAGUE = "/scorecards/"
BASE = datetime(2025, 6, 1, tzinfo=UTC)  # the hand-computed case's first notification (conftest `case`)


def page(client, user, url, status=200):
    """The page at `url` as `user`, asserting its status."""
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == status, (url, response.status_code)
    return response


def run_report(*args) -> str:
    """`compliance_report` with `args`: its standard output."""
    out = io.StringIO()
    call_command("compliance_report", *args, stdout=out)
    return out.getvalue()


def body_of(response) -> bytes:
    """A streamed response's body (it must be streamed: never built in memory)."""
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body_of(response).decode())))
