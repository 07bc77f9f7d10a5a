from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.addresses import vet

NONE: list = []
LOOPBACK_OPEN = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "this_network"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "cgnat"),
        ("100.127.255.255", "cgnat"),
        ("169.254.169.254", "link_local"),  # the cloud metadata service
        ("224.0.0.1", "multicast"),
        ("233.1.1.1", "multicast"),  # Python calls this one global
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "private"),  # documentation
        ("198.18.0.1", "private"),  # benchmarking
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fc00::1", "ula"),
        ("fd12:3456::1", "ula"),
        ("fe80::1", "link_local"),
        ("fec0::1", "site_local"),  # Python calls this one global
        ("ff02::1", "multicast"),
        ("2001:db8::1", "private"),
        ("100::1", "reserved"),
        # IPv4 hidden in IPv6
        ("::ffff:127.0.0.1", "ipv4_mapped:loopback"),
        ("::ffff:10.0.0.1", "ipv4_mapped:private"),
        ("::ffff:169.254.169.254", "ipv4_mapped:link_local"),
        ("::127.0.0.1", "ipv4_compatible"),  # Python calls this one global
        ("::8.8.8.8", "ipv4_compatible"),
        ("2002:7f00:1::1", "6to4:loopback"),  # Python calls this one global
        ("2002:a00:1::1", "6to4:private"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "teredo:loopback"),  # client ~80ff:fffe = 127.0.0.1
        ("2001:0:a00:1::1", "teredo:private"),  # server 10.0.0.1
        ("64:ff9b::7f00:1", "nat64:loopback"),  # Python calls this one global
        ("64:ff9b:1::1", "nat64_local"),
        # not addresses at all
        ("127.1", "invalid"),
        ("2130706433", "invalid"),
        ("fe80::1%eth0", "invalid"),
        ("example.org", "invalid"),
    ],
)
def test_non_public_addresses_are_refused_with_their_reason(address, reason):
    verdict = vet(address, NONE)
    assert not verdict.is_allowed
    assert verdict.reason == reason


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::1", "::ffff:8.8.8.8"],
)
def test_public_addresses_pass(address):
    verdict = vet(address, NONE)
    assert verdict.is_allowed and verdict.reason == "public"


def test_teredo_with_public_server_and_client_is_judged_as_ipv6():
    # server 65.54.227.120, client 192.0.2.45 obfuscated -> documentation range, refused
    assert vet("2001:0:4136:e378:8000:63bf:3fff:fdd2", NONE).reason == "teredo:private"


def test_an_allowed_network_opens_exactly_its_addresses():
    assert vet("127.0.0.1", LOOPBACK_OPEN).reason == "allowed_private"
    assert vet("127.10.0.5", LOOPBACK_OPEN).is_allowed
    assert vet("::ffff:127.0.0.1", LOOPBACK_OPEN).is_allowed  # the same address on the wire
    assert not vet("10.0.0.1", LOOPBACK_OPEN).is_allowed
    assert not vet("::1", LOOPBACK_OPEN).is_allowed
    assert not vet("2002:7f00:1::1", LOOPBACK_OPEN).is_allowed  # 6to4 goes through a relay: still refused
    assert not vet("169.254.169.254", LOOPBACK_OPEN).is_allowed


def test_the_unspecified_address_and_multicast_are_never_opened():
    everything = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    assert not vet("0.0.0.0", everything).is_allowed
    assert not vet("::", everything).is_allowed
    assert not vet("224.0.0.1", everything).is_allowed
    assert vet("10.0.0.1", everything).is_allowed


def test_the_default_allowed_networks_come_from_settings(settings):
    settings.MONITOR_ALLOWED_PRIVATE_NETWORKS = []
    assert not vet("127.0.0.1").is_allowed
    settings.MONITOR_ALLOWED_PRIVATE_NETWORKS = LOOPBACK_OPEN
    assert vet("127.0.0.1").is_allowed


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_and_its_mapped_form_get_the_same_verdict(ip):
    assert vet(ip, NONE).is_allowed == vet(f"::ffff:{ip}", NONE).is_allowed


@given(st.ip_addresses(v=4))
def test_no_address_that_python_calls_non_global_is_allowed(ip):
    if not ip.is_global:
        assert not vet(ip, NONE).is_allowed


@given(st.ip_addresses(v=6))
def test_no_ipv6_address_with_a_non_public_ipv4_inside_is_allowed(ip):
    inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
    if inner is not None and not vet(inner, NONE).is_allowed:
        assert not vet(ip, NONE).is_allowed
    if not ip.is_global:
        assert not vet(ip, NONE).is_allowed
