"""Intake's ranges (compliance/services.py notice_input_parse): every value is checked before any
write, the same on both databases, and whatever passes can be read, reported and drained.

The cases that once slipped through: `notified_at=0001-01-01T00:00:00+05:00` answered 400 by the
API but saved on PostgreSQL (as a BC timestamp nobody could read back), a 500 on SQLite; a huge
deadline_s an OverflowError."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from compliance import services
from compliance.models import Notice

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "http://files.example.org/a.jpg"


def parse(**fields):
    return services.notice_input_parse(url=fields.pop("url", URL), now=NOW, **fields)


def errors_of(**fields) -> dict[str, list[str]]:
    with pytest.raises(services.NoticeInputError) as excinfo:
        parse(**fields)
    return excinfo.value.errors


# --- The ranges, at their edges ------------------------------------------------------------------


def test_notified_at_from_the_first_second_of_2000_is_accepted_and_stored_in_utc():
    assert parse(notified_at="2000-01-01T01:00:00+01:00").notified_at == datetime(2000, 1, 1, tzinfo=UTC)
    assert "before 2000-01-01" in errors_of(notified_at="2000-01-01T00:59:59+01:00")["notified_at"][0]


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00-05:00", "1969-12-31T23:59:59Z", "1999-12-31T23:59Z"]
)
def test_notified_at_before_2000_is_refused(value):
    assert "before 2000-01-01" in errors_of(notified_at=value)["notified_at"][0]


def test_notified_at_up_to_five_minutes_ahead_of_the_clock_is_accepted():
    assert parse(notified_at=NOW + timedelta(minutes=5)).notified_at == NOW + timedelta(minutes=5)
    assert (
        "in the future" in errors_of(notified_at=(NOW + timedelta(minutes=5, seconds=1)).isoformat())["notified_at"][0]
    )


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:59:59+14:00",
        "2026-03-01T12:00+25:00",
        "2026-03-01T12:00+14:01",
        "2026-03-01T12:00-23:30",
    ],
)
def test_notified_at_far_ahead_or_with_an_impossible_offset_is_refused_without_overflow(value):
    assert errors_of(notified_at=value)["notified_at"]


def test_a_notified_at_with_any_real_utc_offset_is_stored_in_utc():
    assert parse(notified_at="2026-03-02T01:59:00+14:00").notified_at == datetime(2026, 3, 1, 11, 59, tzinfo=UTC)
    assert parse(notified_at="2026-02-28T23:59:00-12:00").notified_at == datetime(2026, 3, 1, 11, 59, tzinfo=UTC)
    assert "beyond ±14:00" in errors_of(notified_at="2026-03-01T12:00+15:30")["notified_at"][0]


@pytest.mark.parametrize(("value", "accepted"), [(1, True), ("60", True), (31_536_000, True), (0, False)])
def test_deadline_s_lies_between_a_second_and_a_year(value, accepted):
    if accepted:
        assert parse(deadline_s=value).deadline_s == int(value)
    else:
        assert errors_of(deadline_s=value)["deadline_s"] == [services.DEADLINE_RANGE_MESSAGE]


@pytest.mark.parametrize(
    "value", [31_536_001, 3_000_000_000, "99999999999999999999", 10**20, "9" * 5000, "-1", "0", "1e5", "3600.5", True]
)
def test_a_deadline_s_out_of_range_or_not_a_whole_number_is_a_field_error(value):
    assert errors_of(deadline_s=value)["deadline_s"]


@pytest.mark.parametrize("field", ["reference", "hoster", "regime", "notified_at", "content_sha256", "deadline_s"])
def test_a_nul_character_in_any_text_is_refused(field):
    assert "NUL" in errors_of(**{field: "a\x00b"})[field][0]
    assert "NUL" in errors_of(url="http://x.example/\x00")["url"][0]


def test_a_lone_surrogate_is_refused():
    assert "surrogate" in errors_of(reference="R\ud800")["reference"][0]


def test_text_lengths_are_the_columns_sizes():
    assert parse(reference="r" * 200, source="s" * 100).reference == "r" * 200
    assert "longer than 200" in errors_of(reference="r" * 201)["reference"][0]
    assert "longer than 100" in errors_of(source="s" * 101)["source"][0]
    assert "longer than 2,048" in errors_of(url="http://x.example/" + "a" * 2040)["url"][0]
    assert "must not be empty" in errors_of(source="  ")["source"][0]


def test_every_problem_of_a_notice_is_reported_at_once():
    errors = errors_of(url="ftp://x/", notified_at="0001-01-01T00:00:00+05:00", deadline_s="1" * 30, reference="\x00")
    assert set(errors) == {"url", "notified_at", "deadline_s", "reference"}


# --- The API never saves what it answers 400 to --------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"notified_at": "0001-01-01T00:00:00+05:00"}, "notified_at", "before 2000-01-01"),
        ({"notified_at": "9999-12-31T23:59:59-05:00"}, "notified_at", "in the future"),
        ({"notified_at": "2026-01-05T10:00:00+23:30"}, "notified_at", "beyond ±14:00"),  # PostgreSQL: a 500
        ({"deadline_s": 99999999999999999999}, "deadline_s", "between 1 and 31536000"),
        ({"deadline_s": 3_000_000_000}, "deadline_s", "between 1 and 31536000"),
        ({"deadline_s": 0}, "deadline_s", "between 1 and 31536000"),
        ({"reference": "R\x00"}, "reference", "Null characters are not allowed"),
        ({"source": "s" * 101}, "source", "no more than 100"),
        ({"source": "hotline\x00"}, "source", "Null characters are not allowed"),
        ({"hoster": "x" * 101}, "hoster", "no more than 100"),
    ],
)
def test_the_api_answers_400_to_a_value_out_of_range_and_saves_nothing(api, analyst, payload, field, message):
    response = api.as_user(analyst).post("/api/v1/notices/", {"url": URL, **payload}, format="json")
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()[field])
    assert Notice.objects.count() == 0
    assert api.as_user(analyst).get("/api/v1/notices/").status_code == 200


def test_the_api_answer_is_built_inside_the_writes_transaction(api, analyst, monkeypatch):
    """Whatever fails after the write (here: the answer itself) leaves nothing saved."""
    from compliance import apis

    def broken(*args, **kwargs):
        raise RuntimeError("the answer cannot be built")

    monkeypatch.setattr(apis.NoticeSerializer, "to_representation", broken)
    client = api.as_user(analyst)
    client.raise_request_exception = False
    response = client.post("/api/v1/notices/", {"url": URL}, format="json")
    assert response.status_code == 500
    assert Notice.objects.count() == 0


def test_the_edges_of_every_range_can_be_stored_read_reported_and_drained(api, analyst, prompt_hoster, settings):
    """A notice at each edge (oldest notified_at with the longest deadline, newest with the
    shortest) is stored by the database and read back by the API, the report, the export and the
    drains without an error."""
    from compliance.notifications import drain_notifications
    from monitor.check_drain import claim

    settings.MONITOR_RDAP = False
    now = timezone.now()
    client = api.as_user(analyst)
    for payload in (
        {"url": "http://old.example/a", "notified_at": "2000-01-01T00:00:00Z", "deadline_s": 31_536_000},
        {"url": "http://new.example/a", "notified_at": (now + timedelta(minutes=4)).isoformat(), "deadline_s": 1},
        {"url": "http://ref.example/a", "reference": "r" * 200, "source": "s" * 100, "hoster": "prompt"},
    ):
        response = client.post("/api/v1/notices/", payload, format="json")
        assert response.status_code == 201, response.content
    assert client.get("/api/v1/notices/").json()["count"] == 3
    for notice in Notice.objects.all():
        assert client.get(f"/api/v1/notices/{notice.pk}/").status_code == 200
    assert client.get("/api/v1/metrics/hosters/").status_code == 200
    export = client.get("/api/v1/export/notices.csv")
    assert export.status_code == 200 and len(b"".join(export.streaming_content).splitlines()) == 4
    out = io.StringIO()
    call_command("compliance_report", "--format", "json", stdout=out)
    assert json.loads(out.getvalue())
    leased = claim(now=now + timedelta(days=400), limit=10, token=uuid.uuid4(), lease_s=60)
    assert len(leased) == 3
    drain_notifications()


def test_the_admin_add_form_refuses_the_same_values_with_the_same_reasons(client, analyst):
    client.force_login(analyst)
    response = client.post(
        "/admin/compliance/notice/add/",
        {"url": URL, "notified_at": "0001-01-01T00:00:00+05:00", "source": "admin", "deadline_s": "31536001"},
    )
    assert response.status_code == 200  # the form again, with its errors
    body = response.content.decode()
    assert "is before 2000-01-01" in body
    assert Notice.objects.count() == 0
    response = client.post("/admin/compliance/notice/add/", {"url": URL, "source": "admin", "deadline_s": "3600"})
    assert response.status_code == 302
    assert Notice.objects.get().source == "admin"
