"""URL validation and normalisation for intake (pure, no I/O).

Two reports of the same resource must normalise to the same string, because the URL is what
makes a later notice a repeat of an open one. The rules:

- http and https only; scheme and host lower-cased; a trailing dot on the host dropped;
- international host names to punycode (IDNA 2008 with UTS #46 mapping, as browsers do);
- IPv4 hosts in any spelling a resolver or browser accepts (`2130706433`, `0x7f.1`, `0177.0.0.1`,
  `127.1`) rewritten to dotted quad (WHATWG URL rules); IPv6 hosts compressed, in brackets;
- default ports (80 for http, 443 for https) and the fragment dropped; an empty path becomes `/`;
- dot segments removed; percent-escapes upper-cased, escapes of unreserved characters decoded,
  and characters that may not appear raw in a URL percent-encoded as UTF-8;
- rejected, each with its reason: user info, control characters, white space, other schemes,
  a missing or malformed host, a bad port, more than 2,048 characters.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import idna

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters that may stand raw in a path or query (RFC 3986 pchar plus "/" and "?"), besides "%".
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_QUERY_SAFE = _PATH_SAFE | frozenset("?")
_HEX = frozenset("0123456789abcdefABCDEF")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


class InvalidURL(ValueError):
    """The URL cannot be a notice; `str(error)` says why, in words for the person who sent it."""


@dataclass(frozen=True)
class NormalizedURL:
    url: str
    scheme: str
    host: str  # punycode, or an IP address (IPv6 without brackets)
    port: int | None  # None for the scheme's default port
    path: str
    query: str


def normalize_url(raw: str) -> NormalizedURL:
    if not isinstance(raw, str):
        raise InvalidURL("the URL must be text")
    text = raw.strip(" \t\r\n")
    if not text:
        raise InvalidURL("the URL is empty")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidURL(f"the URL is longer than {MAX_URL_LENGTH:,} characters ({len(text):,})")
    for ch in text:
        if ord(ch) < 0x20 or ord(ch) == 0x7F or 0x80 <= ord(ch) <= 0x9F:
            raise InvalidURL(f"the URL contains a control character (U+{ord(ch):04X})")
        if ch.isspace():
            raise InvalidURL("the URL contains white space")
    if "\\" in text:
        raise InvalidURL("the URL contains a backslash")

    scheme, sep, _rest = text.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise InvalidURL("the URL has no scheme (it must start with http:// or https://)")
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidURL(f"the scheme {scheme!r} is not allowed: only http and https")
    if not text[len(scheme) + 1 :].startswith("//"):
        raise InvalidURL("the URL has no host (expected // after the scheme)")

    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise InvalidURL(f"the URL cannot be parsed: {exc}") from None
    netloc = parts.netloc
    if "@" in netloc:
        raise InvalidURL("the URL contains user info (user:password@); such URLs are not accepted")
    host_text, port = _split_host_port(netloc)
    host = _normalize_host(host_text)
    if port == DEFAULT_PORTS[scheme]:
        port = None

    path = _remove_dot_segments(_normalize_escapes(parts.path or "/", _PATH_SAFE))
    if not path.startswith("/"):
        path = "/" + path
    query = _normalize_escapes(parts.query, _QUERY_SAFE)

    host_in_url = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{host_in_url}{f':{port}' if port else ''}{path}{f'?{query}' if query else ''}"
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"the normalised URL is longer than {MAX_URL_LENGTH:,} characters ({len(url):,})")
    return NormalizedURL(url=url, scheme=scheme, host=host, port=port, path=path, query=query)


def _split_host_port(netloc: str) -> tuple[str, int | None]:
    if not netloc:
        raise InvalidURL("the URL has no host")
    if netloc.startswith("["):
        end = netloc.find("]")
        if end == -1:
            raise InvalidURL("the IPv6 address in the URL has no closing bracket")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidURL("unexpected characters after the IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text = netloc.rpartition(":")
        if not sep:
            host, port_text = netloc, None
    if port_text is None:
        return host, None
    if port_text == "":
        return host, None  # "example.org:" means the default port
    if not port_text.isdigit() or not port_text.isascii():
        raise InvalidURL(f"the port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise InvalidURL(f"the port {port} is outside 1-65535")
    return host, port


@lru_cache(maxsize=65536)
def _normalize_host(host: str) -> str:
    """Cached: a bulk report repeats a few thousand host names over 10^5 URLs, and IDNA is slow."""
    if not host:
        raise InvalidURL("the URL has no host")
    if host.startswith("["):
        inner = host[1:-1]
        if "%" in inner:
            raise InvalidURL("IPv6 zone identifiers are not accepted")
        try:
            return ipaddress.IPv6Address(inner).compressed
        except ValueError:
            raise InvalidURL(f"{inner!r} is not a valid IPv6 address") from None
    if "%" in host:
        raise InvalidURL("the host name contains a percent sign")
    host = host.rstrip(".") if host.endswith(".") and not host.endswith("..") else host
    ipv4 = _parse_ipv4(host)
    if ipv4 is not None:
        return ipv4
    try:
        ascii_host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as exc:
        # Underscores are legal in DNS labels (not in IDNA): retry label by label for ASCII names.
        if host.isascii():
            ascii_host = host.lower()
        else:
            raise InvalidURL(f"the host name {host!r} is not a valid international domain name: {exc}") from None
    except UnicodeError:
        raise InvalidURL(f"the host name {host!r} is not valid") from None
    ascii_host = ascii_host.lower()
    if len(ascii_host) > 253:
        raise InvalidURL("the host name is longer than 253 characters")
    labels = ascii_host.split(".")
    if len(labels) < 2:
        raise InvalidURL(f"the host {ascii_host!r} is not a fully qualified domain name")
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidURL(f"the host name label {label!r} is not valid")
    if labels[-1].isdigit():
        raise InvalidURL(f"the host {ascii_host!r} looks like an IP address but is not a valid one")
    return ascii_host


def _parse_ipv4(host: str) -> str | None:
    """WHATWG's IPv4 parser: None when the host is not meant as an IPv4 address.

    A host whose last label is numeric (decimal, 0x-hex or 0-octal) is an IPv4 address in WHATWG
    rules and in resolvers' inet_aton; if it is not a valid one, that is an error, not a name.
    """
    labels = host.split(".")
    if labels and labels[-1] == "" and len(labels) > 1:
        labels.pop()
    if not labels or not _is_ipv4_number(labels[-1]):
        return None
    if len(labels) > 4:
        raise InvalidURL(f"{host!r} is not a valid IPv4 address (too many parts)")
    numbers = []
    for label in labels:
        if not _is_ipv4_number(label):
            raise InvalidURL(f"{host!r} is not a valid IPv4 address")
        numbers.append(_ipv4_number(label))
    for n in numbers[:-1]:
        if n > 255:
            raise InvalidURL(f"{host!r} is not a valid IPv4 address (a part is above 255)")
    if numbers[-1] >= 256 ** (5 - len(numbers)):
        raise InvalidURL(f"{host!r} is not a valid IPv4 address (out of range)")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n * 256 ** (3 - i)
    return str(ipaddress.IPv4Address(value))


def _is_ipv4_number(label: str) -> bool:
    if not label or not label.isascii():
        return False
    if label[:2].lower() == "0x":
        return all(c in _HEX for c in label[2:])
    return label.isdigit()


def _ipv4_number(label: str) -> int:
    if label[:2].lower() == "0x":
        return int(label[2:], 16) if len(label) > 2 else 0
    if len(label) > 1 and label.startswith("0"):
        if any(c in "89" for c in label):
            raise InvalidURL(f"{label!r} is not a valid octal number in an IPv4 address")
        return int(label, 8)
    return int(label)


def _normalize_escapes(text: str, safe: frozenset[str]) -> str:
    """Upper-case percent-escapes, decode escaped unreserved characters, encode unsafe ones."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%" and i + 2 < len(text) and text[i + 1] in _HEX and text[i + 2] in _HEX:
            decoded = chr(int(text[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + text[i + 1 : i + 3].upper())
            i += 3
            continue
        if ch in safe:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        is_last = i == len(segments) - 1
        if segment == ".":
            if is_last:
                output.append("")
            continue
        if segment == "..":
            if len(output) > 1:
                output.pop()
            if is_last:
                output.append("")
            continue
        output.append(segment)
    result = "/".join(output)
    return result if result.startswith("/") else "/" + result
