"""RDAP: the registered network of an address and its abuse contacts (ipwhois, synchronous).

The origin AS often announces a customer's or a reseller's space; the registered block (RDAP
network: CIDR, name, handle, parent handle) is closer to the responsible party, and its abuse
contacts are where a notice goes. This module does one lookup and parses it; scheduling, back-off
per registry and storage are monitor/attribution_drain.py's (`drain_rdap`), which runs lookups in worker
threads so that a slow registry never holds up anything else. Attribution never waits for RDAP.

    result = rdap.lookup("192.0.2.7", registry="ripencc")   # from Team Cymru's answer
    result.status     # FOUND, NOT_APPLICABLE (loopback, private, documentation...: ipwhois
                      # refuses them), RATE_LIMITED (back off that registry), FAILED (retry later)
    result.network    # RdapNetwork(cidr, name, handle, parent_handle, country, abuse_emails, ...)

- ipwhois is called with `retry_count=0`: on HTTP 429 or a "Rate Limit Notice" it raises
  `HTTPRateLimitError` at once instead of sleeping `rate_limit_timeout` (120 s by default) in the
  calling thread. `root_ent_check=False` and `depth=0`: one HTTP request per lookup; abuse
  contacts nested in other entities (ARIN puts them under the organisation) are read from the raw
  response instead of fetched.
- The server: the registry's RDAP service from ipwhois's table (`ipwhois.rdap.RIR_RDAP`), ARIN's
  bootstrap redirect for an unknown registry, or `MONITOR_RDAP_BASE_URL` (`<base>/ip/<address>`)
  for every registry when set (a local RDAP mirror, or a test server on loopback).
- Abuse e-mail addresses: of entities with the role `abuse` at any depth; when none has one, the
  addresses that network remarks give for abuse reports (`abuse_source` says which).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from enum import StrEnum

from django.conf import settings
from ipwhois import exceptions as ipwhois_errors
from ipwhois.net import Net
from ipwhois.rdap import BOOTSTRAP_URL, RDAP, RIR_RDAP


class Status(StrEnum):
    FOUND = "found"
    NOT_APPLICABLE = "not_applicable"  # not a registered public address: no RDAP, ever
    RATE_LIMITED = "rate_limited"  # the registry said "slow down": try later, back off
    FAILED = "failed"  # HTTP or parse error: try later


@dataclass(frozen=True)
class RdapNetwork:
    cidr: str
    name: str = ""
    handle: str = ""
    parent_handle: str = ""
    country: str = ""
    type: str = ""
    start_address: str = ""
    end_address: str = ""
    abuse_emails: tuple[str, ...] = ()
    abuse_source: str = ""  # "entity", "remarks" or "" (none found)

    def as_evidence(self) -> dict:
        return {
            "cidr": self.cidr,
            "name": self.name,
            "handle": self.handle,
            "parent_handle": self.parent_handle,
            "country": self.country,
            "type": self.type,
            "start_address": self.start_address,
            "end_address": self.end_address,
            "abuse_emails": list(self.abuse_emails),
            "abuse_source": self.abuse_source,
        }


@dataclass(frozen=True)
class RdapResult:
    ip: str
    status: Status
    registry: str = ""
    network: RdapNetwork | None = None
    error: str = ""
    url: str = field(default="", compare=False)


# --- Parsing (no I/O) --------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _vcard_emails(entity: dict) -> list[str]:
    vcard = entity.get("vcardArray")
    if not isinstance(vcard, list) or len(vcard) < 2 or not isinstance(vcard[1], list):
        return []
    return [str(e[3]).strip() for e in vcard[1] if isinstance(e, list) and len(e) > 3 and e[0] == "email" and e[3]]


def _walk_entities(entities, depth: int = 0):
    for entity in entities or []:
        if isinstance(entity, dict):
            yield entity
            if depth < 5:
                yield from _walk_entities(entity.get("entities"), depth + 1)


def abuse_emails(parsed: dict) -> tuple[tuple[str, ...], str]:
    """(addresses, source) from an ipwhois RDAP result made with `inc_raw=True`."""
    found: list[str] = []
    for obj in (parsed.get("objects") or {}).values():
        if "abuse" in (obj.get("roles") or []):
            found += [e["value"] for e in ((obj.get("contact") or {}).get("email") or []) if e.get("value")]
    for entity in _walk_entities((parsed.get("raw") or {}).get("entities")):
        if "abuse" in (entity.get("roles") or []):
            found += _vcard_emails(entity)
    if found:
        return tuple(dict.fromkeys(e.lower() for e in found)), "entity"
    for remark in (parsed.get("network") or {}).get("remarks") or []:
        for line in (remark.get("description") or "").splitlines():
            if "abuse" in line.lower():
                found += _EMAIL.findall(line)
    if found:
        return tuple(dict.fromkeys(e.lower() for e in found)), "remarks"
    return (), ""


def parse(ip: str, response: dict, *, registry: str = "") -> RdapNetwork:
    """Parse a recorded or fetched RDAP `ip network` response (raises on a non-public address)."""
    parsed = RDAP(Net(ip)).lookup(
        inc_raw=True,
        retry_count=0,
        response=response,
        asn_data={"asn_registry": registry if registry in RIR_RDAP else "arin"},
        depth=0,
        root_ent_check=False,
    )
    return network_of(parsed)


def network_of(parsed: dict) -> RdapNetwork:
    net = parsed.get("network") or {}
    emails, source = abuse_emails(parsed)
    return RdapNetwork(
        cidr=str(net.get("cidr") or ""),
        name=str(net.get("name") or ""),
        handle=str(net.get("handle") or ""),
        parent_handle=str(net.get("parent_handle") or ""),
        country=str(net.get("country") or ""),
        type=str(net.get("type") or ""),
        start_address=str(net.get("start_address") or ""),
        end_address=str(net.get("end_address") or ""),
        abuse_emails=emails,
        abuse_source=source,
    )


@functools.lru_cache(maxsize=65536)
def not_applicable_reason(ip: str) -> str:
    """Why ipwhois refuses the address ("" if it is a registered public address)."""
    try:
        Net(ip)
    except ipwhois_errors.IPDefinedError as exc:
        return str(exc)
    except ValueError as exc:
        return f"not an IP address: {exc}"
    return ""


def rdap_url(ip: str, registry: str) -> str:
    base = settings.MONITOR_RDAP_BASE_URL.rstrip("/")
    if base:
        return f"{base}/ip/{ip}"
    if registry in RIR_RDAP:
        return RIR_RDAP[registry]["ip_url"].format(ip)
    return f"{BOOTSTRAP_URL}/ip/{ip}"


# --- The lookup (one HTTP request; call it off the event loop) ---------------------------------


def lookup(ip: str, *, registry: str = "") -> RdapResult:
    """Look one address up (blocking, at most `MONITOR_RDAP_TIMEOUT` seconds). Never sleeps on a
    rate limit: it returns RATE_LIMITED and the caller backs off."""
    reason = not_applicable_reason(ip)
    if reason:
        return RdapResult(ip, Status.NOT_APPLICABLE, registry, error=reason)
    url = rdap_url(ip, registry)
    try:
        net = Net(ip, timeout=settings.MONITOR_RDAP_TIMEOUT)
        response = net.get_http_json(url=url, retry_count=0, rate_limit_timeout=0)
        network = network_of(
            RDAP(net).lookup(
                inc_raw=True,
                retry_count=0,
                response=response,
                asn_data={"asn_registry": registry if registry in RIR_RDAP else "arin"},
                depth=0,
                root_ent_check=False,
                rate_limit_timeout=0,
            )
        )
    except ipwhois_errors.HTTPRateLimitError as exc:
        return RdapResult(ip, Status.RATE_LIMITED, registry, error=str(exc)[:500], url=url)
    except Exception as exc:  # noqa: BLE001 (HTTP, socket, JSON or parse errors: all "try later")
        return RdapResult(ip, Status.FAILED, registry, error=f"{type(exc).__name__}: {exc}"[:500], url=url)
    return RdapResult(ip, Status.FOUND, registry, network, url=url)
