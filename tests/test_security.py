"""Deployment security (config/settings.py): `check --deploy` is clean, no start without a
SECRET_KEY, password logins throttled per address (django-axes), and the API takes tokens only."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.test import Client

from tests.conftest import STRONG_PASSWORD

ROOT = Path(__file__).resolve().parents[1]


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
