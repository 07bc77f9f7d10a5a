"""The analysts' attribution tools in the admin: evidence inline, override with a reason, re-attribute
(compliance/admin.py)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from compliance import services
from compliance.models import Attribution, Notice
from monitor.attribution_drain import drain_attribution

CHANGELIST = "/admin/compliance/notice/"


@pytest.fixture
def admin_client_analyst(analyst):
    client = Client()
    client.force_login(analyst)
    return client


@pytest.fixture
def notice(dns_server, prompt_hoster, slow_hoster, cdn):
    dns_server.add_origin("127.10.0.0/16", 64500, cc="NL")
    dns_server.add_host("files.prompt.example", "127.10.0.5")
    now = timezone.now()
    n = services.notice_create(
        data=services.notice_input_parse(url="https://files.prompt.example/x.jpg", now=now), source="t", now=now
    )[0]
    drain_attribution()
    return n


def test_the_notice_page_shows_the_attribution_evidence(admin_client_analyst, notice):
    page = admin_client_analyst.get(f"{CHANGELIST}{notice.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "127.10.0.5" in text and "127.10.0.0/16" in text and "files.prompt.example" in text


def test_an_analyst_sets_the_attribution_with_a_reason_through_an_intermediate_page(
    admin_client_analyst, notice, analyst, slow_hoster, cdn
):
    form = admin_client_analyst.post(CHANGELIST, {"action": "set_attribution", "_selected_action": [notice.pk]})
    assert form.status_code == 200 and b"Set the origin hoster" in form.content
    assert not Attribution.objects.filter(method="analyst").exists()  # nothing happens before "apply"

    done = admin_client_analyst.post(
        CHANGELIST,
        {
            "action": "set_attribution",
            "_selected_action": [notice.pk],
            "apply": "1",
            "hoster": "slow",
            "cdn": "shieldcdn",
            "reason": "abuse desk of Shield CDN named Slow",
        },
    )
    assert done.status_code == 302
    notice.refresh_from_db()
    assert notice.hoster == slow_hoster and notice.hoster_source == "analyst" and notice.cdn == cdn
    row = Attribution.objects.get(method="analyst")
    assert row.decided_by == analyst and row.reason == "abuse desk of Shield CDN named Slow"


def test_the_override_form_offers_no_cdn_as_hoster_and_needs_a_reason(admin_client_analyst, notice):
    response = admin_client_analyst.post(
        CHANGELIST,
        {"action": "set_attribution", "_selected_action": [notice.pk], "apply": "1", "hoster": "shieldcdn"},
    )
    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["form"].errors
    assert "hoster" in errors and "reason" in errors
    assert not Attribution.objects.filter(method="analyst").exists()


def test_reattribute_queues_the_notice_and_the_drain_adds_a_row(admin_client_analyst, notice):
    response = admin_client_analyst.post(CHANGELIST, {"action": "reattribute", "_selected_action": [notice.pk]})
    assert response.status_code == 302
    assert Notice.objects.get(pk=notice.pk).attribution_state == "pending"
    drain_attribution()
    assert notice.attributions.count() == 2


def test_rdap_records_and_queue_are_read_only_in_the_admin(admin_client_analyst):
    assert admin_client_analyst.get("/admin/compliance/rdaprecord/").status_code == 200
    assert admin_client_analyst.get("/admin/compliance/rdaprecord/add/").status_code == 403
    # The evidence moved from the monitor app to compliance: old addresses lead to the new ones.
    moved = admin_client_analyst.get("/admin/monitor/rdaprecord/?q=1", follow=True)
    assert moved.status_code == 200 and moved.redirect_chain[-1][0] == "/admin/compliance/rdaprecord/?q=1"
    assert admin_client_analyst.get("/admin/monitor/rdapqueue/").status_code == 200
