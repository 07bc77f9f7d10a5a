"""monitor/dns.py against the real DNS server of demo/sandbox on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import dns.message
import dns.query
import pytest

from monitor import dns as mdns
from monitor.dns import Outcome


def resolve(name, **kwargs):
    return mdns.resolve_host_sync(name, **kwargs)


def txt(name):
    return asyncio.run(mdns.resolve_txt(name))


# --- The client's outcomes ---------------------------------------------------------------------


def test_a_and_aaaa_are_both_resolved_ipv4_first(dns_server):
    dns_server.add_aaaa("files.example", "2001:db8:10::5", ttl=120)
    dns_server.add_a("files.example", "127.10.0.5", "127.10.0.6", ttl=60)

    answer = resolve("files.example")

    assert answer.outcome is Outcome.RESOLVED and answer.is_definitive and not answer.is_transient
    assert answer.ips == ("127.10.0.5", "127.10.0.6", "2001:db8:10::5")
    assert answer.ipv4 == ("127.10.0.5", "127.10.0.6") and answer.ipv6 == ("2001:db8:10::5",)
    assert answer.ttl == 60  # the smaller of the two
    assert answer.cname_chain == () and answer.canonical_name == "files.example"


def test_a_name_with_only_ipv6_resolves(dns_server):
    dns_server.add_aaaa("six.example", "2001:db8:10::6")
    assert resolve("six.example").ips == ("2001:db8:10::6",)


def test_the_cname_chain_is_recorded_in_order(dns_server):
    dns_server.set_cname("www.shop.example", "shop.cdn.example", ttl=300)
    dns_server.set_cname("shop.cdn.example", "edge7.cdn.example", ttl=30)
    dns_server.add_a("edge7.cdn.example", "127.50.0.7", ttl=600)

    answer = resolve("WWW.Shop.Example.")

    assert answer.name == "www.shop.example"
    assert answer.ips == ("127.50.0.7",)
    assert answer.cname_chain == ("shop.cdn.example", "edge7.cdn.example")
    assert answer.canonical_name == "edge7.cdn.example"
    assert answer.ttl == 30  # the smallest TTL along the chain


def test_nxdomain_is_definitive(dns_server):
    answer = resolve("nobody.example")
    assert answer.outcome is Outcome.NXDOMAIN
    assert answer.is_definitive and not answer.is_transient and answer.ips == ()


def test_a_cname_into_a_missing_name_is_nxdomain_with_its_chain(dns_server):
    dns_server.set_cname("alias.example", "gone.example")
    answer = resolve("alias.example")
    assert answer.outcome is Outcome.NXDOMAIN
    assert answer.cname_chain == ("gone.example",)


def test_a_name_without_addresses_is_no_answer(dns_server):
    dns_server.add_txt("text-only.example", "v=spf1 -all")
    answer = resolve("text-only.example")
    assert answer.outcome is Outcome.NO_ANSWER and answer.is_definitive


def test_a_parent_of_existing_names_is_no_answer_not_nxdomain(dns_server):
    dns_server.add_a("deep.sub.example", "127.10.0.9")
    assert resolve("sub.example").outcome is Outcome.NO_ANSWER


def test_servfail_is_transient_and_retried(dns_server):
    dns_server.add_a("broken.example", "127.10.0.1")
    dns_server.servfail("broken.example")

    answer = resolve("broken.example")

    assert answer.outcome is Outcome.SERVFAIL and answer.is_transient and not answer.is_definitive
    assert answer.ips == ()
    assert dns_server.queried("broken.example", "A") == 2  # MONITOR_DNS_ATTEMPTS in the tests


def test_refused_counts_as_a_server_failure(dns_server):
    dns_server.set_behaviour("refusing.example", "refused")
    assert resolve("refusing.example").outcome is Outcome.SERVFAIL


def test_a_name_that_is_never_answered_times_out(dns_server, settings):
    settings.MONITOR_DNS_TIMEOUT = 0.25
    dns_server.drop("blackhole.example")
    started = time.monotonic()

    answer = resolve("blackhole.example")

    elapsed = time.monotonic() - started
    assert answer.outcome is Outcome.TIMEOUT and answer.is_transient
    # Two attempts of MONITOR_DNS_TIMEOUT (0.25 s) each, A and AAAA at the same time.
    assert 0.45 < elapsed < 2.0
    assert dns_server.queried("blackhole.example", "A") == 2


def test_a_server_that_never_answers_anything_times_out(settings):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        settings.MONITOR_NAMESERVERS = [silent.getsockname()]
        settings.MONITOR_DNS_TIMEOUT = 0.2
        settings.MONITOR_DNS_ATTEMPTS = 1
        mdns.cache_clear()
        assert resolve("files.example").outcome is Outcome.TIMEOUT
    finally:
        silent.close()


def test_a_second_nameserver_answers_when_the_first_never_does(dns_server, settings):
    dns_server.add_a("files.example", "127.10.0.5")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        settings.MONITOR_NAMESERVERS = [silent.getsockname(), dns_server.address]
        answer = resolve("files.example")
    finally:
        silent.close()
    assert answer.ips == ("127.10.0.5",)


def test_one_type_failing_while_the_other_answers_still_resolves(dns_server):
    dns_server.add_a("half.example", "127.10.0.5")
    dns_server.servfail("half.example", rtype="AAAA")
    answer = resolve("half.example")
    assert answer.outcome is Outcome.RESOLVED and answer.ips == ("127.10.0.5",)
    assert "AAAA: servfail" in answer.partial_error


def test_one_type_failing_while_the_other_has_no_data_is_transient(dns_server, settings):
    settings.MONITOR_DNS_TIMEOUT = 0.25
    dns_server.add_txt("half.example", "no addresses")
    dns_server.drop("half.example", rtype="AAAA")
    assert resolve("half.example").outcome is Outcome.TIMEOUT


def test_an_ip_literal_resolves_to_itself_without_a_query(dns_server):
    assert resolve("127.10.0.5").ips == ("127.10.0.5",)
    assert resolve("[2001:db8::1]").ips == ("2001:db8::1",)
    assert dns_server.query_count == 0


def test_an_invalid_name_is_nxdomain_without_a_query(dns_server):
    answer = resolve("a" * 64 + ".example")
    assert answer.outcome is Outcome.NXDOMAIN and "not a valid DNS name" in answer.error


def test_large_answers_fall_back_to_tcp(dns_server):
    ips = [f"127.10.{i // 250}.{i % 250 + 1}" for i in range(60)]  # > 512 bytes over UDP
    dns_server.add_a("many.example", *ips)

    answer = resolve("many.example")

    assert set(answer.ips) == set(ips)
    protocols = {p for n, t, p in dns_server.queries if n == "many.example" and t == "A"}
    assert protocols == {"udp", "tcp"}


def test_the_server_answers_over_tcp(dns_server):
    dns_server.add_a("files.example", "127.10.0.5")
    response = dns.query.tcp(
        dns.message.make_query("files.example", "A"), dns_server.host, port=dns_server.port, timeout=2
    )
    assert [r.address for r in response.answer[0]] == ["127.10.0.5"]


# --- TXT ---------------------------------------------------------------------------------------


def test_txt_records_are_returned_one_text_per_record(dns_server):
    long_text = "x" * 300  # more than one character-string on the wire
    dns_server.add_txt("notes.example", "first", long_text)
    answer = txt("notes.example")
    assert answer.outcome is Outcome.RESOLVED
    assert sorted(answer.texts) == sorted(["first", long_text])


def test_txt_of_a_name_without_txt_is_no_answer(dns_server):
    dns_server.add_a("files.example", "127.10.0.5")
    assert txt("files.example").outcome is Outcome.NO_ANSWER
    assert txt("none.example").outcome is Outcome.NXDOMAIN


# --- The cache ---------------------------------------------------------------------------------


def test_answers_are_cached_per_exact_name_for_their_ttl(dns_server):
    dns_server.add_a("files.example", "127.10.0.5", ttl=1)
    dns_server.add_a("other.files.example", "127.10.0.6", ttl=300)

    first = resolve("files.example")
    dns_server.set("files.example", "A", ["127.10.0.99"], ttl=1)
    second = resolve("files.example")
    sibling = resolve("other.files.example")  # a different name is its own lookup

    assert not first.is_cached and second.is_cached
    assert second.ips == ("127.10.0.5",)
    assert sibling.ips == ("127.10.0.6",)
    assert dns_server.queried("files.example", "A") == 1
    time.sleep(1.05)
    assert resolve("files.example").ips == ("127.10.0.99",)


def test_ttl_zero_is_not_cached_and_use_cache_false_asks_again(dns_server):
    dns_server.add_a("zero.example", "127.10.0.5", ttl=0)
    dns_server.add_a("long.example", "127.10.0.6", ttl=300)
    resolve("zero.example")
    resolve("zero.example")
    resolve("long.example")
    fresh = resolve("long.example", use_cache=False)
    assert dns_server.queried("zero.example", "A") == 2
    assert dns_server.queried("long.example", "A") == 2 and not fresh.is_cached


def test_transient_failures_are_never_cached(dns_server):
    dns_server.add_a("flaky.example", "127.10.0.5")
    dns_server.servfail("flaky.example")
    assert resolve("flaky.example").is_transient
    dns_server.set_behaviour("flaky.example", None)
    assert resolve("flaky.example").ips == ("127.10.0.5",)


def test_negative_answers_are_cached_at_most_the_negative_ttl(dns_server, settings):
    settings.MONITOR_DNS_NEGATIVE_TTL = 0
    resolve("later.example")
    dns_server.add_a("later.example", "127.10.0.5")
    assert resolve("later.example").ips == ("127.10.0.5",)


def test_concurrent_lookups_of_one_name_share_one_query(dns_server):
    dns_server.add_a("popular.example", "127.10.0.5")
    dns_server.delay("popular.example", 0.1)

    async def many():
        return await asyncio.gather(*(mdns.resolve_host("popular.example") for _ in range(50)))

    answers = asyncio.run(many())

    assert {a.ips for a in answers} == {("127.10.0.5",)}
    assert dns_server.queried("popular.example", "A") == 1


def test_resolve_hosts_answers_each_distinct_name_once(dns_server):
    for i in range(30):
        dns_server.add_a(f"h{i}.example", f"127.10.1.{i + 1}")
    names = [f"H{i % 30}.example" for i in range(300)]

    answers = asyncio.run(mdns.resolve_hosts(names, concurrency=10))

    assert len(answers) == 30 and answers["h7.example"].ips == ("127.10.1.8",)
    assert dns_server.query_count == 60  # A and AAAA per name


# --- The sandbox server itself -----------------------------------------------------------------


def test_rotate_answers_in_turn_then_sticks_for_rebinding_tests(dns_server):
    dns_server.rotate("rebind.example", "A", [["203.0.113.7"], ["127.0.0.1"]], ttl=0)
    assert resolve("rebind.example").ips == ("203.0.113.7",)
    assert resolve("rebind.example").ips == ("127.0.0.1",)
    assert resolve("rebind.example").ips == ("127.0.0.1",)


def test_wildcards_answer_for_names_below(dns_server):
    dns_server.add_a("*.imagehost.example", "127.10.0.8")
    dns_server.add_a("special.imagehost.example", "127.10.0.9")
    assert resolve("u123.imagehost.example").ips == ("127.10.0.8",)
    assert resolve("special.imagehost.example").ips == ("127.10.0.9",)


def test_behaviours_can_cover_a_subtree_and_be_lifted(dns_server):
    dns_server.add_a("a.down.example", "127.10.0.5")
    dns_server.nxdomain("down.example", subtree=True)
    assert resolve("a.down.example").outcome is Outcome.NXDOMAIN
    dns_server.set_behaviour("down.example", None)
    mdns.cache_clear()
    assert resolve("a.down.example").is_resolved


def test_records_and_removals_from_another_thread_while_serving(dns_server):
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            dns_server.set("churn.example", "A", [f"127.10.2.{i % 200 + 1}"], ttl=0)
            i += 1

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        answers = [resolve("churn.example") for _ in range(20)]
    finally:
        stop.set()
        thread.join()
    assert all(a.is_resolved and len(a.ips) == 1 for a in answers)


def test_a_cname_cannot_sit_beside_other_records(dns_server):
    dns_server.add_a("files.example", "127.10.0.5")
    with pytest.raises(ValueError, match="CNAME"):
        dns_server.set_cname("files.example", "elsewhere.example")


def test_team_cymru_origin_answers_for_every_address_in_a_prefix(dns_server, settings):
    dns_server.add_origin("127.10.0.0/16", 64500, cc="NL")
    dns_server.add_origin("127.10.3.0/24", [64500, 64502], cc="NL")
    dns_server.add_origin("2001:db8:10::/48", 64500, cc="NL")

    inside = txt(f"9.3.10.127.{settings.MONITOR_ASN_ZONE}")
    wider = txt(f"9.4.10.127.{settings.MONITOR_ASN_ZONE}")
    six = txt(dns_server.origin_name("2001:db8:10::abcd"))
    outside = txt(f"1.0.0.10.{settings.MONITOR_ASN_ZONE}")

    assert set(inside.texts) == {
        "64500 | 127.10.0.0/16 | NL | ripencc | 2010-01-01",
        "64500 64502 | 127.10.3.0/24 | NL | ripencc | 2010-01-01",
    }
    assert wider.texts == ("64500 | 127.10.0.0/16 | NL | ripencc | 2010-01-01",)
    assert six.texts == ("64500 | 2001:db8:10::/48 | NL | ripencc | 2010-01-01",)
    assert outside.outcome is Outcome.NXDOMAIN
    assert dns_server.origin_name("2001:db8:10::abcd").startswith("d.c.b.a.0.0.0.0.")


def test_team_cymru_as_names(dns_server, settings):
    dns_server.add_as_name(64500, "PROMPT-AS Prompt Hosting, NL", cc="NL")
    answer = txt(f"AS64500.{settings.MONITOR_ASN_NAME_ZONE}")
    assert answer.texts == ("64500 | NL | ripencc | 2010-01-01 | PROMPT-AS Prompt Hosting, NL",)
    assert txt(f"AS64999.{settings.MONITOR_ASN_NAME_ZONE}").outcome is Outcome.NXDOMAIN


def test_a_server_on_a_given_address_and_port_and_as_a_context_manager(dns_server_factory):
    first = dns_server_factory()
    port = first.port
    first.stop()
    from demo.sandbox.dnsserver import DNSServer

    with DNSServer("127.0.0.1", port) as again:
        again.add_a("files.example", "127.10.0.5")
        response = dns.query.udp(dns.message.make_query("files.example", "A"), "127.0.0.1", port=port, timeout=2)
        assert again.nameserver == f"127.0.0.1:{port}"
    assert [r.address for r in response.answer[0]] == ["127.10.0.5"]
