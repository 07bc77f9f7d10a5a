"""Vantage points (monitor/vantages.py) and local vantages in the check process (monitor/checker.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from demo.sandbox.httpserver import by_source, ok, status
from monitor import recheck, vantages
from monitor.models import Check, ProbeStatus
from reports import exports, scorecards
from reports.periods import Period
from tests.monitor.test_recheck import ITEM, make_notice

TWO_LOCAL = "a=local:127.0.0.1;b=local:127.0.0.2"


def test_the_default_is_one_local_vantage_as_before():
    assert vantages.parse("") == (vantages.Vantage("local"),)
    assert vantages.parse("") == vantages.DEFAULT


def test_vantages_name_a_source_address_and_resolvers():
    parsed = vantages.parse(
        "ams=local:127.0.0.1@127.53.0.1:10053;fra=local:127.0.0.2; lon=probe ;v6=local:[::1]@[::1]:53"
    )
    assert parsed == (
        vantages.Vantage("ams", "local", "127.0.0.1", (("127.53.0.1", 10053),)),
        vantages.Vantage("fra", "local", "127.0.0.2", None),
        vantages.Vantage("lon", "probe", None, None),
        vantages.Vantage("v6", "local", "::1", (("::1", 53),)),
    )
    assert parsed[2].is_probe and parsed[2].queue == "checks.lon" and parsed[2].broker_user == "probe-lon"


@pytest.mark.parametrize(
    "text",
    ["ams", "AMS=local", "a=remote", "a=local:not-an-ip", "a=local@1.2.3.4:99999", "a=local;a=probe", "a b=local"],
)
def test_a_bad_vantage_setting_is_refused_with_the_reason(text):
    with pytest.raises(vantages.VantageError):
        vantages.parse(text)


def test_consecutive_checks_rotate_and_skip_what_is_not_available():
    order = ("a", "b", "c")
    assert vantages.next_after(None, order, order) == "a"
    assert vantages.next_after(None, order, order, seed=7) == "b"  # never checked: spread by id
    assert vantages.next_after("a", order, order) == "b"
    assert vantages.next_after("c", order, order) == "a"
    assert vantages.next_after("a", order, ("a", "c")) == "c"  # b is silent: its turn goes to the next
    assert vantages.next_after("gone", order, ("b",)) == "b"


def drain():
    return recheck.run_batch(now=timezone.now() + timedelta(days=1))


def test_two_local_vantages_check_from_their_own_address_in_turn(db, http_server, settings, prompt_hoster, analyst):
    settings.MONITOR_VANTAGES = vantages.parse(TWO_LOCAL)
    # A hoster that hides the item from 127.0.0.2 only.
    url = http_server.set("/a.jpg", by_source({"127.0.0.2": status(404)}, default=ok(ITEM)))
    notice = make_notice(url, hoster=prompt_hoster)
    for _ in range(4):
        assert drain().recorded == 1
    checks = list(Check.objects.filter(notice=notice).order_by("checked_at"))
    assert [c.vantage for c in checks] in (["a", "b"] * 2, ["b", "a"] * 2)  # they take turns
    assert [c.outcome for c in checks] == [{"a": "online", "b": "removed"}[c.vantage] for c in checks]
    peers = {"a": "127.0.0.1", "b": "127.0.0.2"}
    assert [r.peer for r in http_server.requests] == [peers[c.vantage] for c in checks]
    notice.refresh_from_db()
    assert notice.takedown_at is None and notice.status == "online"  # never confirmed from one vantage
    # Selective serving: counted on the notice, the hoster's figures and the export.
    assert notice.served_selectively_count >= 1 and notice.served_selectively_at is not None
    rows = scorecards.report_rows(Period("all", None, None, "all"), now=timezone.now())
    assert {r.hoster: r.served_selectively for r in rows} == {prompt_hoster.slug: 1}
    export = exports.csv_stream(analyst, exports.ExportFilter(), now=timezone.now())
    lines = b"".join(export).decode().splitlines()
    header = lines[0].split(",")
    assert lines[1].split(",")[header.index("served_selectively_count")] == str(notice.served_selectively_count)


def test_each_local_vantage_asks_its_own_resolver(db, http_server, dns_server, dns_server_factory, settings):
    other = dns_server_factory()
    dns_server.add_a("files.example", "127.0.0.1")
    other.add_a("files.example", "127.0.0.3")  # the second vantage's resolver answers another address
    a_ns, b_ns = dns_server.address, other.address
    settings.MONITOR_VANTAGES = vantages.parse(
        f"a=local:127.0.0.1@{a_ns[0]}:{a_ns[1]};b=local:127.0.0.2@{b_ns[0]}:{b_ns[1]}"
    )
    http_server.set("/a.jpg", ok(ITEM))
    notice = make_notice(f"http://files.example:{http_server.port}/a.jpg")
    drain()
    drain()
    checks = {c.vantage: c for c in Check.objects.filter(notice=notice)}
    assert (checks["a"].resolved_ip, checks["b"].resolved_ip) == ("127.0.0.1", "127.0.0.3")
    assert checks["a"].outcome == "online" and checks["b"].error_kind == "connect_refused"


def test_a_silent_probe_is_stale_on_the_health_page_and_its_checks_go_to_the_others(
    db, http_server, settings, client, analyst
):
    settings.MONITOR_VANTAGES = vantages.parse("a=local:127.0.0.1;p=probe")
    settings.MONITOR_BROKER_URL = "amqp://guest:guest@127.0.0.1:1/nowhere"  # never reached: p is silent
    ProbeStatus.objects.create(vantage="p", probe="far:1", last_seen_at=timezone.now() - timedelta(minutes=5))
    notice = make_notice(http_server.set("/a.jpg", ok(ITEM)))
    for _ in range(3):
        assert drain().recorded == 1
    assert set(Check.objects.filter(notice=notice).values_list("vantage", flat=True)) == {"a"}
    client.force_login(analyst)
    page = client.get(reverse("monitor:health")).content.decode()
    vantage_table = page[page.index('id="vantages"') :]
    assert 'class="stale"><td>p</td>' in vantage_table
    assert "<td>a</td>" in vantage_table and "stale: its checks go to the other vantage points" in vantage_table
