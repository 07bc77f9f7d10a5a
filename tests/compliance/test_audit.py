"""The audit trail (compliance/audit.py): logins, failed logins, logouts and writes, who may read
it, and that it is append-only."""

from __future__ import annotations

import pytest
from django.test import Client

from compliance.models import AuditEvent
from tests.conftest import STRONG_PASSWORD


def _login(client, username, password, *, url="/accounts/login/", ip="192.0.2.10"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_logins_failed_logins_and_logouts_are_in_the_audit_trail(prompt_user):
    client = Client()
    _login(client, "pat", "wrong-password-123", ip="192.0.2.99")
    _login(client, "pat", STRONG_PASSWORD, ip="192.0.2.99")
    client.post("/accounts/logout/", REMOTE_ADDR="192.0.2.99")
    events = list(AuditEvent.objects.order_by("at", "id").values_list("action", "actor_username", "ip_address"))
    assert events == [
        ("login.failed", "pat", "192.0.2.99"),
        ("login", "pat", "192.0.2.99"),
        ("logout", "pat", "192.0.2.99"),
    ]
    assert "wrong-password" not in str(list(AuditEvent.objects.values("detail")))


def test_an_analysts_write_in_the_admin_is_in_the_audit_trail(analyst, prompt_hoster):
    client = Client()
    client.force_login(analyst)
    response = client.post(
        f"/admin/compliance/hoster/{prompt_hoster.pk}/change/",
        {
            "name": "Prompt Hosting B.V.",
            "slug": "prompt",
            "kind": "hoster",
            "country": "NL",
            "abuse_email": "abuse@prompt.test",
            "is_reviewed": "on",
            "asns-TOTAL_FORMS": "0",
            "asns-INITIAL_FORMS": "0",
            "prefixes-TOTAL_FORMS": "0",
            "prefixes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(action="request")
    assert (event.actor, event.actor_role, event.method) == (analyst, "analyst", "POST")
    assert event.path == f"/admin/compliance/hoster/{prompt_hoster.pk}/change/"
    assert event.detail == {"url_name": "admin:compliance_hoster_change"}
    assert event.status_code == 302


def test_the_client_address_behind_a_trusted_proxy_is_the_last_forwarded_one(settings, rf):
    from compliance.audit import client_ip

    request = rf.get("/", HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.1", REMOTE_ADDR="10.0.0.1")
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request) == "10.0.0.1"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request) == "198.51.100.1"  # what our one proxy saw; the left entry is forgeable
    settings.TRUSTED_PROXY_COUNT = 2
    assert client_ip(request) == "203.0.113.9"


def test_audit_events_cannot_be_changed_or_deleted(analyst):
    from compliance.audit import audit_record

    event = audit_record(actor=analyst, action="test")
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_an_analyst_creating_a_notice_through_the_api_with_a_token_is_in_the_audit_trail(api, analyst):
    response = api.as_user(analyst).post(
        "/api/v1/notices/?token=should-not-be-stored", {"url": "http://x.example/a.jpg"}, format="json"
    )
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="request")
    assert (event.actor, event.actor_role, event.method, event.status_code) == (analyst, "analyst", "POST", 201)
    assert event.detail == {"url_name": "notice-list"}
    assert event.path == "/api/v1/notices/"  # never the query string


def test_the_audit_trail_is_for_analysts(client, analyst, prompt_user):
    from compliance.audit import audit_record

    audit_record(actor=prompt_user, action="notice.acknowledge")
    client.force_login(prompt_user)
    assert client.get("/admin/compliance/auditevent/").status_code == 302
    client.force_login(analyst)
    page = client.get("/admin/compliance/auditevent/")
    assert page.status_code == 200 and "notice.acknowledge" in page.content.decode()
