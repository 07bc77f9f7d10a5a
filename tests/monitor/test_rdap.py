"""monitor/rdap.py: parsing recorded real RDAP responses of the five registries (IPv4 and IPv6),
and lookups against an RDAP server on loopback (never the internet)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitor import rdap
from monitor.rdap import Status

RECORDED = json.loads((Path(__file__).parent / "data" / "rdap_recorded.json").read_text())


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


@pytest.fixture
def rdap_server(settings):
    """Serves the recorded responses at /ip/<address>; `rdap_server.status` forces a status."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            server.requests.append(self.path)
            ip = self.path.rsplit("/", 1)[-1]
            if server.status != 200:
                self.send_response(server.status)
                self.end_headers()
                return
            body = json.dumps(server.body or RECORDED[ip]["response"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rdap+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.requests, server.status, server.body = [], 200, None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.MONITOR_RDAP_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.MONITOR_RDAP_TIMEOUT = 2
    yield server
    server.shutdown()
    server.server_close()


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


# --- RDAP in attribution: queued, looked up by drain_rdap, never waited for ---------------------


@pytest.fixture
def rdap_on(settings, rdap_server, dns_server, db):
    from monitor import rdap_drain

    settings.MONITOR_RDAP = True
    rdap_drain._rdap_backoff.clear()
    dns_server.add_origin("62.239.0.0/16", 2856, cc="GB", registry="ripencc")
    dns_server.add_as_name(2856, "BT-UK-AS BTnet UK Regional network, GB", cc="GB")
    dns_server.add_origin("200.57.128.0/20", 19373, cc="MX", registry="lacnic")
    dns_server.add_host("bt.example", "62.239.237.1")
    dns_server.add_host("triara.example", "200.57.141.161")
    dns_server.add_host("loop.example", "127.10.0.5")
    dns_server.add_origin("127.10.0.0/16", 64500, cc="NL")
    yield rdap_server
    rdap_drain._rdap_backoff.clear()


def _notice(url):
    from django.utils import timezone

    from compliance import services

    now = timezone.now()
    return services.notice_create(data=services.notice_input_parse(url=url, now=now), source="t", now=now)[0]


def test_attribution_does_not_wait_for_rdap_and_the_record_follows(rdap_on):
    from compliance.attributions import notice_reattribute, rdap_records_after
    from compliance.models import RdapRecord
    from monitor.attribution_drain import drain_attribution
    from monitor.models import RdapQueue
    from monitor.rdap_drain import drain_rdap

    n = _notice("https://bt.example/x")
    drain_attribution()
    first = n.attributions.get()
    assert first.rdap == {"status": "pending"} and first.hoster.slug == "as2856"
    assert rdap_on.requests == []  # attribution made no RDAP request
    assert list(RdapQueue.objects.values_list("ip", "registry")) == [("62.239.237.1", "ripencc")]

    assert drain_rdap() is False  # one address: the batch was not full
    record = RdapRecord.objects.get()
    assert record.status == "found" and record.network["cidr"] == "62.239.237.0/24"
    assert record.network["abuse_emails"][0] == "zzdnsr@bt.com" and not RdapQueue.objects.exists()
    assert rdap_records_after([first]) == {first.pk: record}  # the evidence row itself is unchanged
    first.refresh_from_db()
    assert first.rdap == {"status": "pending"}

    # The next attribution carries it inline.
    notice_reattribute(notice_ids=[n.pk])
    drain_attribution()
    latest = n.attributions.order_by("-id").first()
    assert latest.rdap["status"] == "found" and latest.rdap["name"] == "BT-CORPORATE"
    assert latest.rdap["record_id"] == record.pk
    assert len(rdap_on.requests) == 1


def test_a_loopback_address_is_recorded_as_having_no_rdap(rdap_on):
    from monitor.attribution_drain import drain_attribution
    from monitor.models import RdapQueue

    n = _notice("https://loop.example/x")
    drain_attribution()
    evidence = n.attributions.get().rdap
    assert evidence["status"] == "not_applicable" and "127.10.0.5" in evidence["reason"]
    assert not RdapQueue.objects.exists() and rdap_on.requests == []


def test_a_rate_limited_registry_backs_off_without_stalling_anything(rdap_on):
    import time

    from django.utils import timezone

    from compliance.models import RdapRecord
    from monitor.attribution_drain import drain_attribution
    from monitor.models import RdapQueue
    from monitor.rdap_drain import drain_rdap

    _notice("https://bt.example/x")
    _notice("https://triara.example/y")
    drain_attribution()
    rdap_on.status = 429
    started = time.monotonic()

    drain_rdap()

    assert time.monotonic() - started < 10  # never the 120 s sleep
    assert not RdapRecord.objects.exists()
    now = timezone.now()
    waiting = dict(RdapQueue.objects.values_list("ip", "next_attempt_at"))
    assert all(at > now + timezone.timedelta(seconds=50) for at in waiting.values())
    assert drain_rdap() is False  # both registries back off: nothing is due
    requests = len(rdap_on.requests)

    # Later the registries answer again.
    rdap_on.status = 200
    drain_rdap(now=now + timezone.timedelta(seconds=61))
    assert RdapRecord.objects.count() == 2 and not RdapQueue.objects.exists()
    assert len(rdap_on.requests) == requests + 2


def test_a_failing_lookup_is_retried_later_then_given_up(rdap_on, settings):
    from django.utils import timezone

    from compliance.models import RdapRecord
    from monitor.attribution_drain import drain_attribution
    from monitor.models import RdapQueue
    from monitor.rdap_drain import drain_rdap

    settings.MONITOR_RDAP_ATTEMPTS = 2
    _notice("https://bt.example/x")
    drain_attribution()
    rdap_on.status = 500
    now = timezone.now()
    drain_rdap(now=now)
    entry = RdapQueue.objects.get()
    assert entry.attempts == 1 and "500" in entry.last_error and entry.next_attempt_at > now
    drain_rdap(now=entry.next_attempt_at)
    assert not RdapQueue.objects.exists() and not RdapRecord.objects.exists()


def test_with_rdap_off_nothing_is_queued_or_looked_up(rdap_on, settings):
    from monitor.attribution_drain import drain_attribution
    from monitor.models import RdapQueue
    from monitor.rdap_drain import drain_rdap

    settings.MONITOR_RDAP = False
    n = _notice("https://bt.example/x")
    drain_attribution()
    assert n.attributions.get().rdap == {} and not RdapQueue.objects.exists()
    assert drain_rdap() is False and rdap_on.requests == []
