"""The attribution evidence of a notice, as the API shows it (issue 3).

Role rules (compliance/selectors.py decides the role): analysts see everything; ministry users and
researchers see no host name or CNAME chain (`can_see_urls`); hoster users see their own notice's
evidence without the product's judgements about other hosters (candidates, reasons and a hoster
that is not theirs are left out) but with the public DNS and routing facts of their URL (addresses,
CNAME chain, ASN, AS name, RDAP network): what they need to contest an attribution. Who decided an
override is shown to analysts only.
"""

from __future__ import annotations

from rest_framework import serializers

from compliance import selectors
from compliance.models import Role


class AttributionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    method = serializers.CharField()
    hostname = serializers.SerializerMethodField()
    cname_chain = serializers.SerializerMethodField()
    resolved_ips = serializers.ListField(child=serializers.CharField())
    chosen_ip = serializers.IPAddressField(allow_null=True)
    asn = serializers.IntegerField(allow_null=True)
    asns = serializers.ListField(child=serializers.IntegerField())
    routed_prefix = serializers.CharField()
    as_name = serializers.CharField()
    as_country = serializers.CharField()
    registry = serializers.CharField()
    rdap = serializers.SerializerMethodField(help_text="registered network and abuse contacts, when known")
    hoster = serializers.SerializerMethodField()
    cdn = serializers.SerializerMethodField(help_text="the CDN in front: an intermediary, never the hoster")
    is_ambiguous = serializers.BooleanField()
    candidates = serializers.SerializerMethodField(help_text="per resolved address: ASN, prefix, hoster")
    decided_by = serializers.SerializerMethodField()
    reason = serializers.SerializerMethodField()

    def _role(self) -> str | None:
        return selectors.role_of(self.context["request"].user)

    def _own_hoster_slug(self) -> str | None:
        hoster_id = selectors.hoster_id_of(self.context["request"].user)
        return self.context.get("own_hoster_slug") if hoster_id else None

    def get_hostname(self, obj) -> str | None:
        return obj.hostname if selectors.can_see_urls(self.context["request"].user) else None

    def get_cname_chain(self, obj) -> list[str] | None:
        return obj.cname_chain if selectors.can_see_urls(self.context["request"].user) else None

    def get_rdap(self, obj) -> dict:
        later = self.context.get("rdap_later", {}).get(obj.pk)
        if later is None:
            return obj.rdap
        from monitor.attribute import rdap_evidence

        return {**rdap_evidence(later), "looked_up_after_attribution": True}

    def get_hoster(self, obj) -> str | None:
        slug = obj.hoster.slug if obj.hoster_id else None
        if self._role() == Role.HOSTER and slug != self._own_hoster_slug():
            return None
        return slug

    def get_cdn(self, obj) -> str | None:
        return obj.cdn.slug if obj.cdn_id else None

    def get_candidates(self, obj) -> list[dict] | None:
        return None if self._role() == Role.HOSTER else obj.candidates

    def get_decided_by(self, obj) -> str | None:
        if obj.decided_by_id is None:
            return None
        return obj.decided_by.get_username() if self._role() == Role.ANALYST else "analyst"

    def get_reason(self, obj) -> str | None:
        return None if self._role() == Role.HOSTER else obj.reason


def attribution_context(request, attributions) -> dict:
    """Serializer context for a notice's attributions: later RDAP records, the user's own hoster."""
    from monitor.attribute import rdap_records_after

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
