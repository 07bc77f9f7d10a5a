"""Login throttling, deployment security settings, and the audit trail of logins and writes."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from compliance.models import AuditEvent
from tests.conftest import STRONG_PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def _login(client, username, password, *, url="/accounts/login/", ip="192.0.2.10"):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_check_deploy_is_clean_with_debug_off_and_a_real_secret_key():
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEBUG", "SECURE_", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_SETTINGS"))
    }
    env.update(DEBUG="off", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="monitor.example.org")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_settings_refuse_to_start_without_a_secret_key_when_debug_is_off():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env.update(DEBUG="off", SECRET_KEY="")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_five_wrong_passwords_lock_the_user_out_from_that_address(prompt_user):
    client = Client()
    for _attempt in range(5):
        response = _login(client, "pat", "wrong-password-123")
        assert response.status_code in (200, 429)
    # Now even the right password is refused from this address ...
    locked = _login(client, "pat", STRONG_PASSWORD)
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    assert "_auth_user_id" not in client.session
    # ... but the real abuse desk elsewhere is not locked out by a stranger's guessing.
    elsewhere = Client()
    ok = _login(elsewhere, "pat", STRONG_PASSWORD, ip="198.51.100.7")
    assert ok.status_code == 302
    assert elsewhere.session["_auth_user_id"] == str(prompt_user.pk)


def test_the_admin_login_is_throttled_too(analyst):
    client = Client()
    for _attempt in range(5):
        _login(client, "alice", "wrong-password-123", url="/admin/login/")
    locked = _login(client, "alice", STRONG_PASSWORD, url="/admin/login/")
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_successful_login_resets_the_failure_count(prompt_user):
    client = Client()
    for _attempt in range(4):
        _login(client, "pat", "wrong-password-123")
    assert _login(client, "pat", STRONG_PASSWORD).status_code == 302
    client.logout()
    for _attempt in range(4):
        _login(client, "pat", "wrong-password-123")
    assert _login(client, "pat", STRONG_PASSWORD).status_code == 302


def test_the_api_accepts_no_passwords_only_tokens(prompt_user):
    import base64

    client = Client()
    basic = base64.b64encode(f"pat:{STRONG_PASSWORD}".encode()).decode()
    response = client.get("/api/v1/notices/", HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code in (401, 403)


def test_a_locked_out_user_name_keeps_its_api_token_working(prompt_user, api):
    client = Client()
    for _attempt in range(6):
        _login(client, "pat", "wrong-password-123")
    assert api.as_user(prompt_user).get("/api/v1/notices/").status_code == 200


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
