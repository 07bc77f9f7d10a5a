"""The attribution evidence of a notice, as the API shows it.

Role rules (compliance/selectors.py decides the role; the table per field is in
docs/access-control.md): analysts see everything. Ministry users and researchers see no host
name, CNAME chain or server address (`can_see_addresses`): each address becomes its keyed
pseudonym (`resolved_ip_hashes`, `chosen_ip_hash`, candidates' `ip_hash`), a prefix narrower than
/24 (IPv6: /48) is widened to it, the RDAP record keeps the registered network only when that
network is at least as wide (its handle, name and range could otherwise name the server), and an
analyst's free-text reason is left out (it may quote a URL). Hoster users see their own notice's
evidence without the product's judgements about other hosters (candidates, reasons and a hoster
that is not theirs are left out) but with the public DNS and routing facts of their URL
(addresses, CNAME chain, ASN, AS name, RDAP network): what they need to contest an attribution.
Who decided an override is shown to analysts only.
"""

from __future__ import annotations

import ipaddress
import re

from rest_framework import serializers

from compliance import selectors
from compliance.models import Role
from compliance.pseudonym import coarse_network, pseudonymise_address

# RDAP evidence keys that never name a server: shown to every role that sees the attribution.
RDAP_SAFE_KEYS = (
    "status",
    "looked_up_at",
    "registry",
    "record_id",
    "looked_up_after_attribution",
    "country",
    "type",
    "abuse_emails",
    "abuse_source",
    "parent_handle",
)
# Keys that describe the registered network itself: shown only when it is no narrower than /24 or
# /48 (a RIPE handle is the range itself, "192.0.2.9 - 192.0.2.9"; an ARIN handle encodes it).
RDAP_NETWORK_KEYS = ("name", "handle", "start_address", "end_address")


def coarse_prefixes(text: str) -> tuple[str, bool]:
    """One or several comma-separated prefixes, each widened by `coarse_network`; and whether any
    had to be widened (or could not be read)."""
    parts = [p.strip() for p in (text or "").split(",") if p.strip()]
    shown = [coarse_network(p) for p in parts]
    widened = any(s != _normal(p) for s, p in zip(shown, parts, strict=True))
    return ", ".join(s for s in shown if s), widened


def _normal(prefix: str) -> str:
    try:
        return ipaddress.ip_network(prefix, strict=False).compressed
    except ValueError:
        return ""


def rdap_without_addresses(rdap: dict) -> dict:
    """The RDAP evidence for roles that see no server address (see RDAP_SAFE_KEYS)."""
    out = {k: rdap[k] for k in RDAP_SAFE_KEYS if k in rdap}
    if rdap.get("cidr"):
        out["cidr"], widened = coarse_prefixes(str(rdap["cidr"]))
        if not widened:
            out.update({k: rdap[k] for k in RDAP_NETWORK_KEYS if k in rdap})
    return out


def candidate_without_address(candidate: dict) -> dict:
    """One candidate (per resolved address) with its address as a pseudonym, prefixes widened."""
    out = {k: v for k, v in candidate.items() if k not in ("ip", "registered_prefix", "routed_prefix")}
    out["ip_hash"] = pseudonymise_address(candidate["ip"]) if candidate.get("ip") else None
    for key in ("registered_prefix", "routed_prefix"):
        if key in candidate:
            out[key] = coarse_prefixes(candidate[key] or "")[0]
    return out


def redact_names(text: str, names) -> str:
    """`text` with every given host name or address replaced by "[redacted]". The monitor's own
    reasons are fixed phrases, but they quote DNS errors, which name the host
    ("The DNS query name does not exist: example.org.")."""
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        text = re.sub(re.escape(name.rstrip(".")), "[redacted]", text, flags=re.IGNORECASE)
    return text


class AttributionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    method = serializers.CharField()
    hostname = serializers.SerializerMethodField()
    cname_chain = serializers.SerializerMethodField()
    resolved_ips = serializers.SerializerMethodField(help_text="analysts and the notice's hoster; else null")
    resolved_ip_hashes = serializers.SerializerMethodField(
        help_text="keyed pseudonyms of the addresses, for roles that do not see them; else null"
    )
    chosen_ip = serializers.SerializerMethodField(help_text="analysts and the notice's hoster; else null")
    chosen_ip_hash = serializers.SerializerMethodField(help_text="keyed pseudonym, for roles that do not see it")
    asn = serializers.IntegerField(allow_null=True)
    asns = serializers.ListField(child=serializers.IntegerField())
    routed_prefix = serializers.SerializerMethodField(
        help_text="the origin's routed prefix; widened to /24 (IPv6 /48) for roles that see no address"
    )
    as_name = serializers.CharField(allow_blank=True)
    as_country = serializers.CharField(allow_blank=True)
    registry = serializers.CharField(allow_blank=True)
    rdap = serializers.SerializerMethodField(help_text="registered network and abuse contacts, when known")
    hoster = serializers.SerializerMethodField()
    cdn = serializers.SerializerMethodField(help_text="the CDN in front: an intermediary, never the hoster")
    is_ambiguous = serializers.BooleanField()
    candidates = serializers.SerializerMethodField(help_text="per resolved address: ASN, prefix, hoster")
    decided_by = serializers.SerializerMethodField()
    reason = serializers.SerializerMethodField()

    def _role(self) -> str | None:
        return selectors.role_of(self.context["request"].user)

    def _shows_addresses(self) -> bool:
        return selectors.can_see_addresses(self.context["request"].user)

    def _own_hoster_slug(self) -> str | None:
        hoster_id = selectors.hoster_id_of(self.context["request"].user)
        return self.context.get("own_hoster_slug") if hoster_id else None

    def get_hostname(self, obj) -> str | None:
        return obj.hostname if selectors.can_see_urls(self.context["request"].user) else None

    def get_cname_chain(self, obj) -> list[str] | None:
        return obj.cname_chain if selectors.can_see_urls(self.context["request"].user) else None

    def get_resolved_ips(self, obj) -> list[str] | None:
        return list(obj.resolved_ips or []) if self._shows_addresses() else None

    def get_resolved_ip_hashes(self, obj) -> list[str] | None:
        return None if self._shows_addresses() else [pseudonymise_address(ip) for ip in obj.resolved_ips or []]

    def get_chosen_ip(self, obj) -> str | None:
        return obj.chosen_ip if self._shows_addresses() else None

    def get_chosen_ip_hash(self, obj) -> str | None:
        return None if self._shows_addresses() or not obj.chosen_ip else pseudonymise_address(obj.chosen_ip)

    def get_routed_prefix(self, obj) -> str:
        return obj.routed_prefix if self._shows_addresses() else coarse_prefixes(obj.routed_prefix)[0]

    def get_rdap(self, obj) -> dict:
        later = self.context.get("rdap_later", {}).get(obj.pk)
        if later is None:
            rdap = obj.rdap or {}
        else:
            from compliance.attributions import rdap_evidence

            rdap = {**rdap_evidence(later), "looked_up_after_attribution": True}
        return rdap if self._shows_addresses() else rdap_without_addresses(rdap)

    def get_hoster(self, obj) -> str | None:
        slug = obj.hoster.slug if obj.hoster_id else None
        if self._role() == Role.HOSTER and slug != self._own_hoster_slug():
            return None
        return slug

    def get_cdn(self, obj) -> str | None:
        return obj.cdn.slug if obj.cdn_id else None

    def get_candidates(self, obj) -> list[dict] | None:
        if self._role() == Role.HOSTER:
            return None
        if self._shows_addresses():
            return obj.candidates
        return [candidate_without_address(c) for c in obj.candidates or []]

    def get_decided_by(self, obj) -> str | None:
        if obj.decided_by_id is None:
            return None
        return obj.decided_by.get_username() if self._role() == Role.ANALYST else "analyst"

    def get_reason(self, obj) -> str | None:
        if self._role() == Role.HOSTER:
            return None
        if self._shows_addresses():
            return obj.reason
        if obj.method != "dns":
            return None  # an analyst's or the hotline's free text may quote any URL or address
        return redact_names(obj.reason, [obj.hostname, *(obj.cname_chain or []), *(obj.resolved_ips or [])])


def attribution_context(request, attributions) -> dict:
    """Serializer context for a notice's attributions: later RDAP records, the user's own hoster."""
    from compliance.attributions import rdap_records_after

    membership = getattr(request.user, "membership", None)
    return {
        "request": request,
        "rdap_later": rdap_records_after(attributions),
        "own_hoster_slug": membership.hoster.slug if membership is not None and membership.hoster_id else None,
    }


class AttributionOverrideSerializer(serializers.Serializer):
    hoster = serializers.SlugField(help_text="slug of the origin hoster (never a CDN)")
    cdn = serializers.SlugField(required=False, allow_null=True, allow_blank=True, help_text="slug of the CDN in front")
    reason = serializers.CharField(max_length=2000, help_text="why: who named the origin, what was checked")
