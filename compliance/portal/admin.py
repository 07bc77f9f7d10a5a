"""The analysts' side of the portal, in the admin: the dispute queue, notice e-mails and their
delivery per hoster, and the audit trail. Registered from compliance/admin.py."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from compliance.models import AuditEvent, DeliveryEvent, Dispute, NoticeEmail
from compliance.portal import services
from compliance.portal.forms import DisputeAnswerForm


class ReadOnlyAdmin(admin.ModelAdmin):
    """Evidence and trails: analysts look, nobody edits."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DisputeStateFilter(admin.SimpleListFilter):
    """Open disputes by default: the changelist is the analysts' queue."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [*Dispute.State.choices, ("all", _("all"))]

    def choices(self, changelist):
        value = self.value() or Dispute.State.OPEN
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or Dispute.State.OPEN
        return queryset if value == "all" else queryset.filter(state=value)


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    """The dispute queue: open disputes, oldest first. Answering is choosing upheld or rejected
    and writing the answer the hoster will read; it goes through services.dispute_answer."""

    form = DisputeAnswerForm
    list_display = ["id", "notice_link", "hoster", "reason", "created_at", "state", "answered_at"]
    list_filter = [DisputeStateFilter, "reason", "hoster"]
    search_fields = ["=notice__id", "hoster__slug", "text"]
    ordering = ["created_at", "id"]
    list_select_related = ["hoster", "notice"]
    readonly_fields = ["notice_link", "hoster", "raised_by", "reason", "removed_at", "text", "created_at"]
    fields = [*readonly_fields, "state", "answer"]

    @admin.display(description=_("notice"))
    def notice_link(self, obj):
        from django.urls import reverse
        from django.utils.html import format_html

        url = reverse("admin:compliance_notice_change", args=[obj.notice_id])
        return format_html('<a href="{}">#{}</a> {}', url, obj.notice_id, obj.notice.host)

    def has_add_permission(self, request):
        return False  # disputes come from hosters

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not obj.is_open:
            return [*self.readonly_fields, "state", "answer"]  # an answer is final
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        try:
            services.dispute_answer(
                dispute=Dispute.objects.get(pk=obj.pk),
                user=request.user,
                state=form.cleaned_data["state"],
                answer=form.cleaned_data["answer"],
                now=timezone.now(),
                request=request,
            )
        except (ValidationError, services.ResponseError) as exc:
            self.message_user(request, " ".join(getattr(exc, "messages", [str(exc)])), messages.ERROR)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "at",
        "actor_username",
        "actor_role",
        "action",
        "notice_id",
        "hoster",
        "method",
        "path",
        "status_code",
        "ip_address",
    ]
    list_filter = ["action", "actor_role", "method"]
    search_fields = ["actor_username", "path", "=notice__id"]
    date_hierarchy = "at"
    show_full_result_count = False


class DeliveryEventInline(admin.TabularInline):
    model = DeliveryEvent
    extra = 0
    can_delete = False
    fields = ["at", "outcome", "to_address", "smtp_code", "detail"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    """Delivery per hoster: refusals and bounces make a hoster unreachable, a finding."""

    list_display = ["at", "hoster", "outcome", "to_address", "smtp_code", "detail", "email"]
    list_filter = ["outcome", "hoster"]
    search_fields = ["hoster__slug", "to_address"]
    date_hierarchy = "at"


@admin.register(NoticeEmail)
class NoticeEmailAdmin(ReadOnlyAdmin):
    """Notice e-mails and their delivery. Uncertain ones (a process died while sending) are never
    resent automatically: an analyst checks the mail server's log and confirms or sends again."""

    list_display = [
        "id",
        "notice_id",
        "kind",
        "seq",
        "hoster",
        "to_address",
        "state",
        "due_at",
        "sent_at",
        "attempts",
        "last_error",
    ]
    list_filter = ["state", "kind", "hoster"]
    search_fields = ["=notice__id", "to_address", "message_id"]
    list_select_related = ["hoster"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [DeliveryEventInline]
    actions = ["send_again", "confirm_accepted"]

    @admin.action(description=_("Send again (failed, uncertain or bounced e-mails)"))
    def send_again(self, request, queryset):
        from compliance import notifications
        from compliance.audit import audit_record

        now = timezone.now()
        count = 0
        for row in queryset:
            if notifications.email_send_again(email=row, now=now):
                count += 1
                audit_record(
                    actor=request.user,
                    action="email.send_again",
                    notice=row.notice,
                    detail={"email": row.pk},
                    request=request,
                )
        self.message_user(request, _("%(n)d e-mail(s) will be sent again.") % {"n": count})

    @admin.action(description=_("Confirm accepted (found in the mail server's log)"))
    def confirm_accepted(self, request, queryset):
        from compliance import notifications
        from compliance.audit import audit_record

        count = 0
        for row in queryset:
            if notifications.email_confirm_accepted(email=row):
                count += 1
                audit_record(
                    actor=request.user,
                    action="email.confirm_accepted",
                    notice=row.notice,
                    detail={"email": row.pk},
                    request=request,
                )
        self.message_user(request, _("%(n)d uncertain e-mail(s) confirmed as accepted.") % {"n": count})
