"""monitor/asn.py: Team Cymru's TXT format, parsed (pure) and looked up on the loopback DNS server."""

from __future__ import annotations

import asyncio

import pytest

from monitor import asn
from monitor.asn import Origin, parse_as_name_txt, parse_origin_txt
from monitor.dns import Outcome

# --- Parsing (pure) ----------------------------------------------------------------------------


def test_an_origin_record_is_parsed():
    origin = parse_origin_txt("15169 | 8.8.8.0/24 | US | arin | 1992-12-01")
    assert origin == Origin((15169,), "8.8.8.0/24", "US", "arin", "1992-12-01")
    assert origin.asn == 15169 and origin.prefixlen == 24


def test_a_multi_origin_record_is_split_into_its_asns():
    origin = parse_origin_txt('"20738 20773 | 212.227.0.0/16 | DE | ripencc | 1999-08-13"')
    assert origin.asns == (20738, 20773)
    assert origin.asn == 20738


def test_an_ipv6_origin_record_is_parsed():
    origin = parse_origin_txt("3320 | 2003::/19 | DE | ripencc | 2005-03-14")
    assert origin.prefix == "2003::/19" and origin.prefixlen == 19


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "AS64500 | 192.0.2.0/24 | NL",
        "64500 | not-a-prefix | NL",
        " | 192.0.2.0/24 | NL",
        "0 | 192.0.2.0/24",
    ],
)
def test_malformed_origin_records_are_ignored(text):
    assert parse_origin_txt(text) is None


def test_a_record_with_missing_trailing_fields_still_gives_asn_and_prefix():
    assert parse_origin_txt("64500 | 192.0.2.0/24") == Origin((64500,), "192.0.2.0/24")


def test_an_as_name_record_is_parsed_and_a_name_may_contain_bars():
    assert parse_as_name_txt("15169 | US | arin | 2000-03-30 | GOOGLE - Google LLC, US") == asn.ASName(
        15169, "GOOGLE - Google LLC, US", "US", "arin", "2000-03-30"
    )
    assert parse_as_name_txt("64500 | NL | ripencc | 2010-01-01 | ODD | NAME, NL").name == "ODD | NAME, NL"
    assert parse_as_name_txt("not an asn | NL | ripencc | x | y") is None


def test_the_most_specific_prefix_comes_first():
    wide = Origin((64500,), "127.10.0.0/16")
    narrow = Origin((64502,), "127.10.3.0/24")
    assert asn.most_specific_first([wide, narrow]) == (narrow, wide)


def test_query_names_follow_the_configured_zones(settings):
    settings.MONITOR_ASN_ZONE = "origin.test"
    settings.MONITOR_ASN_ZONE6 = "origin6.test"
    settings.MONITOR_ASN_NAME_ZONE = "names.test"
    assert asn.origin_query_name("192.0.2.7") == "7.2.0.192.origin.test"
    assert asn.origin_query_name("2001:db8::1") == "1." + "0." * 23 + "8.b.d.0.1.0.0.2.origin6.test"
    assert asn.as_name_query_name(64500) == "AS64500.names.test"


# --- Lookups on the loopback DNS server --------------------------------------------------------


def origin(ip):
    return asyncio.run(asn.lookup_origin(ip))


def test_lookup_finds_the_most_specific_of_several_covering_prefixes(dns_server):
    dns_server.add_origin("127.10.0.0/16", 64500, cc="NL")
    dns_server.add_origin("127.10.3.0/24", [64502, 64503], cc="DE", registry="ripencc")

    answer = origin("127.10.3.9")

    assert answer.outcome is Outcome.RESOLVED and answer.found
    assert answer.origin.prefix == "127.10.3.0/24" and answer.origin.asns == (64502, 64503)
    assert [o.prefix for o in answer.origins] == ["127.10.3.0/24", "127.10.0.0/16"]


def test_lookup_of_an_ipv6_address_uses_nibbles_under_the_ipv6_zone(dns_server, settings):
    dns_server.add_origin("2001:db8:10::/48", 64500, cc="NL")
    answer = origin("2001:db8:10::5")
    assert answer.origin.asns == (64500,) and answer.origin.prefix == "2001:db8:10::/48"
    name = asn.origin_query_name("2001:db8:10::5")
    assert name.endswith("." + settings.MONITOR_ASN_ZONE6) and dns_server.queried(name, "TXT") == 1


def test_an_unrouted_address_is_not_found_and_not_transient(dns_server):
    answer = origin("127.99.0.1")
    assert answer.outcome is Outcome.NXDOMAIN and not answer.found and not answer.is_transient


def test_a_failing_origin_zone_is_transient(dns_server, settings):
    dns_server.servfail(settings.MONITOR_ASN_ZONE, subtree=True)
    answer = origin("127.10.0.1")
    assert answer.is_transient and not answer.found


def test_records_for_other_prefixes_are_ignored(dns_server):
    dns_server.add_txt(asn.origin_query_name("127.10.0.1"), "64500 | 10.0.0.0/8 | NL | ripencc | 2010-01-01")
    assert not origin("127.10.0.1").found


def test_origins_are_cached_per_exact_address(dns_server):
    dns_server.add_origin("127.10.0.0/16", 64500)
    for _ in range(3):
        origin("127.10.0.1")
    origin("127.10.0.2")
    assert dns_server.queried(asn.origin_query_name("127.10.0.1"), "TXT") == 1
    assert dns_server.queried(asn.origin_query_name("127.10.0.2"), "TXT") == 1


def test_as_names_are_looked_up(dns_server):
    dns_server.add_as_name(64500, "PROMPT-AS Prompt Hosting, NL", cc="NL")
    name = asyncio.run(asn.lookup_as_name(64500))
    assert name.name == "PROMPT-AS Prompt Hosting, NL" and name.country == "NL"
    assert asyncio.run(asn.lookup_as_name(64599)) is None
