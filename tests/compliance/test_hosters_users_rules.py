from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token

from compliance import rules
from compliance.models import AppendOnlyError, Check, Hoster, Notice

HOSTERS_HEADER = "slug,name,country,abuse_email,asns,prefixes,kind\n"


def load(tmp_path, text, capsys, *args):
    path = tmp_path / "hosters.csv"
    path.write_text(HOSTERS_HEADER + text)
    call_command("load_hosters", str(path), *args)
    out, err = capsys.readouterr()
    return json.loads(out.strip().splitlines()[-1]), err


def test_load_hosters_creates_hosters_with_their_networks(db, tmp_path, capsys):
    summary, err = load(
        tmp_path,
        "acme,Acme Hosting,nl,abuse@acme.test,64500 AS64501,127.10.0.0/16 2001:db8::/32,hoster\n"
        "edge,Edge CDN,US,,64510,,cdn\n",
        capsys,
    )
    assert summary == {"created": 2, "updated": 0, "rejected": 0}
    acme = Hoster.objects.get(slug="acme")
    assert acme.country == "NL" and acme.is_reviewed and acme.kind == "hoster"
    assert sorted(a.asn for a in acme.asns.all()) == [64500, 64501]
    assert sorted(p.prefix for p in acme.prefixes.all()) == ["127.10.0.0/16", "2001:db8::/32"]
    assert acme.ipv4_address_count() == 65536
    assert Hoster.objects.get(slug="edge").is_cdn


def test_reloading_updates_in_place_and_replaces_networks(db, tmp_path, capsys):
    load(tmp_path, "acme,Acme,NL,,64500,127.10.0.0/16,hoster\n", capsys)
    pk = Hoster.objects.get(slug="acme").pk
    summary, _ = load(tmp_path, "acme,Acme Hosting B.V.,NL,,64502,127.11.0.0/16,hoster\n", capsys)
    assert summary == {"created": 0, "updated": 1, "rejected": 0}
    acme = Hoster.objects.get(slug="acme")
    assert acme.pk == pk and acme.name == "Acme Hosting B.V."
    assert [a.asn for a in acme.asns.all()] == [64502]
    assert [p.prefix for p in acme.prefixes.all()] == ["127.11.0.0/16"]


def test_bad_hoster_rows_are_reported_and_good_ones_loaded(db, tmp_path, capsys):
    summary, err = load(
        tmp_path,
        "good,Good,NL,,64500,,hoster\n"
        "Bad Slug,Bad,NL,,,,hoster\n"
        "badasn,Bad,NL,,AS-x,,hoster\n"
        "badnet,Bad,NL,,,127.10.0.1/16,hoster\n"
        "badkind,Bad,NL,,,,isp\n"
        "bademail,Bad,NL,not-an-email,,,hoster\n",
        capsys,
    )
    assert summary == {"created": 1, "updated": 0, "rejected": 5}
    assert [line.split(":")[0] for line in err.strip().splitlines()] == [f"line {n}" for n in range(3, 8)]
    assert "host bits set" in err


def test_an_asn_of_a_curated_hoster_cannot_be_claimed_by_another(db, tmp_path, capsys):
    load(tmp_path, "acme,Acme,NL,,64500,,hoster\n", capsys)
    with pytest.raises(CommandError, match="AS64500 is registered to hoster acme"):
        load(tmp_path, "other,Other,NL,,64500,,hoster\n", capsys)


def test_a_curated_hoster_takes_over_an_asn_from_an_unreviewed_one(db, tmp_path, capsys):
    auto = Hoster.objects.create(slug="as64500", name="AS64500 EXAMPLE-NET", is_reviewed=False)
    auto.asns.create(asn=64500)
    _summary, err = load(tmp_path, "acme,Acme,NL,,64500,,hoster\n", capsys)
    assert Hoster.objects.get(slug="acme").asns.get().asn == 64500
    assert "moved AS64500 from as64500" in err


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


# --- Evidence is append-only --------------------------------------------------------------------


@pytest.fixture
def check(prompt_hoster):
    now = timezone.now()
    notice = Notice.objects.create(
        url="http://a.example/",
        scheme="http",
        host="a.example",
        received_at=now,
        notified_at=now,
        deadline_s=60,
        hoster=prompt_hoster,
    )
    return Check.objects.create(notice=notice, checked_at=now, outcome="online", http_status=200)


def test_a_check_cannot_be_changed(check):
    check.outcome = "removed"
    with pytest.raises(AppendOnlyError):
        check.save()
    with pytest.raises(AppendOnlyError):
        Check.objects.filter(pk=check.pk).update(outcome="removed")
    assert Check.objects.get(pk=check.pk).outcome == "online"


def test_a_check_cannot_be_deleted(check):
    with pytest.raises(AppendOnlyError):
        check.delete()
    with pytest.raises(AppendOnlyError):
        Check.objects.all().delete()
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        check.notice.delete()
    assert Check.objects.count() == 1


# --- Rules --------------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)
D = timedelta(hours=24)


def verdict(**kw):
    base = dict(status="online", notified_at=T0, deadline_at=T0 + D, takedown_at=None, now=T0 + 2 * D)
    base.update(kw)
    return rules.verdict(**base)


def test_a_takedown_at_the_deadline_is_within():
    assert verdict(status="removed", takedown_at=T0 + D) == "within"


def test_a_takedown_after_the_deadline_is_late():
    assert verdict(status="removed", takedown_at=T0 + D + timedelta(seconds=1)) == "late"


def test_still_online_before_the_deadline_is_pending_and_after_it_late():
    assert verdict(now=T0 + D / 2) == "pending"
    assert verdict(now=T0 + D + timedelta(seconds=1)) == "late"


def test_an_unconfirmed_removal_before_the_deadline_keeps_the_verdict_pending():
    assert verdict(offline_since=T0 + D - timedelta(minutes=1)) == "pending"
    assert verdict(offline_since=T0 + D + timedelta(minutes=1)) == "late"


def test_a_displacement_by_the_deadline_is_not_compliance_and_after_it_late():
    """Content that moved to another hoster was not taken down by this one (displacement): no verdict
    by the deadline (out of the rate, counted as displaced); still here after it, late."""
    assert verdict(status="removed", takedown_at=T0 + D / 2, is_displaced=True) is None
    assert verdict(status="removed", takedown_at=T0 + D, is_displaced=True) is None
    assert verdict(status="removed", takedown_at=T0 + D + timedelta(seconds=1), is_displaced=True) == "late"


def test_repeats_withdrawn_and_unresolvable_notices_without_hoster_have_no_verdict():
    assert verdict(status="repeat") is None
    assert verdict(status="withdrawn") is None
    assert verdict(status="unresolvable", hoster_id=None) is None


def test_a_notice_with_a_hoster_always_counts_for_it():
    """Only a notice without any hoster may be unresolvable; a stale one with a hoster is decided."""
    assert verdict(status="unresolvable", hoster_id=7) == "late"


def test_a_notice_not_yet_notified_is_pending():
    assert verdict(notified_at=None, deadline_at=None) == "pending"


def test_compliance_rate_excludes_pending_and_is_null_without_decisions():
    assert rules.compliance_rate(3, 1) == 0.75
    assert rules.compliance_rate(0, 0) is None
