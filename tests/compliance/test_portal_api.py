"""The hoster API: a token scoped to one hoster lists its open notices and responds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from compliance.models import Dispute, Notice
from tests.compliance.portal_support import make_check, make_notice


@pytest.fixture
def notices(prompt_hoster, slow_hoster):
    return {
        "open": make_notice("http://files.prompt.test/a.jpg", prompt_hoster, notified_ago_s=3600, status="online"),
        "later": make_notice("http://files.prompt.test/b.jpg", prompt_hoster, notified_ago_s=60, status="pending"),
        "closed": make_notice("http://files.prompt.test/c.jpg", prompt_hoster, notified_ago_s=9000, status="removed"),
        "other": make_notice("http://secret.slow.test/x.jpg", slow_hoster, notified_ago_s=3600, status="online"),
    }


def test_a_token_from_add_user_lists_only_its_hosters_open_notices(prompt_hoster, notices, api, capsys):
    call_command("add_user", "desk", "--role", "hoster", "--hoster", "prompt", "--token")
    token = capsys.readouterr().out.strip().splitlines()[-1]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = api.get("/api/v1/portal/notices/")
    assert response.status_code == 200
    body = response.json()
    assert [n["id"] for n in body["results"]] == [notices["open"].pk, notices["later"].pk]  # nearest deadline first
    first = body["results"][0]
    assert first["url"] == "http://files.prompt.test/a.jpg"
    assert 0 < first["seconds_to_deadline"] <= 86400 - 3600
    assert first["verdict"] == "pending"
    assert "secret.slow.test" not in response.content.decode()

    with_closed = api.get("/api/v1/portal/notices/?include_closed=true").json()
    assert {n["id"] for n in with_closed["results"]} == {notices["open"].pk, notices["later"].pk, notices["closed"].pk}


def test_another_hosters_notice_is_404_for_every_portal_endpoint(api, prompt_user, notices):
    client = api.as_user(prompt_user)
    other = notices["other"]
    assert client.get(f"/api/v1/portal/notices/{other.pk}/").status_code == 404
    for action in ("acknowledge", "removed", "dispute"):
        response = client.post(f"/api/v1/portal/notices/{other.pk}/{action}/", {"reason": "other", "text": "x"})
        assert response.status_code == 404, action
    other.refresh_from_db()
    assert other.acknowledged_at is None and other.reported_removed_at is None
    assert not Dispute.objects.exists()


def test_the_notice_detail_carries_its_checks_without_content(api, prompt_user, notices):
    make_check(notices["open"], ago_s=120, outcome="online", http_status=200)
    body = api.as_user(prompt_user).get(f"/api/v1/portal/notices/{notices['open'].pk}/").json()
    assert [(c["outcome"], c["http_status"]) for c in body["checks"]] == [("online", 200)]
    assert "body_sha256" not in body["checks"][0]


def test_acknowledge_removed_and_dispute_through_the_api(api, prompt_user, notices):
    client = api.as_user(prompt_user)
    notice = notices["open"]
    ack = client.post(f"/api/v1/portal/notices/{notice.pk}/acknowledge/")
    assert ack.status_code == 200 and ack.json()["acknowledged_at"]

    removed = client.post(f"/api/v1/portal/notices/{notice.pk}/removed/")
    assert removed.status_code == 202
    assert removed.json()["recheck"] == "queued"
    notice.refresh_from_db()
    assert notice.next_check_at <= timezone.now() and notice.status == "online"
    assert client.post(f"/api/v1/portal/notices/{notice.pk}/removed/").json()["recheck"] == "already_queued"

    bad = client.post(f"/api/v1/portal/notices/{notice.pk}/dispute/", {"reason": "already_removed"}, format="json")
    assert bad.status_code == 400 and "removed_at" in bad.json()
    ancient = client.post(
        f"/api/v1/portal/notices/{notice.pk}/dispute/",
        {"reason": "already_removed", "removed_at": "0500-11-06T20:49:53Z"},
        format="json",
    )
    assert ancient.status_code == 400 and "removed_at" in ancient.json()  # out of range: nothing saved
    removed_at = (timezone.now() - timedelta(minutes=30)).isoformat()
    dispute = client.post(
        f"/api/v1/portal/notices/{notice.pk}/dispute/",
        {"reason": "already_removed", "removed_at": removed_at, "text": "deleted by our support"},
        format="json",
    )
    assert dispute.status_code == 201, dispute.content
    assert dispute.json()["state"] == "open"
    again = client.post(f"/api/v1/portal/notices/{notice.pk}/dispute/", {"reason": "behind_cdn"}, format="json")
    assert again.status_code == 409

    listed = client.get("/api/v1/portal/disputes/").json()
    assert [d["id"] for d in listed["results"]] == [dispute.json()["id"]]
    detail = client.get(f"/api/v1/portal/notices/{notice.pk}/").json()
    assert detail["disputes"][0]["text"] == "deleted by our support"


def test_another_hosters_dispute_is_404(api, prompt_user, slow_user, notices):
    from compliance.portal import services

    dispute = services.dispute_raise(notice=notices["other"], user=slow_user, reason="behind_cdn", now=timezone.now())
    client = api.as_user(prompt_user)
    assert client.get(f"/api/v1/portal/disputes/{dispute.pk}/").status_code == 404
    assert client.get("/api/v1/portal/disputes/").json()["count"] == 0


@pytest.mark.parametrize("role", ["analyst", "ministry", "researcher"])
def test_the_hoster_api_is_for_hoster_tokens(api, request, role, notices):
    user = request.getfixturevalue(role)
    client = api.as_user(user)
    assert client.get("/api/v1/portal/notices/").status_code == 403
    assert client.post(f"/api/v1/portal/notices/{notices['open'].pk}/acknowledge/").status_code == 403
    assert Notice.objects.get(pk=notices["open"].pk).acknowledged_at is None


def test_without_a_token_the_hoster_api_says_401(api, notices):
    assert api.get("/api/v1/portal/notices/").status_code == 401


def test_the_hoster_api_is_in_the_openapi_schema(api, analyst):
    schema = api.as_user(analyst).get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/portal/notices/",
        "/api/v1/portal/notices/{id}/",
        "/api/v1/portal/notices/{id}/acknowledge/",
        "/api/v1/portal/notices/{id}/removed/",
        "/api/v1/portal/notices/{id}/dispute/",
        "/api/v1/portal/disputes/",
    ):
        assert path in paths, path
    dispute_op = paths["/api/v1/portal/notices/{id}/dispute/"]["post"]
    assert "409" in dispute_op["responses"] and "404" in dispute_op["responses"]
