from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from compliance.models import Notice
from compliance.pseudonym import pseudonymise
from monitor.models import Check


def make_notice(url, hoster=None, **fields):
    now = fields.pop("now", timezone.now())
    defaults = dict(
        url=url,
        scheme="http",
        host=url.split("/")[2],
        path="/",
        received_at=now,
        notified_at=now,
        deadline_s=86400,
        hoster=hoster,
    )
    defaults.update(fields)
    return Notice.objects.create(**defaults)


def test_an_analyst_creates_a_notice(api, analyst):
    response = api.as_user(analyst).post(
        "/api/v1/notices/",
        {"url": "HTTP://Files.Example.org/a.jpg#x", "notified_at": "2026-03-01T12:00:00+01:00", "reference": "H-1"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["url"] == "http://files.example.org/a.jpg"
    assert body["notified_at"].startswith("2026-03-01T12:00:00+01:00")  # shown in Europe/Amsterdam
    assert body["deadline_at"].startswith("2026-03-02T12:00:00+01:00")
    assert body["status"] == "pending"
    assert body["source"] == "api"
    notice = Notice.objects.get(pk=body["id"])
    assert notice.notified_at == datetime(2026, 3, 1, 11, 0, tzinfo=UTC)  # stored in UTC


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"url": "ftp://x.example/"}, "url", "only http and https"),
        ({"url": "http://u:p@x.example/"}, "url", "user info"),
        ({}, "url", "required"),
        ({"url": "http://x.example/", "notified_at": "2026-03-01 12:00"}, "notified_at", "UTC offset"),
        ({"url": "http://x.example/", "notified_at": "soon"}, "notified_at", "ISO 8601"),
        ({"url": "http://x.example/", "content_sha256": "abc"}, "content_sha256", "64 hexadecimal"),
        ({"url": "http://x.example/", "hoster": "nobody"}, "hoster", "no hoster"),
        ({"url": "http://x.example/", "deadline_s": 0}, "deadline_s", "between 1 and 31536000 seconds"),
    ],
)
def test_bad_input_gets_400_with_field_errors(api, analyst, payload, field, message):
    response = api.as_user(analyst).post("/api/v1/notices/", payload, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])


def test_the_same_reference_again_is_a_conflict_naming_the_existing_notice(api, analyst):
    client = api.as_user(analyst)
    first = client.post("/api/v1/notices/", {"url": "http://x.example/1", "reference": "R"}, format="json")
    again = client.post("/api/v1/notices/", {"url": "http://x.example/2", "reference": "R"}, format="json")
    assert again.status_code == 409
    assert again.json()["id"] == first.json()["id"]


def test_the_same_open_url_again_is_recorded_as_a_repeat(api, analyst):
    client = api.as_user(analyst)
    first = client.post("/api/v1/notices/", {"url": "http://x.example/1"}, format="json").json()
    again = client.post("/api/v1/notices/", {"url": "http://X.example:80/1"}, format="json")
    assert again.status_code == 201
    assert again.json()["status"] == "repeat"
    assert again.json()["repeat_of"] == first["id"]


@pytest.mark.parametrize("who", ["ministry", "researcher", "prompt_user"])
def test_only_analysts_create_notices(api, request, who):
    user = request.getfixturevalue(who)
    response = api.as_user(user).post("/api/v1/notices/", {"url": "http://x.example/1"}, format="json")
    assert response.status_code == 403
    assert Notice.objects.count() == 0


def test_anonymous_requests_are_refused(api, db):
    assert api.get("/api/v1/notices/").status_code == 401
    assert api.post("/api/v1/notices/", {"url": "http://x.example/1"}, format="json").status_code == 401


def test_a_user_without_a_role_sees_nothing(api, db, django_user_model):
    nobody = django_user_model.objects.create_user("nobody", password="x")
    assert api.as_user(nobody).get("/api/v1/notices/").status_code == 403


# --- Scoping by role ----------------------------------------------------------------------------


@pytest.fixture
def two_notices(prompt_hoster, slow_hoster):
    return make_notice("http://p.example/1", prompt_hoster), make_notice("http://s.example/1", slow_hoster)


def test_hoster_sees_only_its_own_notices(api, prompt_user, two_notices):
    mine, theirs = two_notices
    body = api.as_user(prompt_user).get("/api/v1/notices/").json()
    assert body["count"] == 1
    assert [n["id"] for n in body["results"]] == [mine.pk]
    assert body["results"][0]["url"] == "http://p.example/1"


def test_hoster_cannot_see_another_hosters_notice(api, prompt_user, two_notices):
    _mine, theirs = two_notices
    response = api.as_user(prompt_user).get(f"/api/v1/notices/{theirs.pk}/")
    assert response.status_code == 404


def test_hoster_filtering_by_another_hoster_gets_nothing(api, prompt_user, two_notices):
    body = api.as_user(prompt_user).get("/api/v1/notices/?hoster=slow").json()
    assert body["count"] == 0


def test_analyst_sees_all_notices_with_urls(api, analyst, two_notices):
    body = api.as_user(analyst).get("/api/v1/notices/").json()
    assert body["count"] == 2
    assert all(n["url"] for n in body["results"])


def test_ministry_sees_notices_without_urls(api, ministry, two_notices):
    body = api.as_user(ministry).get("/api/v1/notices/").json()
    assert body["count"] == 2
    for row in body["results"]:
        assert row["url"] is None and row["host"] is None
    assert "p.example" not in str(body)


def test_researcher_sees_keyed_hashes_instead_of_urls(api, researcher, two_notices):
    mine, _ = two_notices
    row = api.as_user(researcher).get(f"/api/v1/notices/{mine.pk}/").json()
    assert row["url"] is None
    assert row["url_hash"] == pseudonymise("http://p.example/1")
    assert row["host_hash"] == pseudonymise("p.example")
    assert "p.example" not in str(row)


def test_notice_detail_lists_its_checks(api, prompt_user, two_notices):
    mine, _ = two_notices
    Check.objects.create(
        notice=mine, checked_at=timezone.now(), outcome="online", http_status=200, body_sha256="b" * 64, byte_count=10
    )
    row = api.as_user(prompt_user).get(f"/api/v1/notices/{mine.pk}/").json()
    assert [(c["outcome"], c["http_status"]) for c in row["checks"]] == [("online", 200)]


def test_filters_by_status_and_notification_time(api, analyst, prompt_hoster):
    now = timezone.now()
    old = make_notice("http://a.example/old", prompt_hoster, now=now - timedelta(days=10))
    new = make_notice("http://a.example/new", prompt_hoster, now=now, status="removed")
    client = api.as_user(analyst)
    assert [n["id"] for n in client.get("/api/v1/notices/?status=removed").json()["results"]] == [new.pk]
    after = (now - timedelta(days=1)).isoformat()
    assert [n["id"] for n in client.get("/api/v1/notices/", {"notified_after": after}).json()["results"]] == [new.pk]
    assert [n["id"] for n in client.get("/api/v1/notices/", {"notified_before": after}).json()["results"]] == [old.pk]
    assert client.get("/api/v1/notices/?status=bogus").status_code == 400


def test_the_list_is_paginated(api, analyst, prompt_hoster):
    for i in range(3):
        make_notice(f"http://a.example/{i}", prompt_hoster)
    body = api.as_user(analyst).get("/api/v1/notices/?page_size=2").json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]


def test_the_list_costs_a_fixed_number_of_queries(api, analyst, prompt_hoster, django_assert_max_num_queries):
    for i in range(20):
        make_notice(f"http://a.example/{i}", prompt_hoster)
    client = api.as_user(analyst)
    with django_assert_max_num_queries(6):
        assert client.get("/api/v1/notices/").status_code == 200


def test_hosters_api_is_scoped_for_hoster_users(api, prompt_user, slow_hoster, analyst):
    assert [h["slug"] for h in api.as_user(prompt_user).get("/api/v1/hosters/").json()["results"]] == ["prompt"]
    assert api.as_user(prompt_user).get("/api/v1/hosters/slow/").status_code == 404
    body = api.as_user(analyst).get("/api/v1/hosters/prompt/").json()
    assert body["asns"] == [64500]
    assert body["prefixes"] == ["127.10.0.0/16", "2001:db8:10::/48"]


def test_the_openapi_schema_describes_the_endpoints(api, analyst):
    response = api.as_user(analyst).get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/notices/" in paths and "/api/v1/notices/{id}/" in paths
    params = {p["name"] for p in paths["/api/v1/notices/"]["get"]["parameters"]}
    assert {"hoster", "status", "notified_after", "notified_before"} <= params


def test_content_hashes_are_for_analysts_only(api, client, analyst, ministry, researcher, prompt_user, two_notices):
    """A hash of reported abuse material is itself restricted: only analysts get a notice's
    content_sha256 and its checks' body_sha256, in the API and on the evidence page."""
    mine, _ = two_notices
    Notice.objects.filter(pk=mine.pk).update(content_sha256="c" * 64)
    Check.objects.create(
        notice=mine, checked_at=timezone.now(), outcome="online", http_status=200, body_sha256="b" * 64, byte_count=10
    )
    for user, sees in ((analyst, True), (ministry, False), (researcher, False), (prompt_user, False)):
        row = api.as_user(user).get(f"/api/v1/notices/{mine.pk}/").json()
        assert (row["content_sha256"], row["checks"][0]["body_sha256"]) == (
            ("c" * 64, "b" * 64) if sees else (None, None)
        ), user.username
        client.force_login(user)
        page = client.get(f"/scorecards/notices/{mine.pk}/").content.decode()
        assert ("bbbbbbbbbbbbbbbb" in page) is sees and "c" * 64 not in page, user.username
