"""Writes that span models or open a transaction: intake of notices and hosters, users.

Intake has one validation path (`notice_input_parse`) shared by the API, the CSV import and the
admin, so that a URL rejected in one place is rejected in all, with the same reason.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.authtoken.models import Token

from compliance import bulk
from compliance.models import (
    DEADLINE_S_MAX,
    NOTIFIED_AT_FLOOR,
    Hoster,
    HosterASN,
    HosterPrefix,
    Membership,
    Notice,
    Role,
)
from compliance.urlnorm import InvalidURL, NormalizedURL, normalize_url

# The ranges intake accepts (README "import_notices", docs/api.md). Every value inside them can be
# stored by both databases and computed with (notified_at + deadline_s, schedules, reports); values
# outside are refused before any write, with the same reason in the API, the import and the admin.
# A notified_at this far ahead of the clock is a mistake (a wrong offset, a typo), not a notice.
FUTURE_TOLERANCE = timedelta(minutes=5)
# UTC offsets run from -12:00 to +14:00; Python takes up to ±23:59, PostgreSQL refuses beyond
# ±15:59 (a 500 for the API, a lost batch for the import, before the value was stored in UTC).
MAX_UTC_OFFSET = timedelta(hours=14)
# NOTIFIED_AT_FLOOR (2000-01-01, compliance/models.py): older than the product's domain; it also
# keeps every stored timestamp far from the year-1 and BC values that PostgreSQL stores but Python
# cannot read. The database refuses what lies outside too (Notice's CheckConstraints).
# A notice's own deadline: from a second to a year. Removal orders run in hours, but a compressed
# schedule (the sandbox, scenario tests: a day becomes a minute) uses deadlines of seconds. A year
# fits a PostgreSQL integer and every date computation with room to spare.
DEADLINE_MIN_S = 1
DEADLINE_MAX_S = DEADLINE_S_MAX
DEADLINE_RANGE_MESSAGE = f"deadline_s must lie between {DEADLINE_MIN_S} and {DEADLINE_MAX_S} seconds (365 days)"
# Text lengths (the columns' sizes).
REFERENCE_MAX = 200
SOURCE_MAX = 100
ANALYSTS_GROUP = "Analysts"

log = logging.getLogger("compliance.services")


class NoticeInputError(Exception):
    """Field errors for one notice: `errors` maps field name to a list of messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class NoticeInput:
    url: NormalizedURL
    notified_at: datetime | None = None
    reference: str = ""
    content_sha256: str = ""
    hoster_id: int | None = None
    deadline_s: int | None = None
    regime: str = ""
    source: str = ""  # only when notice_input_parse was given one


@dataclass
class ImportResult:
    imported: int = 0
    duplicates: int = 0
    repeats: int = 0
    # By index into the batch's rows, so that the command reports each at its line: (index,
    # reason) for rows refused at write time; (index, index of the earlier row of this batch with
    # the same reference, or None when the reference was stored before) for duplicates.
    rejected_rows: list[tuple[int, str]] = field(default_factory=list)
    duplicate_rows: list[tuple[int, int | None]] = field(default_factory=list)


class HosterLookup:
    """slug -> id, loaded once per import so that rows don't each cost a query."""

    def __init__(self) -> None:
        self._ids = dict(Hoster.objects.values_list("slug", "id"))

    def id_for(self, slug: str) -> int | None:
        return self._ids.get(slug)


def _notified_at_parse(notified_at: str | datetime | None, errors: dict[str, list[str]], *, now: datetime):
    """`notified_at` as an aware UTC datetime, or None (not given, or a problem added to `errors`)."""
    if isinstance(notified_at, datetime):
        parsed = notified_at
    elif notified_at not in (None, ""):
        parsed = _parse_iso_datetime(str(notified_at).strip(), errors)
    else:
        return None
    if parsed is None:
        return None
    problem = None
    if timezone.is_naive(parsed):
        problem = "notified_at must carry a UTC offset, e.g. 2024-05-01T09:30:00+02:00"
    # Aware datetimes compare through their UTC difference, which never overflows (a conversion to
    # UTC of year 1 with a positive offset would).
    elif not -MAX_UTC_OFFSET <= parsed.utcoffset() <= MAX_UTC_OFFSET:
        problem = f"notified_at {parsed.isoformat()} has a UTC offset beyond ±14:00 (none on Earth is)"
    elif parsed < NOTIFIED_AT_FLOOR:
        problem = f"notified_at {parsed.isoformat()} is before {NOTIFIED_AT_FLOOR.date().isoformat()}"
    elif parsed > now + FUTURE_TOLERANCE:
        problem = f"notified_at {parsed.isoformat()} lies in the future"
    if problem:
        errors["notified_at"] = [problem]
        return None
    return parsed.astimezone(UTC)


def notice_input_parse(
    *,
    url: str,
    notified_at: str | datetime | None = None,
    reference: str | None = "",
    content_sha256: str | None = "",
    hoster: str | None = "",
    deadline_s: str | int | None = None,
    regime: str | None = "",
    source: str | None = None,
    now: datetime,
    hosters: HosterLookup | None = None,
) -> NoticeInput:
    """Validate one notice's fields; raise NoticeInputError with every problem found.

    Every range is checked here, before anything is written (the constants above): what passes
    can be stored by both databases and read back, and never makes a report or a drain fail.
    """
    errors: dict[str, list[str]] = {}

    # Text no database column can take (PostgreSQL refuses NUL; lone surrogates are not UTF-8).
    texts = {"url": url, "reference": reference, "hoster": hoster, "regime": regime, "source": source}
    given = {"notified_at": notified_at, "content_sha256": content_sha256, "deadline_s": deadline_s}
    texts.update((name, value) for name, value in given.items() if isinstance(value, str))
    for name, text in texts.items():
        problem = _text_problem(name, text)
        if problem:
            errors[name] = [problem]

    normalized = None
    if "url" not in errors:
        try:
            normalized = normalize_url(url or "")
        except InvalidURL as exc:
            errors["url"] = [str(exc)]

    parsed_notified_at = None
    if "notified_at" not in errors:
        parsed_notified_at = _notified_at_parse(notified_at, errors, now=now)

    reference = (reference or "").strip() if "reference" not in errors else ""
    if len(reference) > REFERENCE_MAX:
        errors["reference"] = [f"reference is longer than {REFERENCE_MAX} characters"]

    content_sha256 = (content_sha256 or "").strip().lower() if "content_sha256" not in errors else ""
    if content_sha256 and (len(content_sha256) != 64 or any(c not in "0123456789abcdef" for c in content_sha256)):
        errors["content_sha256"] = ["content_sha256 must be 64 hexadecimal characters"]

    hoster_id = None
    hoster = (hoster or "").strip() if "hoster" not in errors else ""
    if hoster:
        hoster_id = (hosters or HosterLookup()).id_for(hoster)
        if hoster_id is None:
            errors["hoster"] = [f"no hoster with slug {hoster[:100]!r} (load it with load_hosters first)"]

    parsed_deadline = None
    if deadline_s not in (None, "") and "deadline_s" not in errors:
        parsed_deadline = _parse_deadline(deadline_s, errors)

    regime = (regime or "").strip().lower() if "regime" not in errors else ""
    if regime and regime not in Notice.Regime.values:
        errors["regime"] = [f"regime must be one of {', '.join(Notice.Regime.values)}"]

    if source is not None and "source" not in errors:
        try:
            source = source_parse(source)
        except NoticeInputError as exc:
            errors.update(exc.errors)

    if errors:
        raise NoticeInputError(errors)
    return NoticeInput(
        url=normalized,
        notified_at=parsed_notified_at,
        reference=reference,
        content_sha256=content_sha256,
        hoster_id=hoster_id,
        deadline_s=parsed_deadline,
        regime=regime,
        source=source or "",
    )


def source_parse(source: str) -> str:
    """A notice source (the import's --source, the API's `source`): the same rules as in
    notice_input_parse; raise NoticeInputError with the reason."""
    problem = _text_problem("source", source)
    source = (source or "").strip()
    if problem is None and not source:
        problem = "source must not be empty"
    if problem is None and len(source) > SOURCE_MAX:
        problem = f"source is longer than {SOURCE_MAX} characters ({len(source)})"
    if problem:
        raise NoticeInputError({"source": [problem]})
    return source


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text_problem(name: str, text: object) -> str | None:
    if text is None or not isinstance(text, str):
        return None
    if "\x00" in text:
        return f"{name} contains a NUL character"
    if _SURROGATE.search(text):
        return f"{name} is not valid Unicode text (a lone surrogate)"
    return None


def _parse_deadline(value: str | int, errors: dict[str, list[str]]) -> int | None:
    text = value.strip() if isinstance(value, str) else value
    try:
        # int() of a 5,000-digit string is refused by Python itself (ValueError): no cost to fear.
        parsed = int(text) if isinstance(text, int | str) and not isinstance(text, bool) else None
    except ValueError:
        parsed = None
    if parsed is None:
        errors["deadline_s"] = ["deadline_s must be a whole number of seconds"]
        return None
    if not DEADLINE_MIN_S <= parsed <= DEADLINE_MAX_S:
        errors["deadline_s"] = [DEADLINE_RANGE_MESSAGE]
        return None
    return parsed


def notice_regime(*, regime: str, deadline_s: int | None) -> str:
    """The regime of a new notice: as given; without one, a deadline of its own (not
    COMPLIANCE_DEADLINE) is a removal order's, anything else the covenant's."""
    if regime:
        return regime
    if deadline_s is not None and deadline_s != settings.COMPLIANCE_DEADLINE:
        return Notice.Regime.ORDER
    return Notice.Regime.COVENANT


def _parse_iso_datetime(text: str, errors: dict[str, list[str]]) -> datetime | None:
    try:
        value = parse_datetime(text)
    except ValueError:
        value = None
    if value is None:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            errors["notified_at"] = [f"notified_at {text!r} is not an ISO 8601 date and time"]
            return None
    return value


def _notice_values(data: NoticeInput, *, source: str, now: datetime) -> dict[str, object]:
    """Field values (by attname) of a new notice from validated input."""
    notified_at = data.notified_at
    if notified_at is None and not settings.NOTIFY_BY_EMAIL:
        notified_at = now  # the default notified_at is the import time (README)
    deadline_s = data.deadline_s or settings.COMPLIANCE_DEADLINE
    return {
        "url": data.url.url,
        "scheme": data.url.scheme,
        "host": data.url.host,
        "port": data.url.port,
        "path": data.url.path,
        "query": data.url.query,
        "source": source,
        "reference": data.reference or None,
        "content_sha256": data.content_sha256,
        "received_at": now,
        "notified_at": notified_at,
        "deadline_s": deadline_s,
        "regime": notice_regime(regime=data.regime, deadline_s=data.deadline_s),
        **dict(zip(("deadline_at", "settles_at"), Notice.timeline(notified_at, deadline_s), strict=True)),
        "hoster_id": data.hoster_id,
        "hoster_source": Notice.HosterSource.HOTLINE if data.hoster_id else "",
        # A check at intake, and attribution as soon as the monitor gets to it.
        "next_check_at": now,
        "next_attribution_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _notice_from_input(data: NoticeInput, *, source: str, now: datetime) -> Notice:
    return Notice(**_notice_values(data, source=source, now=now))


def _repeat_values(values: dict[str, object], *, open_id: int, open_hoster_id: int | None) -> dict[str, object]:
    """A repeat notice records that the hoster was told again; it is not a second measurement."""
    values.update(
        status=Notice.Status.REPEAT,
        repeat_of_id=open_id,
        hoster_id=values["hoster_id"] or open_hoster_id,
        attribution_state=Notice.AttributionState.DONE,
        next_check_at=None,
        next_attribution_at=None,
    )
    return values


def _as_repeat(notice: Notice, open_notice: Notice) -> Notice:
    values = _repeat_values(
        {"hoster_id": notice.hoster_id}, open_id=open_notice.pk, open_hoster_id=open_notice.hoster_id
    )
    for attname, value in values.items():
        setattr(notice, attname, value)
    return notice


# What reading one stored row can raise when a value in it cannot be turned into Python (a BC or
# year-0 timestamp written before intake checked ranges; psycopg's own DataError where a drain
# reads with a raw cursor). The drains catch these per row: log with the traceback, push the row
# forward by BAD_ROW_DELAY, carry on with the others.
UNREADABLE_ROW_ERRORS: tuple[type[BaseException], ...] = (DataError, ValueError, OverflowError)
try:
    import psycopg
except ImportError:  # pragma: no cover (SQLite-only installs)
    pass
else:
    UNREADABLE_ROW_ERRORS += (psycopg.DataError,)
BAD_ROW_DELAY = timedelta(hours=1)

# What a row can raise at write time although it passed notice_input_parse (a row built by other
# code, a database that refuses a value, a constraint): the row is refused, the rest of its batch
# written. A lost connection (OperationalError) is no row's fault and still stops the import.
ROW_WRITE_ERRORS = (DataError, IntegrityError, ValueError, OverflowError, ValidationError, RuntimeError)


@transaction.atomic
def notice_import_batch(*, rows: list[NoticeInput], source: str, now: datetime) -> ImportResult:
    """Create the notices of one batch of valid inputs: duplicates skipped, repeats linked.

    Two queries find existing references and open notices for the whole batch; one statement
    inserts it. If that statement fails (a concurrent writer got in between and a unique
    constraint fires, or a value the database refuses), the batch falls back to one row at a
    time, each in its own savepoint, so nothing good is lost: a row that still fails is returned
    in `rejected_rows` with its reason, like a row refused by validation.
    """
    result = ImportResult()
    references = {r.reference for r in rows if r.reference}
    existing_refs = (
        set(
            Notice.objects.filter(source=source, reference__in=references)
            .order_by()
            .values_list("reference", flat=True)
        )
        if references
        else set()
    )
    urls = {r.url.url for r in rows}
    open_ids = _open_notice_ids(urls)

    firsts: list[dict[str, object]] = []
    repeats: list[dict[str, object]] = []
    new_open: set[str] = set()
    seen_refs: dict[str, int] = {}  # reference -> index of its first row in this batch
    stored_before: list[tuple[int, None]] = []  # duplicates of references stored before
    candidates: list[tuple[int, NoticeInput]] = []  # every other row that is not refused
    for index, data in enumerate(rows):
        if data.reference and data.reference in existing_refs:
            stored_before.append((index, None))
            continue
        try:
            values = _notice_values(data, source=source, now=now)
        except ROW_WRITE_ERRORS as exc:
            result.rejected_rows.append((index, write_error_reason(exc)))
            continue
        candidates.append((index, data))
        if data.reference and data.reference in seen_refs:
            result.duplicate_rows.append((index, seen_refs[data.reference]))
            continue
        if data.reference:
            seen_refs[data.reference] = index
        if data.url.url in open_ids or data.url.url in new_open:
            repeats.append(values)
        else:
            new_open.add(data.url.url)
            firsts.append(values)
    result.duplicate_rows = sorted(stored_before + result.duplicate_rows)
    result.duplicates = len(result.duplicate_rows)

    try:
        with transaction.atomic():
            _insert_notices(firsts)
            if repeats:
                # Repeats may point at notices created just now: look their ids up.
                missing = {v["url"] for v in repeats} - open_ids.keys()
                if missing:
                    open_ids.update(_open_notice_ids(missing))
                hosters = dict(Notice.objects.filter(pk__in=set(open_ids.values())).values_list("id", "hoster_id"))
                for values in repeats:
                    open_id = open_ids[values["url"]]
                    _repeat_values(values, open_id=open_id, open_hoster_id=hosters.get(open_id))
                _insert_notices(repeats)
    except ROW_WRITE_ERRORS:
        log.info("import batch of %d rows: one statement failed; writing row by row", len(rows), exc_info=True)
        # Row by row over every candidate, duplicates within the batch included: one whose first
        # row is now refused is imported in its place.
        one_by_one = _import_one_by_one(rows=candidates, source=source, now=now)
        one_by_one.rejected_rows = sorted(result.rejected_rows + one_by_one.rejected_rows)
        one_by_one.duplicate_rows = sorted(stored_before + one_by_one.duplicate_rows)
        one_by_one.duplicates = len(one_by_one.duplicate_rows)
        return one_by_one
    result.imported = len(firsts) + len(repeats)
    result.repeats = len(repeats)
    return result


def write_error_reason(exc: BaseException) -> str:
    """A row's write failure in words for the person who sent the file (one line)."""
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    return f"could not be stored: {text}"


def _open_notice_ids(urls: set[str]) -> dict[str, int]:
    """url -> id of its open notice. Filtered on status in Python: with `status IN (...)` in the
    query, the planner may walk the status index over every open notice instead of the URL index."""
    open_statuses = set(Notice.OPEN_STATUSES)
    return {
        url: pk
        for url, pk, status in Notice.objects.filter(url__in=urls).order_by().values_list("url", "id", "status")
        if status in open_statuses
    }


def _insert_notices(rows: list[dict[str, object]]) -> None:
    """Insert new notices, given as field values by attname, with one executemany (compliance/bulk.py)."""
    bulk.insert_rows(Notice, rows)


def _import_one_by_one(*, rows: list[tuple[int, NoticeInput]], source: str, now: datetime) -> ImportResult:
    """(index, input) pairs, each in its own savepoint: a row that fails is refused, not the batch."""
    result = ImportResult()
    created_refs: dict[str, int] = {}  # reference -> index of the row that created it here
    for index, data in rows:
        try:
            with transaction.atomic():
                notice, outcome = notice_create(data=data, source=source, now=now)
        except ROW_WRITE_ERRORS as exc:
            log.warning("import: row %d could not be stored", index, exc_info=True)
            result.rejected_rows.append((index, write_error_reason(exc)))
            continue
        if outcome == "duplicate":
            result.duplicates += 1
            result.duplicate_rows.append((index, created_refs.get(data.reference)))
            continue
        if data.reference:
            created_refs[data.reference] = index
        result.imported += 1
        result.repeats += outcome == "repeat"
    return result


def notice_create(*, data: NoticeInput, source: str, now: datetime) -> tuple[Notice, str]:
    """Create one notice. Returns (notice, "created" | "repeat" | "duplicate").

    For a duplicate (same source and reference) the existing notice is returned unchanged.
    """
    for _attempt in range(3):
        try:
            with transaction.atomic():
                if data.reference:
                    existing = Notice.objects.filter(source=source, reference=data.reference).first()
                    if existing is not None:
                        return existing, "duplicate"
                notice = _notice_from_input(data, source=source, now=now)
                open_notice = Notice.objects.filter(url=notice.url, status__in=Notice.OPEN_STATUSES).first()
                if open_notice is not None:
                    _as_repeat(notice, open_notice)
                notice.full_clean(validate_unique=False, validate_constraints=False)
                notice.save()
                return notice, "repeat" if open_notice is not None else "created"
        except IntegrityError:
            # A concurrent writer created the same reference or an open notice for the URL
            # between our read and our insert: read again and decide again.
            continue
    raise RuntimeError(f"could not record notice for {data.url.host} after concurrent conflicts")


# --- Hosters ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HosterInput:
    slug: str
    name: str
    country: str
    abuse_email: str
    kind: str
    asns: tuple[int, ...]
    prefixes: tuple[str, ...]


def due_now_unless_leased(now: datetime):
    """`next_check_at` for a check asked for now (a hoster's removal claim, an analyst's request):
    now, unless a monitor holds the notice's lease. Moving a leased notice's `next_check_at` would
    let a second monitor claim it; the check drain checks it again right after instead."""
    from django.db.models import Case, F, Value, When

    return Case(When(lease_token__isnull=True, then=Value(now)), default=F("next_check_at"))


def notice_check_request(*, notice_ids: list[int], user, now: datetime, request=None) -> int:
    """An analyst asks for an immediate check of these notices (admin "Check now"); returns how
    many open notices were queued. The monitor checks them like any due notice, with the trigger
    `analyst`; the request itself changes no timing. A notice a monitor holds right now (leased)
    keeps its `next_check_at`, so that no second monitor claims it: the drain checks it again
    right after (monitor/check_drain.py). Closed notices are not checked on request."""
    from compliance.audit import audit_record

    queued = 0
    for chunk in bulk.chunks(notice_ids, 500):
        with transaction.atomic():
            open_ids = list(
                Notice.objects.filter(pk__in=chunk, status__in=Notice.OPEN_STATUSES).values_list("id", flat=True)
            )
            queued += Notice.objects.filter(pk__in=open_ids, status__in=Notice.OPEN_STATUSES).update(
                check_requested_at=now,
                next_check_at=due_now_unless_leased(now),
            )
            for notice in Notice.objects.filter(pk__in=open_ids):
                audit_record(actor=user, action="notice.check_now", notice=notice, request=request)
    return queued


def hoster_input_parse(row: dict[str, str]) -> HosterInput:
    """Validate one row of a hosters CSV; raise ValueError with the reason."""
    from django.utils.text import slugify

    slug = (row.get("slug") or "").strip()
    if not slug or slugify(slug) != slug:
        raise ValueError(f"slug {slug!r} must be lower-case letters, digits and hyphens")
    name = (row.get("name") or "").strip()
    if not name:
        raise ValueError("name is empty")
    country = (row.get("country") or "").strip().upper()
    if country and (len(country) != 2 or not country.isalpha()):
        raise ValueError(f"country {country!r} is not a two-letter ISO code")
    abuse_email = (row.get("abuse_email") or "").strip()
    if abuse_email:
        try:
            validate_email(abuse_email)
        except ValidationError:
            raise ValueError(f"abuse_email {abuse_email!r} is not an e-mail address") from None
    kind = (row.get("kind") or "hoster").strip().lower()
    if kind not in Hoster.Kind.values:
        raise ValueError(f"kind {kind!r} must be hoster or cdn")
    asns = []
    for token in (row.get("asns") or "").split():
        text = token.upper().removeprefix("AS")
        if not text.isdigit() or not 1 <= int(text) <= 4294967295:
            raise ValueError(f"ASN {token!r} is not a number between 1 and 4294967295")
        asns.append(int(text))
    prefixes = []
    for token in (row.get("prefixes") or "").split():
        try:
            prefixes.append(str(ipaddress.ip_network(token, strict=True)))
        except ValueError as exc:
            raise ValueError(f"prefix {token!r} is not a network in CIDR notation ({exc})") from None
    return HosterInput(slug, name, country, abuse_email, kind, tuple(asns), tuple(prefixes))


def _listing_conflicts(
    hosters: list[HosterInput], owners_asn: dict, owners_prefix: dict
) -> tuple[list[str], dict[int, str], dict[str, str]]:
    """What a hoster file lists that it may not: an ASN or prefix held by a reviewed hoster not in
    the file, or listed for two hosters in it. Returns (conflicts, ASN -> slug, prefix -> slug)."""
    slugs = [h.slug for h in hosters]
    conflicts: list[str] = []
    for h in hosters:
        for asn in h.asns:
            owner = owners_asn.get(asn)
            if owner and owner.hoster.slug not in slugs and owner.hoster.is_reviewed:
                conflicts.append(f"{h.slug}: AS{asn} is registered to hoster {owner.hoster.slug}")
        for prefix in h.prefixes:
            owner = owners_prefix.get(prefix)
            if owner and owner.hoster.slug not in slugs and owner.hoster.is_reviewed:
                conflicts.append(f"{h.slug}: {prefix} is registered to hoster {owner.hoster.slug}")
    seen_asn: dict[int, str] = {}
    seen_prefix: dict[str, str] = {}
    for h in hosters:
        for asn in h.asns:
            if asn in seen_asn and seen_asn[asn] != h.slug:
                conflicts.append(f"{h.slug}: AS{asn} is also listed for {seen_asn[asn]}")
            seen_asn[asn] = h.slug
        for prefix in h.prefixes:
            if prefix in seen_prefix and seen_prefix[prefix] != h.slug:
                conflicts.append(f"{h.slug}: {prefix} is also listed for {seen_prefix[prefix]}")
            seen_prefix[prefix] = h.slug
    return conflicts, seen_asn, seen_prefix


@transaction.atomic
def hosters_load(*, hosters: list[HosterInput]) -> dict[str, object]:
    """Create or update the given hosters in place; their ASNs and prefixes become exactly those given.

    An ASN or prefix held by an unreviewed hoster (one attribution created for an unknown AS) moves
    to the curated hoster. One held by another curated hoster not in this file is a conflict.
    """
    slugs = [h.slug for h in hosters]
    owners_asn = {a.asn: a for a in HosterASN.objects.select_related("hoster")}
    owners_prefix = {p.prefix: p for p in HosterPrefix.objects.select_related("hoster")}
    conflicts, seen_asn, seen_prefix = _listing_conflicts(hosters, owners_asn, owners_prefix)
    if conflicts:
        raise ValueError("; ".join(conflicts))

    created = updated = 0
    moved: list[str] = []
    by_slug = {h.slug: h for h in Hoster.objects.filter(slug__in=slugs)}
    for h in hosters:
        obj = by_slug.get(h.slug) or Hoster(slug=h.slug)
        created += obj.pk is None
        updated += obj.pk is not None
        obj.name, obj.country, obj.abuse_email, obj.kind = h.name, h.country, h.abuse_email, h.kind
        obj.is_reviewed = True
        obj.full_clean(validate_unique=False)
        obj.save()
        by_slug[h.slug] = obj
    ids = [o.pk for o in by_slug.values()]
    HosterASN.objects.filter(hoster_id__in=ids).delete()
    HosterPrefix.objects.filter(hoster_id__in=ids).delete()
    for asn in seen_asn:
        if asn in owners_asn and owners_asn[asn].hoster.slug not in slugs:
            moved.append(f"AS{asn} from {owners_asn[asn].hoster.slug}")
    for prefix in seen_prefix:
        if prefix in owners_prefix and owners_prefix[prefix].hoster.slug not in slugs:
            moved.append(f"{prefix} from {owners_prefix[prefix].hoster.slug}")
    HosterASN.objects.filter(asn__in=seen_asn).delete()
    HosterPrefix.objects.filter(prefix__in=seen_prefix).delete()
    HosterASN.objects.bulk_create([HosterASN(hoster=by_slug[slug], asn=asn) for asn, slug in seen_asn.items()])
    for prefix, slug in seen_prefix.items():
        HosterPrefix(hoster=by_slug[slug], prefix=prefix).save()
    return {"created": created, "updated": updated, "moved": moved}


# --- Users --------------------------------------------------------------------------------------


def _analyst_group() -> Group:
    """Analysts may view and change everything of the product's apps in the admin."""
    group, _created = Group.objects.get_or_create(name=ANALYSTS_GROUP)
    perms = Permission.objects.filter(content_type__app_label__in=["compliance", "monitor", "reports"])
    group.permissions.set(perms)
    return group


@transaction.atomic
def user_upsert(
    *,
    username: str,
    role: str,
    hoster_slug: str | None = None,
    password: str | None = None,
    email: str = "",
    with_token: bool = False,
) -> tuple[object, bool, str | None]:
    """Create or update a user with one role. Returns (user, created, token key or None)."""
    if role not in Role.values:
        raise ValueError(f"role must be one of {', '.join(Role.values)}")
    hoster = None
    if role == Role.HOSTER:
        if not hoster_slug:
            raise ValueError("a hoster user needs --hoster SLUG")
        hoster = Hoster.objects.filter(slug=hoster_slug).first()
        if hoster is None:
            raise ValueError(f"no hoster with slug {hoster_slug!r}")
    elif hoster_slug:
        raise ValueError(f"--hoster applies to hoster users only, not to role {role}")

    User = get_user_model()
    user, created = User.objects.get_or_create(username=username)
    if email:
        user.email = email
    if password is not None:
        validate_password(password, user)  # raises ValidationError with the rules broken
        user.set_password(password)
    elif created:
        user.set_unusable_password()  # an API-only account until a password is set
    user.is_staff = role == Role.ANALYST  # the admin is the analysts' workbench
    user.save()
    Membership.objects.update_or_create(user=user, defaults={"role": role, "hoster": hoster})
    if role == Role.ANALYST:
        user.groups.add(_analyst_group())
    else:
        user.groups.remove(*Group.objects.filter(name=ANALYSTS_GROUP))
    token = Token.objects.get_or_create(user=user)[0].key if with_token else None
    return user, created, token
