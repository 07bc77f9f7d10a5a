"""End to end: load hosters, import notices, `runmonitor --once` attributes them through the
configured DNS servers (the loopback DNS server), with the evidence recorded."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from compliance.models import Attribution, Hoster, Notice

HOSTERS = """slug,name,country,abuse_email,asns,prefixes,kind
prompt,Prompt Hosting B.V.,NL,abuse@prompt-hosting.test,64500,127.10.0.0/16 2001:db8:10::/48,hoster
reseller,Reseller Hosting,NL,abuse@reseller.test,,127.10.7.0/24,hoster
slowpoke,Slowpoke Hosting,NL,abuse@slowpoke.test,64502,,hoster
shieldcdn,Shield CDN,US,abuse@shield-cdn.test,64510,127.50.0.0/16,cdn
"""

NOTICES = """url,reference,hoster
https://files.prompt.example/a.jpg,R1,
https://files.prompt.example/b.jpg,R2,
https://vps.reseller.example/c.jpg,R3,
http://img.slowpoke.example/d.png,R4,
https://www.shop.example/e,R5,
https://far.example/f,R6,
https://nowhere.example/g,R7,
https://files.prompt.example/h.jpg,R8,slowpoke
"""


# runmonitor closes stale connections between batches, as in production: real transactions.
@pytest.mark.django_db(transaction=True)
def test_runmonitor_once_attributes_imported_notices_through_the_configured_dns(dns_server, tmp_path):
    dns_server.add_origin("127.10.0.0/16", 64500, cc="NL")
    dns_server.add_origin("127.20.0.0/16", 64502, cc="NL")
    dns_server.add_origin("127.50.0.0/16", 64510, cc="US", registry="arin")
    dns_server.add_origin("127.99.0.0/16", [64999, 64998], cc="SC", registry="afrinic")
    dns_server.add_as_name(64999, "FARAWAY-AS Far Away Hosting, SC", cc="SC", registry="afrinic")
    dns_server.add_host("files.prompt.example", "127.10.0.5", "2001:db8:10::5")
    dns_server.add_host("vps.reseller.example", "127.10.7.20")
    dns_server.add_host("img.slowpoke.example", "127.20.0.9")
    dns_server.set_cname("www.shop.example", "shop.shieldcdn.example")
    dns_server.add_host("shop.shieldcdn.example", "127.50.0.7")
    dns_server.add_host("far.example", "127.99.0.3")
    (tmp_path / "hosters.csv").write_text(HOSTERS)
    (tmp_path / "notices.csv").write_text(NOTICES)
    call_command("load_hosters", str(tmp_path / "hosters.csv"), stdout=io.StringIO())
    call_command("import_notices", str(tmp_path / "notices.csv"), "--source", "hotline", stdout=io.StringIO())

    call_command("runmonitor", "--once")

    by_ref = {n.reference: n for n in Notice.objects.select_related("hoster", "cdn")}
    assert by_ref["R1"].hoster.slug == "prompt" and by_ref["R2"].hoster.slug == "prompt"
    assert by_ref["R3"].hoster.slug == "reseller"  # the most specific registered prefix
    assert by_ref["R4"].hoster.slug == "slowpoke"  # by its origin ASN
    assert by_ref["R5"].hoster is None and by_ref["R5"].is_behind_cdn and by_ref["R5"].cdn.slug == "shieldcdn"
    assert by_ref["R6"].hoster.slug == "as64999"  # multi-origin, unknown: named after the first AS
    assert Hoster.objects.get(slug="as64999").name == "FARAWAY-AS Far Away Hosting, SC"
    assert by_ref["R7"].attribution_state == "retry" and by_ref["R7"].hoster is None
    assert by_ref["R8"].hoster.slug == "slowpoke" and by_ref["R8"].hoster_source == "hotline"
    for ref in ("R1", "R2", "R3", "R4", "R5", "R6", "R8"):
        assert by_ref[ref].attribution_state == "done", ref
    assert Attribution.objects.count() == 7
    assert Attribution.objects.get(notice=by_ref["R6"]).asns == [64999, 64998]
    assert "disagreement" in Attribution.objects.get(notice=by_ref["R8"]).reason
    # One lookup per host name for the notices on files.prompt.example: one by attribution, shared
    # by all three, and one by the check process (monitor/check_process.py), whose cache is its own.
    assert dns_server.queried("files.prompt.example", "A") == 2
