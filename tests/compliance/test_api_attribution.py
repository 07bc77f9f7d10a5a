"""The attribution evidence in the API notice detail, and the analysts' override endpoint
(compliance/apis.py, compliance/serializers.py)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from compliance import services
from compliance.models import Attribution
from monitor.attribution_drain import drain_attribution


@pytest.fixture
def attributed(dns_server, prompt_hoster, slow_hoster, cdn):
    """A notice on prompt's network reached through a CNAME, attributed from DNS, and one of a
    hotline-given hoster that DNS disagrees with."""
    dns_server.add_origin("127.10.0.0/16", 64500, cc="NL")
    dns_server.add_as_name(64500, "PROMPT-AS Prompt Hosting, NL", cc="NL")
    dns_server.set_cname("www.shop.example", "files.prompt.example")
    dns_server.add_host("files.prompt.example", "127.10.0.5")
    now = timezone.now()
    plain = services.notice_create(
        data=services.notice_input_parse(url="https://www.shop.example/a.jpg", now=now), source="t", now=now
    )[0]
    disputed = services.notice_create(
        data=services.notice_input_parse(url="https://www.shop.example/b.jpg", hoster="slow", now=now),
        source="t",
        now=now,
    )[0]
    drain_attribution()
    return plain, disputed


def url(notice):
    return f"/api/v1/notices/{notice.pk}/"


def test_an_analyst_sees_the_whole_evidence(api, analyst, attributed):
    plain, _disputed = attributed
    body = api.as_user(analyst).get(url(plain)).json()
    (row,) = body["attributions"]
    assert row["method"] == "dns" and row["hostname"] == "www.shop.example"
    assert row["cname_chain"] == ["files.prompt.example"] and row["resolved_ips"] == ["127.10.0.5"]
    assert row["chosen_ip"] == "127.10.0.5" and row["asn"] == 64500 and row["routed_prefix"] == "127.10.0.0/16"
    assert row["as_name"] == "PROMPT-AS Prompt Hosting, NL" and row["hoster"] == "prompt"
    assert row["candidates"][0]["hoster"] == "prompt" and row["reason"]


def test_ministry_and_researchers_see_no_host_name_or_cname_chain(api, ministry, researcher, attributed):
    plain, _disputed = attributed
    for user in (ministry, researcher):
        (row,) = api.as_user(user).get(url(plain)).json()["attributions"]
        assert row["hostname"] is None and row["cname_chain"] is None
        assert row["hoster"] == "prompt" and row["asn"] == 64500


def test_a_hoster_sees_its_own_evidence_without_other_hosters_names(api, slow_user, attributed):
    _plain, disputed = attributed
    body = api.as_user(slow_user).get(url(disputed)).json()
    (row,) = body["attributions"]
    assert body["hoster"] == "slow"
    assert row["hostname"] == "www.shop.example"  # its own notice's URL, as elsewhere
    assert row["hoster"] is None  # DNS named prompt: not slow's to know
    assert row["candidates"] is None and row["reason"] is None and row["decided_by"] is None
    # What it may use to contest the attribution: the public DNS and routing facts of its URL.
    assert row["resolved_ips"] == ["127.10.0.5"] and row["asn"] == 64500


def test_a_hoster_cannot_see_another_hosters_notice_evidence(api, slow_user, attributed):
    plain, _disputed = attributed
    assert api.as_user(slow_user).get(url(plain)).status_code == 404


def test_an_analyst_overrides_the_attribution_with_a_reason(api, analyst, attributed, slow_hoster, cdn):
    plain, _disputed = attributed
    response = api.as_user(analyst).post(
        f"/api/v1/notices/{plain.pk}/attribution/",
        {"hoster": "slow", "cdn": "shieldcdn", "reason": "Shield CDN named Slow as the origin (ticket 4711)"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["hoster"] == "slow" and body["hoster_source"] == "analyst"
    assert body["cdn"] == "shieldcdn" and body["is_behind_cdn"] is True
    latest = body["attributions"][-1]
    assert latest["method"] == "analyst" and latest["decided_by"] == "alice"
    assert latest["reason"] == "Shield CDN named Slow as the origin (ticket 4711)"
    assert len(body["attributions"]) == 2  # the DNS evidence stays
    row = Attribution.objects.get(notice=plain, method="analyst")
    assert row.decided_by == analyst and row.hoster == slow_hoster and row.cdn == cdn


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"hoster": "shieldcdn", "reason": "x"}, "hoster"),
        ({"hoster": "nobody-here", "reason": "x"}, "hoster"),
        ({"hoster": "slow", "cdn": "prompt", "reason": "x"}, "cdn"),
        ({"hoster": "slow"}, "reason"),
        ({"hoster": "slow", "reason": "   "}, "reason"),
    ],
)
def test_a_bad_override_is_refused_with_the_field_and_changes_nothing(api, analyst, attributed, payload, field):
    plain, _disputed = attributed
    response = api.as_user(analyst).post(f"/api/v1/notices/{plain.pk}/attribution/", payload, format="json")
    assert response.status_code == 400 and field in response.json()
    plain.refresh_from_db()
    assert plain.hoster.slug == "prompt" and plain.hoster_source == "attribution"
    assert not Attribution.objects.filter(method="analyst").exists()


def test_only_analysts_may_override(api, ministry, researcher, prompt_user, attributed):
    plain, _disputed = attributed
    for user in (ministry, researcher, prompt_user):
        response = api.as_user(user).post(
            f"/api/v1/notices/{plain.pk}/attribution/", {"hoster": "prompt", "reason": "mine"}, format="json"
        )
        assert response.status_code == 403
    api.credentials()
    assert api.post(f"/api/v1/notices/{plain.pk}/attribution/", {}, format="json").status_code == 401
    assert not Attribution.objects.filter(method="analyst").exists()


def test_overriding_a_missing_notice_is_404(api, analyst, attributed):
    response = api.as_user(analyst).post("/api/v1/notices/999999/attribution/", {"hoster": "slow", "reason": "x"})
    assert response.status_code == 404


def test_the_override_is_in_the_openapi_schema(api, analyst):
    schema = api.as_user(analyst).get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/notices/{id}/attribution/"]["post"]
    assert operation["operationId"] == "v1_notices_attribution_create"


def test_the_notice_detail_costs_the_same_queries_however_many_attributions(
    api, analyst, attributed, slow_hoster, cdn, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from compliance.attributions import attribution_override

    plain, _disputed = attributed
    attribution_override(notice=plain, hoster=slow_hoster, cdn=cdn, reason="first", user=analyst)
    client = api.as_user(analyst)
    client.get(url(plain))  # warm-up (token, content types)
    with CaptureQueriesContext(connection) as two_rows:
        client.get(url(plain))
    for i in range(3):
        attribution_override(notice=plain, hoster=slow_hoster, cdn=cdn, reason=f"round {i}", user=analyst)
    with django_assert_num_queries(len(two_rows.captured_queries)):
        body = client.get(url(plain)).json()
    assert len(body["attributions"]) == 5
