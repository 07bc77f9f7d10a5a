"""monitor/rdap.py: parsing recorded real RDAP responses of the five registries (IPv4 and IPv6),
and lookups against an RDAP server on loopback (never the internet: tests/fixtures/rdap.py)."""

from __future__ import annotations

import json

import pytest

from monitor import rdap
from monitor.rdap import Status
from tests.fixtures.rdap import RECORDED


def parsed(ip):
    record = RECORDED[ip]
    return rdap.parse(ip, record["response"], registry=record["asn_data"]["asn_registry"])


# --- Parsing recorded responses ----------------------------------------------------------------


def test_ripe_ipv4_registered_network_and_abuse_contacts():
    net = parsed("62.239.237.1")
    assert net.cidr == "62.239.237.0/24" and net.name == "BT-CORPORATE"
    assert net.handle == "62.239.237.0 - 62.239.237.255" and net.country == "GB"
    assert net.abuse_emails == ("zzdnsr@bt.com", "steve.a.marshall@bt.com", "lee.bailey-hague@bt.com")
    assert net.abuse_source == "entity"


def test_ripe_ipv6():
    net = parsed("2a00:2381:ffff::1")
    assert net.cidr == "2a00:2381:ffff::/64" and net.name == "BT-WORLD-IPVSIX-LAUNCH"
    assert "zzdnsr@bt.com" in net.abuse_emails


def test_arin_ipv4_abuse_contact_nested_under_the_organisation_is_found():
    net = parsed("74.125.225.229")
    assert net.cidr == "74.125.0.0/16" and net.name == "GOOGLE"
    assert net.handle == "NET-74-125-0-0-1" and net.parent_handle == "NET-74-0-0-0-0"
    # Only in the raw response: ZG39-ARIN (role abuse) sits inside the registrant entity GOGL.
    assert net.abuse_emails == ("arin-contact@google.com",)


def test_arin_ipv6():
    net = parsed("2001:4860:4860::8888")
    assert net.cidr == "2001:4860::/32" and net.parent_handle == "NET6-2001-4800-0"
    assert net.abuse_emails == ("arin-contact@google.com",)


def test_apnic_ipv4_takes_the_abuse_role_not_other_contacts():
    net = parsed("210.107.73.73")
    assert net.cidr == "210.107.0.0/17" and net.country == "KR"
    assert net.parent_handle == "210.0.0.0 - 210.255.255.255"
    assert net.abuse_emails == ("hostmaster@nic.or.kr",)  # IRT-KRNIC-KR; not the NOC's addresses


def test_apnic_ipv6_without_any_abuse_contact():
    net = parsed("2001:240:10c:1::ca20:9d1d")
    assert net.cidr == "2001:240::/32" and net.name == "IIJ-JPNIC-JP-20000308"
    assert net.abuse_emails == () and net.abuse_source == ""


def test_lacnic_ipv4_abuse_address_is_lower_cased():
    net = parsed("200.57.141.161")
    assert net.name == "Triara.com, S.A. de C.V." and net.country == "MX"
    assert net.abuse_emails == ("operacion.redes@triara.com",)


def test_afrinic_ipv4_abuse_address_from_a_remark_when_no_entity_has_the_role():
    net = parsed("196.11.240.215")
    assert net.name == "ORG-VSA1-AFRINIC" and net.parent_handle == "196.0.0.0 - 196.255.255.255"
    assert net.cidr.startswith("196.11.239.0/24")  # a range that is several CIDR blocks
    assert net.abuse_emails == ("abuse@mtnbusiness.co.za",) and net.abuse_source == "remarks"


def test_afrinic_ipv6():
    net = parsed("2001:43f8:7b0::")
    assert net.cidr == "2001:43f8:7b0::/48" and net.parent_handle == "2001:4200::/23" and net.country == "KE"


def test_the_evidence_form_is_plain_json():
    evidence = parsed("74.125.225.229").as_evidence()
    assert json.loads(json.dumps(evidence)) == evidence
    assert set(evidence) >= {"cidr", "name", "handle", "parent_handle", "abuse_emails"}


@pytest.mark.parametrize("ip", ["127.10.0.5", "10.1.2.3", "192.0.2.7", "2001:db8::1", "::1", "fd00::1"])
def test_non_public_addresses_are_not_applicable_without_any_request(ip, settings):
    settings.MONITOR_RDAP_BASE_URL = "http://127.0.0.1:9/"  # a request would fail loudly
    result = rdap.lookup(ip, registry="ripencc")
    assert result.status is Status.NOT_APPLICABLE and result.network is None and result.error


# --- Lookups against a loopback RDAP server ----------------------------------------------------


def test_a_lookup_fetches_and_parses_the_registered_network(rdap_server):
    result = rdap.lookup("74.125.225.229", registry="arin")
    assert result.status is Status.FOUND and result.network.cidr == "74.125.0.0/16"
    assert result.network.abuse_emails == ("arin-contact@google.com",)
    assert rdap_server.requests == ["/ip/74.125.225.229"]  # one request: no entity follow-ups


def test_a_rate_limit_returns_at_once_instead_of_sleeping(rdap_server):
    rdap_server.status = 429
    import time

    started = time.monotonic()
    result = rdap.lookup("62.239.237.1", registry="ripencc")
    assert result.status is Status.RATE_LIMITED and time.monotonic() - started < 10  # not 120 s
    assert len(rdap_server.requests) == 1


def test_a_rate_limit_notice_in_the_body_counts_as_a_rate_limit(rdap_server):
    rdap_server.body = {"notices": [{"title": "Rate Limit Notice", "description": ["slow down"]}]}
    assert rdap.lookup("200.57.141.161", registry="lacnic").status is Status.RATE_LIMITED


def test_http_errors_and_unreachable_servers_fail_for_a_later_retry(rdap_server, settings):
    rdap_server.status = 500
    assert rdap.lookup("62.239.237.1", registry="ripencc").status is Status.FAILED
    settings.MONITOR_RDAP_BASE_URL = "http://127.0.0.1:9"  # nothing listens there
    result = rdap.lookup("62.239.237.1", registry="ripencc")
    assert result.status is Status.FAILED and result.error


def test_without_a_base_url_each_registry_has_its_own_server(settings):
    settings.MONITOR_RDAP_BASE_URL = ""
    assert rdap.rdap_url("62.239.237.1", "ripencc") == "https://rdap.db.ripe.net/ip/62.239.237.1"
    assert rdap.rdap_url("200.57.141.161", "lacnic").startswith("https://rdap.lacnic.net/")
    assert rdap.rdap_url("203.0.113.1", "").startswith("https://rdap-bootstrap.arin.net/")
