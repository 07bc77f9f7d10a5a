"""The league table's order and "below the bar": ranks, sorting by any column, and the hosters
under the compliance threshold with enough decided notices to say so. Pure: HosterMetrics in,
HosterMetrics out (the figures come from `reports.rollups.figures`)."""

from __future__ import annotations

from django.conf import settings

from reports.scorecards import HosterMetrics

# League table columns: key -> sort key on HosterMetrics. Sorting puts None last either way.
SORTS = {
    "rank": lambda m: m.rank,
    "hoster": lambda m: (m.name or "").lower(),
    "notices": lambda m: m.notices,
    "per10k": lambda m: m.notices_per_10k_addresses,
    "within": lambda m: m.within,
    "late": lambda m: m.late,
    "pending": lambda m: m.pending,
    "open": lambda m: m.open,
    "rate": lambda m: m.compliance_rate,
    "low": lambda m: m.compliance_rate_low,
    "median": lambda m: m.median_ttt_s,
    "p90": lambda m: m.p90_ttt_s,
    "km": lambda m: m.km_median_ttt_s,
    "reappeared": lambda m: m.reappeared,
    "past": lambda m: m.open_past_deadline,
}


def rank(rows: list[HosterMetrics]) -> None:
    """Set each row's `rank`: by compliance rate, highest first; ties share a rank. Hosters with few
    decided notices (or none) get no rank (None): their rate is too uncertain to place
    (`is_small_sample`)."""
    ranked = sorted(
        (m for m in rows if not m.is_small_sample and m.compliance_rate is not None),
        key=lambda m: -m.compliance_rate,
    )
    for m in rows:
        m.rank = None
    previous, position = None, 0
    for i, m in enumerate(ranked, start=1):
        if m.compliance_rate != previous:
            position, previous = i, m.compliance_rate
        m.rank = position


def sort_rows(rows: list[HosterMetrics], key: str, descending: bool) -> list[HosterMetrics]:
    """Rows sorted by column `key` (unknown keys: by rank); rows without a value last, by name."""
    getter = SORTS.get(key, SORTS["rank"])
    present = [m for m in rows if getter(m) is not None]
    missing = [m for m in rows if getter(m) is None]
    present.sort(key=getter, reverse=descending)
    return present + sorted(missing, key=lambda m: (m.name or "").lower())


def league(rows: list[HosterMetrics], *, sort: str, descending: bool) -> list[HosterMetrics]:
    """The league table's rows: ranked, then sorted by the column asked for."""
    rank(rows)
    return sort_rows(rows, sort if sort in SORTS else "rank", descending)


def bar_and_minimum(bar: str | None, minimum: str | None) -> tuple[float, int]:
    """The threshold (a share; `80` means 80 %) and the least decided notices, as asked in a URL;
    the settings' values when either is not a number."""
    try:
        share = float(bar if bar is not None else settings.SCORECARD_BAR)
        least = int(minimum if minimum is not None else settings.SCORECARD_BAR_MIN_NOTICES)
    except ValueError:
        share, least = settings.SCORECARD_BAR, settings.SCORECARD_BAR_MIN_NOTICES
    if share > 1:
        share = share / 100
    return min(max(share, 0.0), 1.0), max(least, 1)


def below(rows: list[HosterMetrics], *, bar: float, minimum: int) -> list[HosterMetrics]:
    """Hosters whose rate is under `bar` with at least `minimum` decided notices, lowest rate first."""
    hits = [m for m in rows if m.compliance_rate is not None and m.decided >= minimum and m.compliance_rate < bar]
    return sorted(hits, key=lambda m: (m.compliance_rate, -m.decided))
