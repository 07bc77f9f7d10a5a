"""Reporting periods: which notices a figure covers, by `notified_at` in [start, end).

Keys name the periods that pages, API and rollups share:
- `30d`, `90d`, `365d`: rolling, from local midnight N days ago (Europe/Amsterdam) on, open-ended;
  aligned to the day so that the figures of one day cover the same notices;
- `all`: every notice;
- `2025`: a calendar year, `2025-03`: a calendar month (both in Europe/Amsterdam);
- `custom`: explicit `from`/`to` (dates are local midnight; datetimes without an offset are local).

`Period.parse` reads a period from a request's or a command's parameters and `Period.filter`
applies it to notices: pages, the API, the exports and `compliance_report` use both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import QuerySet
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.formats import date_format
from django.utils.translation import gettext as _

ROLLING_DAYS = {"30d": 30, "90d": 90, "365d": 365}
DEFAULT_KEY = "365d"
_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class PeriodError(ValueError):
    """A period key or bound that cannot be understood."""


def local_tz() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


@dataclass(frozen=True)
class Period:
    key: str
    start: datetime | None  # inclusive; None: from the first notice
    end: datetime | None  # exclusive; None: up to now
    label: str

    @property
    def kind(self) -> str:
        if self.key in ROLLING_DAYS:
            return "rolling"
        if self.key == "all":
            return "all"
        if _YEAR.match(self.key):
            return "year"
        if _MONTH.match(self.key):
            return "month"
        return "custom"

    @classmethod
    def parse(
        cls,
        params: Mapping[str, str | None],
        now: datetime,
        *,
        default: str | None = DEFAULT_KEY,
        bound_names: tuple[str, str] = ("from", "to"),
    ) -> Period | None:
        """The period asked for in `params`: `from`/`to` bounds (either or both) make a custom
        period; else `period=KEY` names one (module docstring); else the `default` key, and with
        `default=None` nothing asked is None. `bound_names` name the bounds in error messages
        (`--from` for a command). Raises PeriodError for a period or bound it cannot understand."""
        start = parse_bound(params.get("from"), bound_names[0])
        end = parse_bound(params.get("to"), bound_names[1])
        if start or end:
            return custom(start, end)
        key = params.get("period") or default
        return None if key is None else resolve(key, now)

    def filter(self, notices: QuerySet) -> QuerySet:
        """The notices of `notices` notified in the period, [start, end)."""
        if self.start is not None:
            notices = notices.filter(notified_at__gte=self.start)
        if self.end is not None:
            notices = notices.filter(notified_at__lt=self.end)
        return notices

    def query_params(self) -> dict[str, str]:
        """How to ask for this period again in a URL."""
        if self.kind != "custom":
            return {"period": self.key}
        params = {}
        if self.start:
            params["from"] = self.start.isoformat()
        if self.end:
            params["to"] = self.end.isoformat()
        return params


def midnight(day: date) -> datetime:
    """The start of a local day (Europe/Amsterdam)."""
    return datetime.combine(day, time.min, tzinfo=local_tz())


def month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=local_tz())


def next_month(moment: datetime) -> datetime:
    return month_start(moment.year + (moment.month == 12), moment.month % 12 + 1)


def resolve(key: str | None, now: datetime) -> Period:
    """The period named by `key` (see the module docstring) as of `now`."""
    key = key or DEFAULT_KEY
    if key in ROLLING_DAYS:
        days = ROLLING_DAYS[key]
        today = now.astimezone(local_tz()).date()
        return Period(key, midnight(today - timedelta(days=days)), None, _("last %(days)d days") % {"days": days})
    if key == "all":
        return Period(key, None, None, _("all time"))
    if m := _YEAR.match(key):
        year = int(m.group(1))
        if not 1990 <= year <= 2999:
            raise PeriodError(f"no such year: {key}")
        return Period(key, month_start(year, 1), month_start(year + 1, 1), key)
    if m := _MONTH.match(key):
        year, month = int(m.group(1)), int(m.group(2))
        if not (1990 <= year <= 2999 and 1 <= month <= 12):
            raise PeriodError(f"no such month: {key}")
        start = month_start(year, month)
        return Period(key, start, next_month(start), date_format(start, "YEAR_MONTH_FORMAT"))  # maart 2026
    raise PeriodError(f"unknown period {key!r}: use 30d, 90d, 365d, all, a year (2025) or a month (2025-03)")


def parse_bound(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 date (local midnight) or datetime (local when it has no offset); None if empty."""
    if text is None or text.strip() == "":
        return None
    text = text.strip()
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            if day is None:
                raise ValueError
            moment = midnight(day)
    except ValueError:
        raise PeriodError(f"{name}: {text!r} is not an ISO 8601 date or date and time") from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=local_tz())
    try:
        # In local time: PostgreSQL refuses offsets beyond ±15:59 that Python accepts (a 500
        # otherwise), and a moment outside the years 1-9999 in UTC or local time is no bound.
        moment.astimezone(UTC)
        return moment.astimezone(local_tz())
    except OverflowError:
        raise PeriodError(f"{name}: {text!r} is out of range") from None


def custom(start: datetime | None, end: datetime | None) -> Period:
    if start and end and end <= start:
        raise PeriodError("to must be after from")
    local = local_tz()
    # The label is read by people: in the active language's format (the bounds stay ISO in URLs).
    parts = [
        date_format(moment.astimezone(local), "SHORT_DATETIME_FORMAT") if moment else "…" for moment in (start, end)
    ]
    return Period("custom", start, end, " – ".join(parts))


def last_months(now: datetime, count: int) -> list[str]:
    """The `count` month keys up to and including the month of `now`, oldest first."""
    local_now = now.astimezone(local_tz())
    year, month = local_now.year, local_now.month
    keys = []
    for _i in range(count):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return keys[::-1]


def choices(now: datetime, *, months: int) -> list[tuple[str, str]]:
    """The periods a page offers: rolling, all time, this and last year, and the last `months`
    months (newest first), as (key, label)."""
    local = now.astimezone(local_tz())
    offered = [(k, resolve(k, now).label) for k in ROLLING_DAYS]
    offered.append(("all", resolve("all", now).label))
    offered += [(str(y), str(y)) for y in (local.year, local.year - 1)]
    offered += [(k, resolve(k, now).label) for k in reversed(last_months(now, months))]
    return offered
