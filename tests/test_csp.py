"""The Content-Security-Policy header (django-csp): scripts run only from this server or inline
with the request's nonce, so text a hoster typed can never run as script on an analyst's page."""

from __future__ import annotations

import re

import pytest
from django.test import Client


def _policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in header.split(";")) if d}


@pytest.mark.django_db
def test_every_inline_script_carries_the_nonce_of_the_header():
    response = Client().get("/accounts/login/")
    policy = _policy(response)
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    nonces = [s[len("'nonce-") : -1] for s in policy["script-src"] if s.startswith("'nonce-")]
    assert len(nonces) == 1
    scripts = re.findall(r"<script\b([^>]*)>", response.content.decode())
    inline = [attrs for attrs in scripts if "src=" not in attrs and "application/json" not in attrs]
    assert inline, "the page has its language switch script"
    assert all(f'nonce="{nonces[0]}"' in attrs for attrs in inline)
    # A new nonce per response.
    assert _policy(Client().get("/accounts/login/"))["script-src"] != policy["script-src"]


@pytest.mark.django_db
def test_the_api_docs_load_their_script_as_a_file(analyst):
    client = Client()
    client.force_login(analyst)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    (script_url,) = re.findall(r'<script src="([^"]*\?script=?[^"]*)"', page.content.decode())
    script = client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
