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
from compliance.models import Hoster, HosterASN, HosterPrefix, Membership, Notice

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
            "form": form,
            "notices": queryset,
            "opts": modeladmin.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )


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
    actions = [withdraw]
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

    def get_actions(self, request):
        # issue 3: set attribution (with a reason) and re-attribute, from monitor/admin.py
        from monitor.admin import NOTICE_ACTIONS

        actions = super().get_actions(request)
        actions.update({f.__name__: self.get_action(f) for f in NOTICE_ACTIONS})
        return actions

    def get_inlines(self, request, obj):
        # Imported here: the monitor app's evidence inlines depend on compliance, not vice versa.
        from monitor.admin import AttributionInline, CheckInline

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

# The analysts' dispute queue, notice e-mails and the audit trail (issue 6).
from compliance.portal import admin as _portal_admin  # noqa: E402, F401

for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
