"""The monitor's own tables in the admin: placeholder hashes (analysts mark them), the RDAP queue."""

from __future__ import annotations

from django.contrib import admin

from compliance.admin import ReadOnlyAdmin
from monitor.models import PlaceholderHash, RdapQueue


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


@admin.register(RdapQueue)
class RdapQueueAdmin(ReadOnlyAdmin):
    list_display = ["ip", "registry", "next_attempt_at", "attempts", "last_error"]
    list_filter = ["registry"]
