"""compliance/pseudonym.py: keyed pseudonyms of URLs, hosts and server addresses; prefixes widened."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compliance import pseudonym
from compliance.pseudonym import coarse_network, pseudonymise, pseudonymise_address


def test_an_address_pseudonym_is_keyed(settings):
    pseudonym._key.cache_clear()
    here = pseudonymise_address("203.0.113.77")
    settings.PSEUDONYM_KEY = "another-deployment"
    pseudonym._key.cache_clear()
    try:
        assert pseudonymise_address("203.0.113.77") != here
    finally:
        pseudonym._key.cache_clear()


def test_hashing_every_ipv4_address_without_the_key_finds_nothing():
    """No unkeyed hash of the address, in any usual spelling, equals its pseudonym."""
    shown = pseudonymise_address("203.0.113.77")
    for text in ("203.0.113.77", "address:203.0.113.77", "http://203.0.113.77/lit.jpg"):
        for digest in (hashlib.sha256, hashlib.md5, hashlib.sha1):
            assert digest(text.encode()).hexdigest()[:32] != shown


def test_an_ip_literal_hosts_pseudonym_differs_from_its_address_pseudonym():
    assert pseudonymise("203.0.113.77") != pseudonymise_address("203.0.113.77")


def test_one_address_has_one_pseudonym_whatever_its_spelling():
    assert pseudonymise_address("2001:DB8:0:0::77") == pseudonymise_address("2001:db8::77")
    assert pseudonymise_address("2001:db8::77") != pseudonymise_address("2001:db8::78")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("198.51.100.71/32", "198.51.100.0/24"),
        ("198.51.100.71", "198.51.100.0/24"),
        ("198.51.100.64/26", "198.51.100.0/24"),
        ("198.51.100.0/24", "198.51.100.0/24"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("2001:db8:77::77/128", "2001:db8:77::/48"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("", ""),
        ("not a prefix", ""),
    ],
)
def test_a_prefix_narrower_than_24_or_48_is_widened(value, shown):
    assert coarse_network(value) == shown


@given(st.ip_addresses())
def test_a_widened_prefix_never_holds_fewer_than_256_addresses_nor_spells_the_address(ip):
    shown = ipaddress.ip_network(coarse_network(str(ip)))
    assert ip in shown and shown.num_addresses >= 256
    if ip.version == 4 and ip.packed[-1] != 0:
        assert str(ip) not in coarse_network(str(ip))
