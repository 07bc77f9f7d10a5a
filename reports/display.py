"""How the reports write figures for people: durations, shares, counts, months and labels.

One home for the reports' display formatters, used by the template filters
(`reports.templatetags.reports_tags`), the views' pre-formatted table cells and the charts. Values
stay plain numbers and codes in the API, the exports and `compliance_report`; only pages read these.
Check reasons in words are the domain's (`compliance.display.reason_label`).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.formats import date_format, get_format
from django.utils.translation import gettext as _

from compliance.models import Notice

if TYPE_CHECKING:
    from reports.scorecards import HosterMetrics


def localize_number(text: str) -> str:
    """A number formatted in Python (`f"{x:.1f}"`) with the active language's decimal separator
    (Dutch: 2,5 u; 98,9%). Django localizes numbers it renders itself; these are pre-formatted."""
    return text.replace(".", get_format("DECIMAL_SEPARATOR"))


def month_label(key: str) -> str:
    """A month's period key as the reader's language names the month: '2026-03' -> 'March 2026',
    'maart 2026'. The key itself stays in links (`?period=2026-03`)."""
    try:
        year, month = (int(part) for part in str(key).split("-"))
        return date_format(date(year, month, 1), "YEAR_MONTH_FORMAT")
    except ValueError:
        return str(key)


# --- Durations ------------------------------------------------------------------------------------


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


def deadlines_text(deadlines_s: list[int]) -> str:
    """`24 h`, or `3 min, 24 h` (deadlines under an hour in minutes); the configured deadline when
    there is none."""
    return ", ".join(deadline_duration(d) for d in deadlines_s or [settings.COMPLIANCE_DEADLINE])


def bin_edge_duration(seconds: int) -> str:
    """A histogram bin's edge: whole days as days ('2 d'), anything else in hours ('1.5 h')."""
    if seconds >= 86400 and seconds % 86400 == 0:
        return _("%(sign)s%(n)s d") % {"sign": "", "n": seconds // 86400}
    return _("%(sign)s%(n)s h") % {"sign": "", "n": localize_number(f"{seconds / 3600:g}")}


# --- Rates and counts -----------------------------------------------------------------------------


def percent(value, digits: int = 1) -> str:
    if value is None or value == "":
        return "–"
    return localize_number(f"{float(value) * 100:.{int(digits)}f}%")


def rate_interval(low: float | None, high: float | None) -> str:
    """A rate's 95 % interval in whole percents, `91%–99%`; `–` when there is none."""
    return f"{percent(low, 0)}–{percent(high, 0)}" if low is not None else "–"


def per_10k(value: float | None) -> str:
    """Notices per 10,000 addresses, as few digits as it has (`2.5`, Dutch `2,5`); `–` if unknown."""
    return "–" if value is None else localize_number(f"{value:g}")


def league_cells(m: HosterMetrics) -> list[tuple[str, str]]:
    """A league table row's figures as (css class, text), from `notices` to `reappeared`.

    Formatted in Python rather than by template filters: 200 hosters x 15 columns of filters make a
    page several times slower (bench/README.md)."""
    return [
        ("num", str(m.notices)),
        ("num", per_10k(m.notices_per_10k_addresses)),
        ("num", str(m.within)),
        ("num", str(m.late)),
        ("num", str(m.pending)),
        ("num", str(m.open)),
        ("num rate", percent(m.compliance_rate)),
        ("num", rate_interval(m.compliance_rate_low, m.compliance_rate_high)),
        ("num", duration(m.median_ttt_s)),
        ("num", duration(m.p90_ttt_s)),
        ("num", duration(m.km_median_ttt_s)),
        ("num", str(m.reappeared)),
    ]


# --- Codes in words -------------------------------------------------------------------------------


def verdict_label(value) -> str:
    """`within`, `late`, `pending` in the active language ("binnen de termijn", "te laat", ...)."""
    labels = {"within": _("within"), "late": _("late"), "pending": _("pending")}
    return labels.get(value, value) if value else "–"


def regime_label(regime: str) -> str:
    labels = {
        Notice.Regime.COVENANT: _("covenant"),
        Notice.Regime.ORDER: _("removal order"),
        Notice.Regime.OTHER: _("other"),
    }
    return str(labels.get(regime, regime))


def mechanism_label(key: str) -> str:
    """A removal mechanism's name; `unknown` (takedowns without one) reads "not recorded"."""
    if key == "unknown":
        return _("not recorded")
    labels = dict(Notice.RemovalMechanism.choices)
    label = str(labels.get(key, key))
    return _("%(mechanism)s (displaced)") % {"mechanism": label} if key == "moved" else label


def figure_label(figure: str) -> str:
    """What a scorecard figure counts, as the list of the notices behind it is titled."""
    labels = {
        "notices": _("notices"),
        "removed": _("removed"),
        "within": _("within the deadline"),
        "late": _("late"),
        "pending": _("pending"),
        "open": _("open"),
        "past": _("open past the deadline"),
        "taken_down": _("taken down"),
        "reappeared": _("reappeared"),
        "served_selectively": _("served selectively"),
        "displaced": _("displaced"),
        "server_gone": _("taken down: server gone"),
    }
    return labels[figure]
