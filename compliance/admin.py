"""The analysts' workbench. Notices added here go through the same intake service as API and CSV."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, ngettext

from compliance import measurements, services
from compliance.attributions import attribution_override, notice_reattribute
from compliance.models import Attribution, Check, Hoster, HosterASN, HosterPrefix, Membership, Notice, RdapRecord
from compliance.services import notice_check_request

# The product's name in the admin's header and title, not Django's ("Django-beheer").
admin.site.site_header = _("Takedown compliance monitor")
admin.site.site_title = _("Takedown compliance monitor")
admin.site.index_title = _("Analysts' workbench")

# Messages of Django's admin templates that Django's own Dutch catalog lacks (the app list's column
# headers for screen readers): marked here so that makemessages keeps them in ours, which wins.
DJANGO_ADMIN_MESSAGES = (gettext_noop("Model name"), gettext_noop("Add link"), gettext_noop("Change or view list link"))


class HosterASNInline(admin.TabularInline):
    model = HosterASN
    extra = 0


class HosterPrefixInline(admin.TabularInline):
    model = HosterPrefix
    extra = 0
    fields = ["prefix"]


@admin.register(Hoster)
class HosterAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "country", "abuse_email", "is_reviewed"]
    list_filter = ["kind", "is_reviewed", "country"]
    search_fields = ["name", "slug", "abuse_email", "asns__asn"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [HosterASNInline, HosterPrefixInline]


class NoticeAddForm(forms.ModelForm):
    """Validates with the intake rules (URL normalisation, notified_at with offset, ...)."""

    # Declared fields take no label from the model: each names its own.
    url = forms.CharField(label=_("URL"), max_length=4096, widget=forms.TextInput(attrs={"size": 100}), strip=False)
    notified_at = forms.CharField(
        label=capfirst(_("notified")),
        required=False,
        help_text=_("ISO 8601 with UTC offset, e.g. 2024-05-01T09:30:00+02:00; empty: now"),
    )
    hoster_slug = forms.ModelChoiceField(
        Hoster.objects.all(), required=False, to_field_name="slug", label=capfirst(_("hoster (if known)"))
    )
    deadline_s = forms.IntegerField(
        label=capfirst(_("deadline (seconds)")), required=False, min_value=1, help_text=_("empty: the default deadline")
    )

    class Meta:
        model = Notice
        fields = ["url", "notified_at", "reference", "content_sha256", "hoster_slug", "deadline_s", "source"]

    def clean(self):
        cleaned = super().clean()
        try:
            self.notice_input = services.notice_input_parse(
                url=cleaned.get("url", ""),
                notified_at=cleaned.get("notified_at"),
                reference=cleaned.get("reference", ""),
                content_sha256=cleaned.get("content_sha256", ""),
                hoster=cleaned["hoster_slug"].slug if cleaned.get("hoster_slug") else "",
                deadline_s=cleaned.get("deadline_s"),
                source=cleaned.get("source") or "admin",
                now=timezone.now(),
            )
        except services.NoticeInputError as exc:
            for field, messages in exc.errors.items():
                self.add_error("hoster_slug" if field == "hoster" else field, messages)
        return cleaned

    def _post_clean(self):
        pass  # the intake service validates; the model instance is built by the service


class WithdrawForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=2000, label=capfirst(_("why"))
    )


@admin.action(description=_("Withdraw the selected notices (sent in error)…"))
def withdraw(modeladmin, request, queryset):
    """An intermediate page: the analyst says why; the notices become `withdrawn`, audited
    (compliance.measurements.notice_withdraw)."""
    form = WithdrawForm(request.POST if "apply" in request.POST else None)
    if "apply" in request.POST and form.is_valid():
        count = measurements.notice_withdraw(
            notice_ids=list(queryset.values_list("id", flat=True)),
            reason=form.cleaned_data["reason"],
            user=request.user,
            request=request,
        )
        modeladmin.message_user(
            request,
            ngettext("%(count)d notice withdrawn.", "%(count)d notices withdrawn.", count) % {"count": count},
            messages.SUCCESS,
        )
        return None
    return TemplateResponse(
        request,
        "admin/compliance/notice/withdraw.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": _("Withdraw notices"),
            "action": "withdraw",
            "form": form,
            "notices": queryset,
            "opts": modeladmin.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )


# --- Evidence: read-only, as checks, attributions and RDAP records are append-only -------------------


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


@admin.register(RdapRecord)
class RdapRecordAdmin(ReadOnlyAdmin):
    list_display = ["ip", "looked_up_at", "registry", "status"]
    list_filter = ["status", "registry"]
    search_fields = ["=ip"]
    show_full_result_count = False


# --- The analysts' actions on notices ------------------------------------------------------------


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
    with method "analyst" per notice (compliance.attributions.attribution_override)."""
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
            "action": "set_attribution",
            "form": form,
            "notices": queryset,
            "opts": modeladmin.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )


@admin.action(description=_("Attribute the selected notices again (adds evidence)"))
def reattribute(modeladmin, request, queryset):
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
    """One notice's evidence as a signed file for an authority (compliance/evidence_files.py): checks,
    attributions, e-mails, audit events and the chain proof, signed with EVIDENCE_SIGNING_KEY.
    The export itself is recorded in the audit trail."""
    from django.core.exceptions import ImproperlyConfigured
    from django.http import HttpResponse

    from compliance.audit import audit_record
    from compliance.evidence_files import notice_bundle

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


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "host",
        "hoster",
        "status",
        "notified_at",
        "deadline_at",
        "takedown_at",
        "is_behind_cdn",
        "source",
    ]
    list_filter = [
        "status",
        "regime",
        "attribution_state",
        "is_behind_cdn",
        "is_ambiguous",
        "source",
        "removal_mechanism",
    ]
    actions = [set_attribution, reattribute, check_now, download_evidence, withdraw]
    search_fields = ["url", "reference", "host", "=id"]
    list_select_related = ["hoster"]
    show_full_result_count = False  # counting 10^6 rows on every page view is wasted work
    date_hierarchy = "notified_at"
    raw_id_fields = ["repeat_of"]
    readonly_fields = [f.name for f in Notice._meta.fields if f.name not in ("id",)]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = NoticeAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return NoticeAddForm.Meta.fields
        return super().get_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return [AttributionInline, CheckInline] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        notice, outcome = services.notice_create(
            data=form.notice_input, source=form.notice_input.source, now=timezone.now()
        )
        form.instance = notice
        obj.pk = notice.pk
        if outcome == "repeat":
            self.message_user(request, _("Recorded as a repeat of notice %(id)s.") % {"id": notice.repeat_of_id})
        elif outcome == "duplicate":
            self.message_user(
                request, _("Not recorded again: notice %(id)s has the same source and reference.") % {"id": notice.pk}
            )

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def has_delete_permission(self, request, obj=None):
        return False  # notices are evidence; a notice with checks cannot be deleted anyway


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "hoster"]
    list_filter = ["role"]
    search_fields = ["user__username", "hoster__slug"]


# Second factors stay out of the admin: their pages show a user's TOTP secret and recovery codes to
# every analyst. Enrolment is the user's own (/accounts/two-factor/), a reset is `manage.py reset_2fa`.
from django_otp.plugins.otp_static.models import StaticDevice  # noqa: E402
from django_otp.plugins.otp_totp.models import TOTPDevice  # noqa: E402

# The analysts' dispute queue, notice e-mails and the audit trail.
from compliance.portal import admin as _portal_admin  # noqa: E402, F401

for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
