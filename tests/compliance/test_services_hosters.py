"""load_hosters: the curated registry of hosters and their networks (compliance/services.py
hoster_input_parse, hosters_load)."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from compliance.models import Hoster

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
