"""add_user: users of each role, their memberships and API tokens (compliance/services.py user_upsert)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token


def test_add_user_creates_each_role_and_prints_a_token(db, capsys, prompt_hoster):
    call_command("add_user", "pat", "--role", "hoster", "--hoster", "prompt", "--token")
    out, err = capsys.readouterr()
    token = out.strip().splitlines()[-1]
    assert Token.objects.get(key=token).user.membership.hoster == prompt_hoster
    call_command("add_user", "alice", "--role", "analyst", "--password", "a-long-enough-passphrase")
    from django.contrib.auth import get_user_model

    alice = get_user_model().objects.get(username="alice")
    assert alice.is_staff and alice.check_password("a-long-enough-passphrase")
    assert alice.membership.role == "analyst"


def test_add_user_updates_an_existing_user(db, capsys, prompt_hoster):
    call_command("add_user", "pat", "--role", "researcher")
    call_command("add_user", "pat", "--role", "hoster", "--hoster", "prompt")
    from django.contrib.auth import get_user_model

    pat = get_user_model().objects.get(username="pat")
    assert pat.membership.role == "hoster" and pat.membership.hoster == prompt_hoster


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "hoster"], "needs --hoster"),
        (["--role", "hoster", "--hoster", "nobody"], "no hoster with slug"),
        (["--role", "ministry", "--hoster", "prompt"], "hoster users only"),
        (["--role", "ministry", "--password", "short"], "password rejected"),
        (["--role", "ministry", "--password", "password12345"], "too common"),
    ],
)
def test_add_user_refuses_bad_arguments(db, prompt_hoster, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("add_user", "x", *args)
