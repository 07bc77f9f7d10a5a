from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

import pytest

from compliance.rules import MECHANISM_BY_REASON
from demo.sandbox.httpserver import ok, redirect, status
from monitor.check_client import CheckClient, Observation
from monitor.classification import classify

ITEM = b"the reported item"
ITEM_SHA = hashlib.sha256(ITEM).hexdigest()
OTHER_SHA = hashlib.sha256(b"something else").hexdigest()
T = datetime(2026, 3, 1, tzinfo=UTC)
URL = "http://files.example/u/7/item.jpg"


def obs(**kw) -> Observation:
    kw.setdefault("url", URL)
    kw.setdefault("started_at", T)
    if kw.get("http_status") and "body_sha256" not in kw and not kw.get("error_kind"):
        kw.update(body_sha256=ITEM_SHA, is_body_complete=True, byte_count=len(ITEM))
    return Observation(**kw)


def c(o: Observation, **kw) -> tuple[str, str]:
    result = classify(o, **kw)
    return result.outcome, result.reason


@pytest.mark.parametrize(("code", "reason"), [(404, "http_404"), (410, "http_410"), (451, "http_451")])
def test_404_410_451_are_removed(code, reason):
    assert c(obs(http_status=code)) == ("removed", reason)


def test_a_2xx_is_online():
    assert c(obs(http_status=200)) == ("online", "online")
    assert c(obs(http_status=206)) == ("online", "online")


def test_a_2xx_with_the_reported_hash_is_online_and_with_another_hash_removed():
    assert c(obs(http_status=200), content_sha256=ITEM_SHA) == ("online", "online")
    assert c(obs(http_status=200, body_sha256=OTHER_SHA, is_body_complete=True), content_sha256=ITEM_SHA) == (
        "removed",
        "content_changed",
    )


def test_a_body_over_the_cap_cannot_be_compared_and_counts_as_online():
    o = obs(http_status=200, body_sha256=OTHER_SHA, is_truncated=True, byte_count=10)
    assert c(o, content_sha256=ITEM_SHA) == ("online", "over_cap")


def test_an_encoded_body_cannot_be_compared_and_counts_as_online():
    o = obs(http_status=200, body_sha256=OTHER_SHA, is_body_complete=True, content_encoding="gzip")
    assert c(o, content_sha256=ITEM_SHA) == ("online", "encoded")


def test_a_placeholder_marked_by_an_analyst_is_removed():
    o = obs(http_status=200, body_sha256=OTHER_SHA, is_body_complete=True)
    assert c(o, placeholder_hashes={OTHER_SHA}) == ("removed", "placeholder")
    assert c(o, placeholder_hashes=set()) == ("online", "online")


@pytest.mark.parametrize(
    ("final", "reason"),
    [
        ("http://files.example/", "redirect_front_page"),
        ("https://www.files.example/", "redirect_front_page"),
        ("http://files.example/removed.png", "redirect_removed_page"),
        ("http://files.example/errors/404.html", "redirect_removed_page"),
        ("http://files.example/content-not-found", "redirect_removed_page"),
        ("http://files.example/deleted?id=7", "redirect_removed_page"),
    ],
)
def test_a_redirect_away_to_a_front_page_or_a_removed_page_is_removed(final, reason):
    assert c(obs(http_status=200, redirect_count=1, final_url=final)) == ("removed", reason)


@pytest.mark.parametrize(
    "final",
    ["https://files.example/u/7/item.jpg", "https://cdn.files.example/u/7/item.jpg", "http://files.example/u/7/x.jpg"],
)
def test_a_redirect_to_the_same_resource_or_elsewhere_is_judged_by_the_body(final):
    assert c(obs(http_status=200, redirect_count=1, final_url=final)) == ("online", "online")


def test_a_front_page_notice_redirected_to_a_front_page_is_not_removed():
    o = obs(url="http://files.example/", http_status=200, redirect_count=1, final_url="https://www.files.example/")
    assert c(o) == ("online", "online")


@pytest.mark.parametrize(
    ("code", "reason"), [(429, "http_429"), (500, "http_500"), (503, "http_503"), (403, "http_403"), (300, "http_300")]
)
def test_429_5xx_and_other_statuses_are_no_evidence(code, reason):
    assert c(obs(http_status=code)) == ("no_evidence", reason)


@pytest.mark.parametrize(
    "kind", ["reset", "disconnected", "connect_refused", "connect_error", "connect_timeout", "os_error"]
)
def test_network_level_failures_before_any_response_are_unreachable(kind):
    assert c(obs(error_kind=kind)) == ("transient", kind)


@pytest.mark.parametrize("kind", ["timeout", "tls", "protocol_error", "dns_servfail", "dns_timeout", "client_error"])
def test_other_failures_are_no_evidence(kind):
    """A server that accepted the connection and stalled, a TLS or protocol error, a failing resolver:
    none of it says the content is gone, nor that the server is."""
    assert c(obs(error_kind=kind)) == ("no_evidence", kind)


@pytest.mark.parametrize(("kind", "reason"), [("reset", "body_reset"), ("disconnected", "body_disconnected")])
def test_a_connection_lost_after_the_response_began_is_no_evidence(kind, reason):
    assert c(obs(error_kind=kind, http_status=200)) == ("no_evidence", reason)


def test_nxdomain_is_domain_gone_only_for_a_host_that_resolved_before():
    assert c(obs(error_kind="dns_nxdomain", dns_outcome="nxdomain"), resolved_before=True) == ("removed", "nxdomain")
    assert c(obs(error_kind="dns_nxdomain", dns_outcome="nxdomain"), resolved_before=False) == (
        "no_evidence",
        "never_resolved",
    )
    assert c(obs(error_kind="dns_no_answer"), resolved_before=False) == ("no_evidence", "never_resolved")
    assert c(obs(error_kind="dns_no_answer"), resolved_before=True) == ("transient", "dns_no_answer")


def test_a_name_that_never_resolved_is_absence_for_a_notice_with_a_hoster():
    """The hotline saw the content when it was reported: decided as a 404 at the first check."""
    nx = obs(error_kind="dns_nxdomain", dns_outcome="nxdomain")
    assert c(nx, resolved_before=False, has_hoster=True) == ("removed", "never_resolved")
    assert c(obs(error_kind="dns_no_answer"), resolved_before=False, has_hoster=True) == ("removed", "never_resolved")


def test_a_dns_failure_of_a_redirect_target_is_no_evidence():
    assert c(obs(error_kind="dns_nxdomain", error_hop=1, redirect_count=1)) == ("no_evidence", "redirect_dns")


def test_refused_destinations_are_refused_with_their_reason():
    assert c(obs(error_kind="refused_address", refused_reason="loopback")) == ("refused", "refused:loopback")
    assert c(obs(error_kind="refused_address", refused_reason="link_local", error_hop=2)) == (
        "refused",
        "redirect_refused:link_local",
    )


def test_a_slow_2xx_body_is_no_evidence():
    assert c(obs(error_kind="timeout", http_status=200)) == ("no_evidence", "slow_body")


def test_content_served_from_another_hosters_address_is_moved():
    assert c(obs(http_status=200), is_moved=True) == ("removed", "moved")
    assert c(obs(http_status=404), is_moved=True) == ("removed", "http_404")


def test_every_removed_reason_has_a_removal_mechanism():
    removed_reasons = {"http_404", "http_410", "http_451", "nxdomain", "content_changed", "placeholder"}
    removed_reasons |= {"redirect_front_page", "redirect_removed_page", "moved"}
    assert removed_reasons <= MECHANISM_BY_REASON.keys()


# --- against the real server ---------------------------------------------------------------------


def observe(url):
    async def run():
        async with CheckClient.from_settings() as client:
            return await client.check(url)

    return asyncio.run(run())


def test_a_hoster_redirecting_to_its_removed_image_is_observed_as_removed(http_server):
    http_server.set("/img/abc.jpg", redirect("/static/removed.png"))
    http_server.set("/static/removed.png", ok(b"PNG placeholder"))
    assert c(observe(http_server.url("/img/abc.jpg"))) == ("removed", "redirect_removed_page")


def test_a_hoster_redirecting_to_its_front_page_is_observed_as_removed(http_server):
    http_server.set("/img/abc.jpg", redirect("/", 301))
    http_server.set("/", ok(b"<html>welcome</html>"))
    assert c(observe(http_server.url("/img/abc.jpg"))) == ("removed", "redirect_front_page")


def test_changed_content_on_the_real_server_is_removed(http_server):
    url = http_server.set("/a.jpg", ok(ITEM))
    assert c(observe(url), content_sha256=ITEM_SHA) == ("online", "online")
    http_server.set("/a.jpg", ok(b"a different picture"))
    assert c(observe(url), content_sha256=ITEM_SHA) == ("removed", "content_changed")
    http_server.set("/a.jpg", status(451))
    assert c(observe(url), content_sha256=ITEM_SHA) == ("removed", "http_451")


# Every reason the classifier gives (module docstring of monitor/classification.py).
REASONS = [
    "online", "over_cap", "encoded", "http_404", "http_410", "http_451", "nxdomain", "content_changed",
    "placeholder", "redirect_front_page", "redirect_removed_page", "moved", "timeout", "slow_body", "reset",
    "disconnected", "connect_refused", "connect_error", "tls", "dns_servfail", "dns_timeout", "dns_no_answer",
    "redirect_dns", "http_429", "http_503", "http_403", "too_many_redirects", "bad_redirect", "protocol_error",
    "never_resolved", "client_error", "refused:loopback", "redirect_refused:private",
]  # fmt: skip


def test_every_check_reason_reads_as_words_in_english_and_in_dutch():
    """Pages show why a check was classified so in the reader's language, never the stored code."""
    from django.utils.translation import override

    from compliance.display import reason_label

    with override("en"):
        english = {code: reason_label(code) for code in REASONS}
    with override("nl"):
        dutch = {code: reason_label(code) for code in REASONS}
    assert all(english[code] != code for code in REASONS)
    assert english["http_404"] == "not found (404)" and dutch["http_404"] == "niet gevonden (404)"
    assert dutch["http_503"] == "HTTP-status 503" and dutch["online"] == "het item wordt aangeboden"
    assert [code for code in REASONS if dutch[code] == english[code]] == []
    assert reason_label("some_new_kind") == "some_new_kind" and reason_label("") == ""
