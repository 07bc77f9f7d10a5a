"""Template helpers of the portal: the deadline countdown."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _

from compliance.display import duration_text, reason_label

register = template.Library()


# Why a check was classified so, in the reader's language ("http_404" -> "not found (404)").
register.filter("check_reason", reason_label)


@register.simple_tag
def countdown(deadline_at: datetime | None, now: datetime | None = None):
    """The time left until a deadline (or how long it is overdue), live-updated by the page's script.

    The server renders the text, so it reads right without JavaScript; `data-deadline` lets the
    script keep it current. Both templates for the text are translated here.
    """
    if deadline_at is None:
        return format_html('<span class="countdown muted">{}</span>', _("no deadline yet"))
    now = now or timezone.now()
    left = (deadline_at - now).total_seconds()
    left_tpl, over_tpl = _("%(time)s left"), _("overdue by %(time)s")
    text = (left_tpl if left > 0 else over_tpl) % {"time": duration_text(left)}
    return format_html(
        '<span class="countdown {}" data-deadline="{}" data-left="{}" data-over="{}">{}</span>',
        "ok" if left > 0 else "overdue",
        deadline_at.isoformat(),
        left_tpl,
        over_tpl,
        text,
    )
