"""Evidence in the admin: read-only, as checks and attributions are append-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from compliance.models import Hoster
from monitor.models import Attribution, Check, PlaceholderHash, RdapQueue, RdapRecord


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class CheckInline(ReadOnlyInline):
    model = Check
    fields = [
        "checked_at",
        "due_at",
        "outcome",
        "reason",
        "http_status",
        "error_kind",
        "resolved_ip",
        "body_sha256",
        "byte_count",
        "is_truncated",
        "duration_ms",
        "trigger",
        "worker",
    ]
    ordering = ["-checked_at"]


class AttributionInline(ReadOnlyInline):
    model = Attribution
    fields = [
        "created_at",
        "method",
        "hoster",
        "cdn",
        "is_ambiguous",
        "hostname",
        "cname_chain",
        "chosen_ip",
        "resolved_ips",
        "asn",
        "asns",
        "routed_prefix",
        "as_name",
        "registry",
        "rdap",
        "candidates",
        "decided_by",
        "reason",
    ]
    ordering = ["-created_at"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Check)
class CheckAdmin(ReadOnlyAdmin):
    list_display = ["id", "notice", "checked_at", "outcome", "reason", "http_status", "error_kind", "duration_ms"]
    list_filter = ["outcome", "error_kind", "trigger"]
    raw_id_fields = ["notice"]
    show_full_result_count = False


@admin.register(Attribution)
class AttributionAdmin(ReadOnlyAdmin):
    list_display = ["id", "notice", "created_at", "method", "hoster", "cdn", "asn", "is_ambiguous"]
    list_filter = ["method", "is_ambiguous"]
    raw_id_fields = ["notice"]
    show_full_result_count = False


@admin.register(PlaceholderHash)
class PlaceholderHashAdmin(admin.ModelAdmin):
    """Analysts mark a body hash (copied from a check) as a hoster's placeholder, or everyone's."""

    list_display = ["sha256", "hoster", "description", "created_by", "created_at"]
    list_filter = ["hoster"]
    search_fields = ["sha256", "description"]
    raw_id_fields = ["hoster"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


# --- Attribution (issue 3): RDAP evidence, and the analysts' actions on notices ----------------


@admin.register(RdapRecord)
class RdapRecordAdmin(ReadOnlyAdmin):
    list_display = ["ip", "looked_up_at", "registry", "status"]
    list_filter = ["status", "registry"]
    search_fields = ["=ip"]
    show_full_result_count = False


@admin.register(RdapQueue)
class RdapQueueAdmin(ReadOnlyAdmin):
    list_display = ["ip", "registry", "next_attempt_at", "attempts", "last_error"]
    list_filter = ["registry"]


class AttributionOverrideForm(forms.Form):
    hoster = forms.ModelChoiceField(
        Hoster.objects.filter(kind=Hoster.Kind.HOSTER), to_field_name="slug", label=capfirst(_("origin hoster"))
    )
    cdn = forms.ModelChoiceField(
        Hoster.objects.filter(kind=Hoster.Kind.CDN),
        to_field_name="slug",
        required=False,
        label=_("CDN in front (if any)"),
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), label=capfirst(_("why")))


@admin.action(description=_("Set the origin hoster / CDN of the selected notices…"))
def set_attribution(modeladmin, request, queryset):
    """An intermediate page: the analyst picks the hoster (and CDN) and says why; one evidence row
    with method "analyst" per notice (monitor.attribute.attribution_override)."""
    from monitor.attribute import attribution_override

    form = AttributionOverrideForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        now = timezone.now()
        for notice in queryset:
            attribution_override(
                notice=notice,
                hoster=form.cleaned_data["hoster"],
                cdn=form.cleaned_data["cdn"],
                reason=form.cleaned_data["reason"],
                user=request.user,
                now=now,
            )
        modeladmin.message_user(
            request,
            ngettext(
                "Attribution of %(count)d notice set to %(hoster)s.",
                "Attribution of %(count)d notices set to %(hoster)s.",
                queryset.count(),
            )
            % {"count": queryset.count(), "hoster": form.cleaned_data["hoster"]},
            messages.SUCCESS,
        )
        return None
    return TemplateResponse(
        request,
        "admin/compliance/notice/set_attribution.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": _("Set the origin hoster"),
            "form": form,
            "notices": queryset,
            "opts": modeladmin.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )


@admin.action(description=_("Attribute the selected notices again (adds evidence)"))
def reattribute(modeladmin, request, queryset):
    from monitor.attribute import notice_reattribute

    queued = notice_reattribute(notice_ids=list(queryset.values_list("id", flat=True)))
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d notice queued for attribution: runmonitor adds the new evidence.",
            "%(count)d notices queued for attribution: runmonitor adds the new evidence.",
            queued,
        )
        % {"count": queued},
        messages.SUCCESS,
    )


@admin.action(description=_("Check the selected notices now"))
def check_now(modeladmin, request, queryset):
    """An independent check at once (e.g. when a hoster disputes a takedown time); the check is
    recorded with the trigger "analyst". Closed notices are not checked on request."""
    from compliance.services import notice_check_request

    ids = list(queryset.values_list("id", flat=True))
    queued = notice_check_request(notice_ids=ids, user=request.user, now=timezone.now(), request=request)
    modeladmin.message_user(
        request,
        ngettext(
            "%(count)d notice queued for a check now: runmonitor checks it within seconds.",
            "%(count)d notices queued for a check now: runmonitor checks them within seconds.",
            queued,
        )
        % {"count": queued},
        messages.SUCCESS,
    )
    if queued < len(ids):
        modeladmin.message_user(
            request,
            ngettext(
                "%(count)d selected notice is closed and was not queued.",
                "%(count)d selected notices are closed and were not queued.",
                len(ids) - queued,
            )
            % {"count": len(ids) - queued},
            messages.WARNING,
        )


@admin.action(description=_("Download the signed evidence of the selected notice"))
def download_evidence(modeladmin, request, queryset):
    """One notice's evidence as a signed file for an authority (monitor/evidence.py): checks,
    attributions, e-mails, audit events and the chain proof, signed with EVIDENCE_SIGNING_KEY.
    The export itself is recorded in the audit trail."""
    from django.core.exceptions import ImproperlyConfigured
    from django.http import HttpResponse

    from compliance.audit import audit_record
    from monitor.evidence import notice_bundle

    if queryset.count() != 1:
        modeladmin.message_user(request, _("Select exactly one notice to download its evidence."), messages.ERROR)
        return None
    notice = queryset.get()
    try:
        data = notice_bundle(notice)
    except ImproperlyConfigured as exc:
        modeladmin.message_user(request, str(exc), messages.ERROR)
        return None
    audit_record(actor=request.user, action="notice.evidence_export", notice=notice, request=request, status_code=200)
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="notice-{notice.pk}-evidence.zip"'
    return response


NOTICE_ACTIONS = [set_attribution, reattribute, check_now, download_evidence]
