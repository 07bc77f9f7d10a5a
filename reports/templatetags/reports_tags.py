"""The scorecard pages' template filters: reports.display's formatters under their template names."""

from __future__ import annotations

from django import template

from compliance.display import reason_label
from reports import charts, display

register = template.Library()

register.filter("month_label", display.month_label)
register.filter("duration", display.duration)
register.filter("percent", display.percent)
register.filter("verdict_label", display.verdict_label)
# Why a check was classified so, in the reader's language ("http_404" -> "not found (404)").
register.filter("check_reason", reason_label)
register.simple_tag(charts.plotly_js_url, name="plotly_js_url")
