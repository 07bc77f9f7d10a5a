"""The check client against real servers on loopback: a scripted HTTP server and a real DNS server."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
import ssl
import subprocess
import time

import pytest

from demo.sandbox.httpserver import flap, hang, large, ok, redirect, reset, slow, status
from monitor.check_client import CheckClient, Observation

BODY = b"the reported item \x00\x01 7f3a"


def check(url: str, **overrides) -> Observation:
    return checks([url], **overrides)[0]


def checks(urls: list[str], **overrides) -> list[Observation]:
    async def run():
        async with CheckClient.from_settings(**overrides) as client:
            return await asyncio.gather(*(client.check(u) for u in urls))

    return asyncio.run(run())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_200_is_observed_as_its_status_and_the_sha256_of_its_body(http_server, settings):
    url = http_server.set("/a.jpg", ok(BODY))
    obs = check(url)
    assert obs.http_status == 200 and obs.error_kind == ""
    assert obs.body_sha256 == hashlib.sha256(BODY).hexdigest()
    assert obs.byte_count == len(BODY) and obs.is_body_complete and not obs.is_truncated
    assert obs.resolved_ip == "127.0.0.1"
    assert obs.dns_outcome == ""  # an IP literal: no DNS
    assert obs.duration_ms < 2000
    assert BODY not in repr(obs).encode()  # the observation carries no byte of the body
    seen = http_server.requests[0]
    assert seen.user_agent == settings.MONITOR_USER_AGENT and "Monitor" in seen.user_agent


@pytest.mark.parametrize("code", [404, 410, 451, 429, 500, 503])
def test_statuses_are_recorded_as_they_come(http_server, code):
    obs = check(http_server.set("/x", status(code)))
    assert obs.http_status == code and obs.error_kind == ""


def test_a_loopback_ip_literal_is_refused_without_connecting_unless_opened(http_server, settings):
    url = http_server.set("/a.jpg", ok(BODY))
    settings.MONITOR_ALLOWED_PRIVATE_NETWORKS = []
    obs = check(url)
    assert obs.error_kind == "refused_address" and obs.refused_reason == "loopback"
    assert obs.http_status is None
    assert http_server.hits("/a.jpg") == 0


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("10.0.0.1", "private"),
        ("169.254.169.254", "link_local"),
        ("[::ffff:169.254.169.254]", "ipv4_mapped:link_local"),
    ],
)
def test_a_non_public_ip_literal_is_refused(http_server, host, reason):
    obs = check(f"http://{host}/latest/meta-data/")
    assert obs.error_kind == "refused_address" and obs.refused_reason == reason


def test_redirects_are_followed_hop_by_hop(http_server):
    http_server.set("/r1", redirect("/r2", 301))
    http_server.set("/r2", redirect("/final.jpg", 307))
    http_server.set("/final.jpg", ok(BODY))
    obs = check(http_server.url("/r1"))
    assert obs.http_status == 200 and obs.redirect_count == 2
    assert obs.final_url == http_server.url("/final.jpg")
    assert obs.body_sha256 == hashlib.sha256(BODY).hexdigest()


def test_more_than_five_redirects_are_not_followed(http_server):
    http_server.set("/loop", redirect("/loop"))
    obs = check(http_server.url("/loop"))
    assert obs.error_kind == "too_many_redirects"
    assert http_server.hits("/loop") == 6  # the URL and five redirects


def test_a_redirect_to_a_refused_address_is_not_followed(http_server):
    http_server.set("/r", redirect("http://169.254.169.254/latest/meta-data/"))
    obs = check(http_server.url("/r"))
    assert obs.error_kind == "refused_address" and obs.refused_reason == "link_local"
    assert obs.redirect_count == 1 and obs.error_hop == 1


def test_a_redirect_to_an_odd_spelling_of_a_refused_address_is_refused(http_server, settings):
    settings.MONITOR_ALLOWED_PRIVATE_NETWORKS = [ipaddress.ip_network("127.0.0.1/32")]
    # 2130706434 is 127.0.0.2, which a system resolver would happily connect to
    http_server.set("/r", redirect(f"http://2130706434:{http_server.port}/a"))
    obs = check(http_server.url("/r"))
    assert obs.error_kind == "refused_address" and obs.refused_reason == "loopback"
    assert obs.final_url == f"http://127.0.0.2:{http_server.port}/a"


def test_a_redirect_to_another_scheme_is_not_followed(http_server):
    http_server.set("/r", redirect("file:///etc/passwd"))
    obs = check(http_server.url("/r"))
    assert obs.error_kind == "bad_redirect" and obs.http_status == 302


def test_a_reset_connection_is_an_error_not_a_status(http_server):
    obs = check(http_server.set("/x", reset()))
    assert obs.error_kind in {"reset", "disconnected"} and obs.http_status is None


def test_a_body_slower_than_the_timeout_ends_the_check_at_the_timeout(http_server):
    url = http_server.set("/slow", slow(b"abcdefghij", delay_s=0.3))
    started = time.monotonic()
    obs = check(url, timeout_s=0.8)
    assert time.monotonic() - started < 2
    assert obs.error_kind == "timeout" and obs.http_status == 200 and not obs.is_body_complete


def test_a_server_that_never_answers_times_out(http_server):
    obs = check(http_server.set("/hang", hang()), timeout_s=0.5)
    assert obs.error_kind == "timeout" and obs.http_status is None
    assert 400 <= obs.duration_ms < 1500


def test_a_body_larger_than_the_cap_is_hashed_up_to_the_cap_and_dropped(http_server):
    url = http_server.set("/big", large(50 * 1024 * 1024))
    started = time.monotonic()
    obs = check(url, max_bytes=100_000)
    assert time.monotonic() - started < 5
    assert obs.http_status == 200 and obs.is_truncated and not obs.is_body_complete
    assert obs.byte_count == 100_000
    assert obs.body_sha256 == hashlib.sha256(b"\0" * 100_000).hexdigest()


def test_a_flapping_503_is_seen_as_it_comes(http_server):
    url = http_server.set("/flap", flap(status(503), ok(BODY)))
    assert [check(url).http_status for _ in range(4)] == [503, 200, 503, 200]


def test_a_closed_port_is_a_refused_connection(http_server):
    obs = check(f"http://127.0.0.1:{free_port()}/x")
    assert obs.error_kind == "connect_refused" and obs.resolved_ip == "127.0.0.1"


def test_concurrent_checks_per_address_are_capped(http_server):
    url = http_server.set("/slowish", slow(b"ab", delay_s=0.1))
    obs = checks([url] * 12, per_ip_concurrency=3, concurrency=50)
    assert all(o.http_status == 200 for o in obs)
    assert http_server.max_in_flight("/slowish") == 3


# --- DNS ----------------------------------------------------------------------------------------


def test_a_host_name_is_resolved_by_the_products_dns_and_vetted(http_server, dns_server):
    dns_server.add_a("files.example", "127.0.0.1")
    http_server.set("/a.jpg", ok(BODY))
    obs = check(f"http://files.example:{http_server.port}/a.jpg")
    assert obs.http_status == 200 and obs.dns_outcome == "resolved" and obs.resolved_ip == "127.0.0.1"
    assert http_server.requests[0].host == f"files.example:{http_server.port}"


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        (lambda d: d.nxdomain("gone.example"), "dns_nxdomain"),
        (lambda d: d.add_txt("gone.example", "no address here"), "dns_no_answer"),
        (lambda d: d.servfail("gone.example"), "dns_servfail"),
        (lambda d: d.drop("gone.example"), "dns_timeout"),
    ],
)
def test_dns_failures_are_recorded_by_kind(http_server, dns_server, setup, kind):
    setup(dns_server)
    obs = check(f"http://gone.example:{http_server.port}/a.jpg")
    assert obs.error_kind == kind and obs.dns_outcome == kind.removeprefix("dns_")
    assert http_server.requests == []


def test_a_dns_answer_with_only_refused_addresses_is_never_connected_to(http_server, dns_server):
    dns_server.add_a("internal.example", "10.1.2.3", "169.254.169.254")
    obs = check(f"http://internal.example:{http_server.port}/a.jpg")
    assert obs.error_kind == "refused_address" and obs.refused_reason == "private"


def test_a_mixed_dns_answer_uses_only_the_allowed_addresses(http_server, dns_server):
    dns_server.add_a("mixed.example", "10.1.2.3", "127.0.0.1")
    http_server.set("/a.jpg", ok(BODY))
    obs = check(f"http://mixed.example:{http_server.port}/a.jpg")
    assert obs.http_status == 200 and obs.resolved_ip == "127.0.0.1"


def test_a_name_that_rebinds_to_a_refused_address_is_refused_and_never_resolved_twice(http_server, dns_server):
    http_server.set("/a.jpg", ok(BODY))
    dns_server.rotate("rebind.example", "A", [["127.0.0.1"], ["169.254.169.254"]], ttl=0)
    dns_server.add_aaaa("rebind.example")  # no AAAA records
    url = f"http://rebind.example:{http_server.port}/a.jpg"
    first = check(url)
    assert first.http_status == 200 and first.resolved_ip == "127.0.0.1"
    assert dns_server.queried("rebind.example", "A") == 1  # aiohttp did not ask again
    second = check(url)
    assert second.error_kind == "refused_address" and second.refused_reason == "link_local"
    assert http_server.hits("/a.jpg") == 1


def test_a_redirect_to_a_host_whose_name_resolves_to_a_refused_address_is_refused(http_server, dns_server):
    dns_server.add_a("evil.example", "127.0.0.1")
    dns_server.add_a("metadata.example", "169.254.169.254")
    http_server.set("/r", redirect(f"http://metadata.example:{http_server.port}/x"))
    obs = check(f"http://evil.example:{http_server.port}/r")
    assert obs.error_kind == "refused_address" and obs.refused_reason == "link_local"
    assert obs.dns_outcome == "resolved" and obs.error_hop == 1


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=files.example", "-addext", "subjectAltName=DNS:files.example",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_https_connects_to_the_vetted_ip_and_sends_the_host_name_as_sni(http_server_factory, dns_server, tls_context):
    server = http_server_factory(ssl_context=tls_context)
    server.set("/a.jpg", ok(BODY))
    dns_server.add_a("files.example", "127.0.0.1")
    obs = check(f"https://files.example:{server.port}/a.jpg")
    assert obs.http_status == 200 and obs.body_sha256 == hashlib.sha256(BODY).hexdigest()
    assert "files.example" in server.sni_names


def test_a_tls_handshake_failure_is_a_tls_error(http_server):
    # the plain-HTTP server answers a TLS ClientHello with garbage
    obs = check(f"https://127.0.0.1:{http_server.port}/a.jpg")
    assert obs.error_kind in {"tls", "disconnected", "reset"}, obs
