"""Formatting for the scorecards: durations, shares, the local plotly.js."""

from __future__ import annotations

from datetime import date

from django import template
from django.utils.formats import date_format, get_format
from django.utils.translation import gettext as _

from compliance.display import reason_label

register = template.Library()


def localize_number(text: str) -> str:
    """A number formatted in Python (`f"{x:.1f}"`) with the active language's decimal separator
    (Dutch: 2,5 u; 98,9%). Django localizes numbers it renders itself; these are pre-formatted."""
    return text.replace(".", get_format("DECIMAL_SEPARATOR"))


@register.filter
def month_label(key: str) -> str:
    """A month's period key as the reader's language names the month: '2026-03' -> 'March 2026',
    'maart 2026'. The key itself stays in links (`?period=2026-03`)."""
    try:
        year, month = (int(part) for part in str(key).split("-"))
        return date_format(date(year, month, 1), "YEAR_MONTH_FORMAT")
    except ValueError:
        return str(key)


@register.filter
def duration(seconds) -> str:
    """Seconds as minutes, hours or days, for people: 2700 -> '45 min', 9000 -> '2.5 h'."""
    if seconds is None or seconds == "":
        return "–"
    s = float(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s < 3600:
        return _("%(sign)s%(n)s min") % {"sign": sign, "n": f"{s / 60:.0f}"}
    if s < 3 * 86400:
        return _("%(sign)s%(n)s h") % {"sign": sign, "n": localize_number(f"{s / 3600:.1f}")}
    return _("%(sign)s%(n)s d") % {"sign": sign, "n": localize_number(f"{s / 86400:.1f}")}


def deadline_duration(seconds: int) -> str:
    """A deadline as people say it: '24 h', and one under an hour in minutes: '3 min' (not 0.05 h)."""
    if seconds < 3600:
        return _("%(sign)s%(n)s min") % {"sign": "", "n": localize_number(f"{seconds / 60:g}")}
    return _("%(sign)s%(n)s h") % {"sign": "", "n": localize_number(f"{seconds / 3600:g}")}


@register.filter
def percent(value, digits: int = 1) -> str:
    if value is None or value == "":
        return "–"
    return localize_number(f"{float(value) * 100:.{int(digits)}f}%")


@register.filter
def verdict_label(value) -> str:
    """`within`, `late`, `pending` in the active language ("binnen de termijn", "te laat", ...)."""
    labels = {"within": _("within"), "late": _("late"), "pending": _("pending")}
    return labels.get(value, value) if value else "–"


@register.filter
def check_reason(code) -> str:
    """Why a check was classified so, in the reader's language ("http_404" -> "not found (404)")."""
    return reason_label(code)


@register.simple_tag
def plotly_js_url() -> str:
    from reports.views import plotly_js_url as url

    return url()
