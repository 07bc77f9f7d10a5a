"""The attribution decision (monitor/attribution_decision.py): pure, no database, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from monitor.asn import ASName, Origin
from monitor.attribution_decision import (
    LOOKUP_FAILED,
    LOOKUP_NOT_ROUTED,
    MATCHED_ASN,
    MATCHED_NONE,
    MATCHED_PREFIX,
    MATCHED_UNKNOWN_AS,
    AddressFacts,
    RegisteredNetworks,
    UnknownAS,
    decide,
    give_up,
    retry_at,
)

PROMPT, SLOW, CDN, RESELLER = 1, 2, 3, 4

REGISTRY = RegisteredNetworks(
    prefixes=[
        ("127.10.0.0/16", PROMPT),
        ("2001:db8:10::/48", PROMPT),
        ("127.10.7.0/24", RESELLER),  # a reseller's block inside Prompt's space
        ("127.20.0.0/16", SLOW),
        ("127.50.0.0/16", CDN),
    ],
    asns=[(64500, PROMPT), (64501, SLOW), (64510, CDN)],
    kinds={CDN: "cdn"},
)


def at(ip, *origins, lookup="found", names=None):
    return AddressFacts(ip, lookup, tuple(origins), names or {})


def o(asns, prefix, cc="NL"):
    return Origin(tuple(asns) if isinstance(asns, list) else (asns,), prefix, cc, "ripencc", "2010-01-01")


# --- Prefixes and ASNs -------------------------------------------------------------------------


def test_a_registered_prefix_names_the_hoster():
    decision = decide([at("127.10.0.5", o(64500, "127.10.0.0/16"))], REGISTRY)
    assert decision.hoster == PROMPT and not decision.is_ambiguous and not decision.is_behind_cdn
    assert decision.chosen.ip == "127.10.0.5" and decision.chosen.matched_by == MATCHED_PREFIX
    assert decision.chosen.registered_prefix == "127.10.0.0/16" and decision.chosen.asn == 64500


def test_the_most_specific_registered_prefix_wins():
    decision = decide([at("127.10.7.9", o(64500, "127.10.0.0/16"))], REGISTRY)
    assert decision.hoster == RESELLER and decision.chosen.registered_prefix == "127.10.7.0/24"
    # The origin AS alone would have named Prompt: kept in the evidence.
    assert decision.chosen.asn_hosters == (PROMPT,)


def test_a_registered_prefix_beats_the_origin_asn_of_someone_else():
    # Slow's customer space announced by Prompt's AS: the registered block names Slow.
    decision = decide([at("127.20.0.9", o(64500, "127.20.0.0/16"))], REGISTRY)
    assert decision.hoster == SLOW


def test_without_a_registered_prefix_the_registered_origin_asn_names_the_hoster():
    decision = decide([at("203.0.113.5", o(64501, "203.0.113.0/24"))], REGISTRY)
    assert decision.hoster == SLOW and decision.chosen.matched_by == MATCHED_ASN
    assert decision.chosen.routed_prefix == "203.0.113.0/24"


def test_an_ipv6_address_is_matched_against_ipv6_prefixes():
    decision = decide([at("2001:db8:10::5")], REGISTRY)
    assert decision.hoster == PROMPT
    assert decide([at("2001:db8:99::5")], REGISTRY).hoster is None


def test_multi_origin_the_first_registered_asn_names_the_hoster():
    decision = decide([at("203.0.113.5", o([64999, 64501], "203.0.113.0/24"))], REGISTRY)
    assert decision.hoster == SLOW and decision.chosen.asn == 64501
    assert decision.chosen.asns == (64999, 64501) and not decision.is_ambiguous


def test_multi_origin_with_asns_of_two_hosters_is_ambiguous():
    decision = decide([at("203.0.113.5", o([64500, 64501], "203.0.113.0/24"))], REGISTRY)
    assert decision.hoster == PROMPT and decision.is_ambiguous
    assert decision.chosen.asn_hosters == (PROMPT, SLOW)


def test_an_unknown_asn_names_an_unknown_as_hoster_after_the_as():
    names = {64999: ASName(64999, "FARAWAY-AS Far Away Hosting, SC", "SC")}
    decision = decide([at("198.51.100.7", o(64999, "198.51.100.0/24", cc="SC"), names=names)], REGISTRY)
    assert decision.hoster == UnknownAS(64999, "FARAWAY-AS Far Away Hosting, SC", "SC")
    assert decision.hoster.slug == "as64999"
    assert decision.chosen.matched_by == MATCHED_UNKNOWN_AS and decision.chosen.as_name.startswith("FARAWAY")


def test_an_unknown_as_without_a_name_is_named_by_its_number():
    decision = decide([at("198.51.100.7", o(64999, "198.51.100.0/24"))], REGISTRY)
    assert decision.hoster.display_name == "AS64999"


def test_an_unrouted_unregistered_address_names_nobody():
    decision = decide([at("198.51.100.7", lookup=LOOKUP_NOT_ROUTED)], REGISTRY)
    assert decision.hoster is None and decision.chosen is None
    assert decision.candidates[0].matched_by == MATCHED_NONE and not decision.needs_retry
    assert "no registered prefix" in decision.reason


# --- CDNs --------------------------------------------------------------------------------------


def test_a_cdn_is_recorded_as_intermediary_never_as_the_hoster():
    decision = decide([at("127.50.0.7", o(64510, "127.50.0.0/16"))], REGISTRY)
    assert decision.hoster is None
    assert decision.cdn == CDN and decision.is_behind_cdn
    assert decision.chosen.ip == "127.50.0.7" and decision.chosen.is_cdn
    assert "CDN" in decision.reason


def test_a_cdn_found_by_asn_is_a_cdn_too():
    decision = decide([at("192.0.2.9", o(64510, "192.0.2.0/24"))], REGISTRY)
    assert decision.cdn == CDN and decision.hoster is None


def test_cdn_addresses_do_not_vote_for_the_hoster():
    decision = decide(
        [at("127.50.0.7"), at("127.50.0.8"), at("127.20.0.9")],
        REGISTRY,
    )
    assert decision.hoster == SLOW and decision.cdn == CDN and decision.is_behind_cdn
    assert not decision.is_ambiguous


# --- Several addresses -------------------------------------------------------------------------


def test_addresses_naming_different_hosters_are_ambiguous_and_the_majority_wins():
    decision = decide([at("127.20.0.1"), at("127.10.0.1"), at("127.20.0.2")], REGISTRY)
    assert decision.hoster == SLOW and decision.is_ambiguous
    assert decision.chosen.ip == "127.20.0.1"
    assert [c.hoster for c in decision.candidates] == [SLOW, PROMPT, SLOW]  # all kept
    assert decision.hosters == [SLOW, PROMPT]
    assert "ambiguous" in decision.reason


def test_a_tie_goes_to_the_stronger_match_then_to_the_answer_order():
    by_asn = at("203.0.113.5", o(64501, "203.0.113.0/24"))
    by_prefix = at("127.10.0.1")
    assert decide([by_asn, by_prefix], REGISTRY).hoster == PROMPT
    assert decide([at("127.20.0.1"), at("127.10.0.1")], REGISTRY).hoster == SLOW


def test_ipv4_and_ipv6_addresses_of_one_hoster_are_not_ambiguous():
    decision = decide([at("127.10.0.5"), at("2001:db8:10::5")], REGISTRY)
    assert decision.hoster == PROMPT and not decision.is_ambiguous


def test_a_failed_origin_lookup_without_a_prefix_match_asks_for_a_retry():
    decision = decide([at("203.0.113.5", lookup=LOOKUP_FAILED), at("127.10.0.1")], REGISTRY)
    assert decision.needs_retry and decision.hoster == PROMPT
    assert not decide([at("127.10.0.1", lookup=LOOKUP_FAILED)], REGISTRY).needs_retry


def test_candidates_are_kept_as_evidence_with_hoster_slugs():
    decision = decide(
        [at("127.10.7.9", o(64500, "127.10.0.0/16")), at("198.51.100.7", o(64999, "198.51.100.0/24"))], REGISTRY
    )
    evidence = [c.as_evidence({PROMPT: "prompt", RESELLER: "reseller"}) for c in decision.candidates]
    assert evidence[0]["hoster"] == "reseller" and evidence[0]["asn_hosters"] == ["prompt"]
    assert evidence[1]["hoster"] == "as64999" and evidence[1]["matched_by"] == "unknown_as"


@given(st.lists(st.sampled_from(["127.10.0.1", "127.20.0.1", "127.50.0.1", "127.10.7.1", "198.51.100.1"]), min_size=1))
def test_the_hoster_is_never_a_cdn_and_always_one_of_the_candidates(ips):
    decision = decide([at(ip) for ip in ips], REGISTRY)
    assert decision.hoster != CDN
    if decision.hoster is not None:
        assert decision.hoster in [c.hoster for c in decision.candidates]
        assert decision.is_ambiguous == (len(decision.hosters) > 1)


# --- Retries of names that do not resolve ------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_retries_are_spaced_by_a_96th_of_the_deadline_with_a_last_one_at_the_deadline():
    deadline_at = T0 + timedelta(hours=24)
    assert retry_at(now=T0, deadline_at=deadline_at, deadline_s=86400) == T0 + timedelta(minutes=15)
    late = deadline_at - timedelta(minutes=5)
    assert retry_at(now=late, deadline_at=deadline_at, deadline_s=86400) == deadline_at


def test_a_compressed_deadline_retries_at_least_a_second_apart():
    assert retry_at(now=T0, deadline_at=T0 + timedelta(seconds=60), deadline_s=60) == T0 + timedelta(seconds=1)


def test_giving_up_needs_the_deadline_after_a_definitive_answer_and_twice_as_long_after_failures():
    deadline_at = T0 + timedelta(hours=24)
    assert not give_up(
        now=deadline_at - timedelta(seconds=1), deadline_at=deadline_at, deadline_s=86400, is_definitive=True
    )
    assert give_up(now=deadline_at, deadline_at=deadline_at, deadline_s=86400, is_definitive=True)
    assert not give_up(
        now=deadline_at + timedelta(hours=23), deadline_at=deadline_at, deadline_s=86400, is_definitive=False
    )
    assert give_up(
        now=deadline_at + timedelta(hours=24), deadline_at=deadline_at, deadline_s=86400, is_definitive=False
    )
