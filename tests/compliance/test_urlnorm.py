from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from compliance.urlnorm import InvalidURL, normalize_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Example.COM/a/b", "http://example.com/a/b"),
        ("https://example.com:443/x", "https://example.com/x"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        ("https://example.com:80/x", "https://example.com:80/x"),
        ("http://example.com/a#fragment", "http://example.com/a"),
        ("http://example.com/a?b=1#frag", "http://example.com/a?b=1"),
        ("http://example.com?", "http://example.com/"),
        ("http://example.com.", "http://example.com/"),
        ("http://bücher.example/straße", "http://xn--bcher-kva.example/stra%C3%9Fe"),
        ("http://例え.テスト/", "http://xn--r8jz45g.xn--zckzah/"),
        ("http://example.com/%7euser/%2fx", "http://example.com/~user/%2Fx"),
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),
        ("http://example.com/a b".replace(" ", "%20"), "http://example.com/a%20b"),
        ("http://example.com/100%", "http://example.com/100%25"),
        ("http://2130706433/", "http://127.0.0.1/"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://0177.0.0.1/", "http://127.0.0.1/"),
        ("http://127.1/", "http://127.0.0.1/"),
        ("http://[2001:DB8:0:0::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("  http://example.com/trimmed  ", "http://example.com/trimmed"),
        ("http://my_site.example.org/", "http://my_site.example.org/"),
    ],
)
def test_urls_are_normalised(raw, expected):
    assert normalize_url(raw).url == expected


def test_the_parts_are_kept():
    url = normalize_url("https://Files.Example.org:8443/img/1.jpg?size=large")
    assert (url.scheme, url.host, url.port, url.path, url.query) == (
        "https",
        "files.example.org",
        8443,
        "/img/1.jpg",
        "size=large",
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("ftp://example.com/x", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("example.com/x", "no scheme"),
        ("http://user:pw@example.com/", "user info"),
        ("http://user@example.com/", "user info"),
        ("http://exa mple.com/", "white space"),
        ("http://example.com/a b", "white space"),
        ("http://example.com/\x00", "control character"),
        ("http://example.com/\x7f", "control character"),
        ("http://example.com/\u0085", "control character"),
        ("http:///path", "no host"),
        ("http:example.com", "no host"),
        ("http://localhost/", "fully qualified"),
        ("http://example.com:99999/", "outside 1-65535"),
        ("http://example.com:8o/", "not a number"),
        ("http://256.1.1.1/", "not a valid IPv4"),
        ("http://1.2.3.4.5/", "not a valid IPv4"),
        ("http://[::1/", "cannot be parsed"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://exa_mple-.com/", "label"),
        ("http://example.com/" + "a" * 2100, "longer than 2,048"),
        ("", "empty"),
    ],
)
def test_bad_urls_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(InvalidURL) as excinfo:
        normalize_url(raw)
    assert reason in str(excinfo.value)


# --- Properties ---------------------------------------------------------------------------------

labels = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12)
hosts = st.lists(labels, min_size=2, max_size=4).map(".".join).filter(lambda h: not h.split(".")[-1].isdigit())
path_chars = st.text(alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%äé漢", max_size=40)
urls = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}/{path}{query}",
    st.sampled_from(["http", "https", "HTTP", "HtTpS"]),
    hosts,
    st.sampled_from(["", ":80", ":443", ":8080"]),
    path_chars,
    st.one_of(st.just(""), path_chars.map(lambda q: "?" + q)),
)


@given(urls)
def test_normalising_twice_changes_nothing(raw):
    try:
        once = normalize_url(raw)
    except InvalidURL:
        assume(False)
    assert normalize_url(once.url) == once


@given(urls)
def test_a_normalised_url_is_plain_ascii_without_fragment_or_default_port(raw):
    try:
        result = normalize_url(raw)
    except InvalidURL:
        assume(False)
    assert result.url.isascii()
    assert "#" not in result.url
    assert result.url.startswith(("http://", "https://"))
    assert result.host == result.host.lower()
    assert not (result.scheme == "http" and result.port == 80)
    assert not (result.scheme == "https" and result.port == 443)
    assert len(result.url) <= 2048


@given(st.text(max_size=300))
def test_any_text_is_either_normalised_or_rejected_with_a_reason(raw):
    try:
        result = normalize_url(raw)
    except InvalidURL as exc:
        reason = str(exc)
        result = None
    if result is None:
        assert reason
    else:
        assert result.url.startswith(("http://", "https://"))
        assert not any(c.isspace() for c in result.url)


@given(hosts, st.sampled_from(["http", "https"]))
def test_case_of_scheme_and_host_does_not_matter(host, scheme):
    assert normalize_url(f"{scheme.upper()}://{host.upper()}/x").url == normalize_url(f"{scheme}://{host}/x").url
