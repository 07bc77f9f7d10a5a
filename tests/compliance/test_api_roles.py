"""Role-safe fields in the notice API and the evidence page: which role gets a server address, its
keyed pseudonym or a widened prefix, and a repeat's `repeat_of` (docs/access-control.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.models import Notice
from compliance.pseudonym import pseudonymise_address
from monitor.models import Attribution, Check


def _notice(url, hoster, **extra):
    now = timezone.now()
    return Notice.objects.create(
        url=url,
        scheme="http",
        host=url.split("/")[2].strip("[]"),
        path="/x.jpg",
        received_at=now,
        notified_at=now,
        deadline_s=86400,
        hoster=hoster,
        hoster_source="hotline",
        **extra,
    )


@pytest.fixture
def literal(prompt_hoster):
    """An IP-literal URL: its address is its host."""
    notice = _notice("http://127.10.0.77/x.jpg", prompt_hoster)
    Check.objects.create(
        notice=notice, checked_at=timezone.now(), outcome="online", http_status=200, resolved_ip="127.10.0.77"
    )
    Attribution.objects.create(
        notice=notice,
        created_at=timezone.now(),
        method="dns",
        hostname="127.10.0.77",
        resolved_ips=["127.10.0.77"],
        chosen_ip="127.10.0.77",
        routed_prefix="127.10.0.77/32",
        rdap={"status": "found", "cidr": "127.10.0.0/16", "handle": "127.10.0.0 - 127.10.255.255", "name": "PROMPT"},
        candidates=[{"ip": "127.10.0.77", "hoster": "prompt", "routed_prefix": "127.10.0.77/32"}],
        hoster=prompt_hoster,
        reason="1 of 1 address(es) name the hoster",
    )
    return notice


@pytest.mark.parametrize("who", ["ministry", "researcher"])
def test_ministry_and_researchers_get_pseudonyms_and_wide_prefixes_instead_of_addresses(api, request, literal, who):
    body = api.as_user(request.getfixturevalue(who)).get(f"/api/v1/notices/{literal.pk}/").json()
    assert body["url"] is None and body["host"] is None and body["host_hash"]
    (check,) = body["checks"]
    assert check["resolved_ip"] is None and check["resolved_ip_hash"] == pseudonymise_address("127.10.0.77")
    assert check["vantage"] == "local"
    (row,) = body["attributions"]
    assert row["hostname"] is None and row["resolved_ips"] is None and row["chosen_ip"] is None
    assert row["resolved_ip_hashes"] == [pseudonymise_address("127.10.0.77")]
    assert row["chosen_ip_hash"] == pseudonymise_address("127.10.0.77")
    assert row["routed_prefix"] == "127.10.0.0/24"  # the /32 would be the address itself
    # The registered network is a /16: shown with its handle and name.
    assert row["rdap"]["cidr"] == "127.10.0.0/16" and row["rdap"]["handle"] == "127.10.0.0 - 127.10.255.255"
    (candidate,) = row["candidates"]
    assert "ip" not in candidate and candidate["ip_hash"] == pseudonymise_address("127.10.0.77")
    assert candidate["routed_prefix"] == "127.10.0.0/24" and candidate["hoster"] == "prompt"
    assert "127.10.0.77" not in str(body)


@pytest.mark.parametrize("who", ["analyst", "prompt_user"])
def test_analysts_and_the_notices_hoster_see_the_addresses(api, request, literal, who):
    body = api.as_user(request.getfixturevalue(who)).get(f"/api/v1/notices/{literal.pk}/").json()
    assert body["checks"][0]["resolved_ip"] == "127.10.0.77" and body["checks"][0]["resolved_ip_hash"] is None
    row = body["attributions"][0]
    assert row["resolved_ips"] == ["127.10.0.77"] and row["chosen_ip"] == "127.10.0.77"
    assert row["routed_prefix"] == "127.10.0.77/32" and row["resolved_ip_hashes"] is None


def test_a_narrow_registered_network_loses_its_handle_name_and_range(api, researcher, literal):
    Attribution.objects.create(
        notice=literal,
        created_at=timezone.now() + timedelta(seconds=1),
        method="dns",
        hostname="127.10.0.77",
        resolved_ips=["127.10.0.77"],
        chosen_ip="127.10.0.77",
        rdap={
            "status": "found",
            "cidr": "127.10.0.77/32",
            "handle": "127.10.0.77 - 127.10.0.77",
            "name": "CUST-127-10-0-77",
            "start_address": "127.10.0.77",
            "end_address": "127.10.0.77",
            "abuse_emails": ["abuse@prompt.test"],
        },
    )
    rows = api.as_user(researcher).get(f"/api/v1/notices/{literal.pk}/").json()["attributions"]
    rdap = rows[-1]["rdap"]
    assert rdap == {"status": "found", "cidr": "127.10.0.0/24", "abuse_emails": ["abuse@prompt.test"]}


def test_the_evidence_page_shows_the_address_pseudonym_to_researchers(client, researcher, analyst, literal):
    client.force_login(researcher)
    page = client.get(f"/scorecards/notices/{literal.pk}/").content.decode()
    assert "127.10.0.77" not in page and pseudonymise_address("127.10.0.77") in page
    client.force_login(analyst)
    assert "127.10.0.77" in client.get(f"/scorecards/notices/{literal.pk}/").content.decode()


def test_a_dns_reason_naming_the_host_is_redacted_and_an_analysts_reason_left_out(api, ministry, prompt_hoster):
    notice = _notice("http://gone.example/x.jpg", prompt_hoster)
    Attribution.objects.create(
        notice=notice,
        created_at=timezone.now(),
        method="dns",
        hostname="gone.example",
        reason="unresolvable at notice time: last answer nxdomain (The DNS query name does not exist: gone.example.)",
    )
    Attribution.objects.create(
        notice=notice,
        created_at=timezone.now(),
        method="analyst",
        hoster=prompt_hoster,
        reason="see http://gone.example/x.jpg",
    )
    rows = api.as_user(ministry).get(f"/api/v1/notices/{notice.pk}/").json()["attributions"]
    assert rows[0]["reason"].endswith("does not exist: [redacted].)")
    assert rows[1]["reason"] is None


def test_a_hoster_never_learns_another_hosters_notice_id_through_repeat_of(
    api, analyst, prompt_user, prompt_hoster, slow_hoster
):
    """The content moved from slow to prompt: prompt's repeat points at slow's notice."""
    theirs = _notice("http://moved.example/x.jpg", slow_hoster)
    repeat = _notice("http://moved.example/x.jpg", prompt_hoster, status="repeat", repeat_of=theirs)
    own = _notice("http://mine.example/x.jpg", prompt_hoster)
    own_repeat = _notice("http://mine.example/x.jpg", prompt_hoster, status="repeat", repeat_of=own)
    client = api.as_user(prompt_user)
    listed = {n["id"]: n["repeat_of"] for n in client.get("/api/v1/notices/").json()["results"]}
    assert listed[repeat.pk] is None and listed[own_repeat.pk] == own.pk
    assert client.get(f"/api/v1/notices/{repeat.pk}/").json()["repeat_of"] is None
    assert api.as_user(analyst).get(f"/api/v1/notices/{repeat.pk}/").json()["repeat_of"] == theirs.pk


def test_repeat_of_costs_no_query_per_notice(api, prompt_user, prompt_hoster, slow_hoster, django_assert_num_queries):
    theirs = _notice("http://moved.example/x.jpg", slow_hoster)
    for _ in range(5):
        _notice("http://moved.example/x.jpg", prompt_hoster, status="repeat", repeat_of=theirs)
    client = api.as_user(prompt_user)
    client.get("/api/v1/notices/")  # warm up: token and membership lookups
    with django_assert_num_queries(4):  # the same for 5 repeats as for 1: no query per notice
        client.get("/api/v1/notices/")
