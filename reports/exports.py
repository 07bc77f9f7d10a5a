"""Exports: the notices (CSV, JSON Lines, Parquet) and the figures per hoster (CSV).

Notices: streamed, one row per notice, the same rows in each format.

Memory stays flat whatever the size: rows come from a server-side cursor (PostgreSQL, inside a
transaction, the next batch fetched by a helper thread while this one is written; SQLite's lazily
stepping cursor) in batches of 5,000 and leave as encoded bytes batch by batch. Values are
formatted in SQL (times as fixed-width ISO 8601 UTC, `2026-03-01T11:00:00.000000Z`), so that both
databases give byte-identical rows; on PostgreSQL the CSV lines themselves are built in SQL up to
the URL and host (tested byte for byte against Python's csv module), so Python only joins them and,
for researchers and ministry users, hashes the URL and host.

What a row holds and who sees what:
- `url` and `host` are raw for analysts and hoster users (their own notices only: the rows come
  from `compliance.selectors.notices_visible_to`), and keyed pseudonyms (compliance.pseudonym:
  stable within a deployment, not reversible) for researchers and ministry users.
- every row carries `methodology_version` and `exported_at`: the statement of how and when it was
  made travels with the data, whatever a CSV reader does with headers or comments. The HTTP
  response repeats both in `X-Methodology-Version` / `X-Exported-At` and in the file name; Parquet
  files also carry them (and the filters) in the file's key-value metadata.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings
from django.db import NotSupportedError, connection, transaction
from django.db.models import Case, F, Func, QuerySet, TextField, Value, When
from django.db.models.functions import NullIf

from compliance import selectors, verdicts
from compliance.pseudonym import pseudonymise
from reports import scorecards
from reports.periods import Period
from reports.scorecards import HosterMetrics, PeriodMetrics, precision_ms_expression, ttt_ms_expression

CHUNK_ROWS = 5000

COLUMNS = [
    "id",
    "hoster",
    "notified_at",
    "deadline_at",
    "deadline_s",
    "regime",
    "status",
    "verdict",
    "last_online_at",
    "takedown_at",
    "ttt_s",
    "precision_s",
    "removal_mechanism",
    "is_displaced",
    "reappearance_count",
    "served_selectively_count",
    "is_behind_cdn",
    "check_count",
    "url",
    "host",
    "methodology_version",
    "exported_at",
]
VERDICTS = ("within", "late", "pending")


class IsoUtc(Func):
    """A datetime as fixed-width ISO 8601 in UTC with microseconds, the same text on both databases."""

    arity = 1
    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"""to_char({sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""", params

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores UTC as 'YYYY-MM-DD HH:MM:SS[.ffffff]' (no fraction when it is zero).
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"(replace(CASE WHEN length({sql}) = 19 THEN {sql} || '.000000' ELSE {sql} END, ' ', 'T') || 'Z')",
            (*params, *params, *params),
        )

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"IsoUtc is not implemented for {connection.vendor}")


class SecondsText(Func):
    """Milliseconds (an integer expression) as seconds with three decimals, `4.501`, `-0.250`: the
    same text on both databases, exact (no float in between). `ttt_s` and `precision_s` are
    rounded up to the millisecond before (reports.scorecards.Milliseconds)."""

    arity = 1
    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra):
        # Exact: a bigint over 1000 as numeric has at most three decimals, which to_char keeps.
        ms, params = compiler.compile(self.source_expressions[0])
        return f"to_char(({ms})::numeric / 1000, 'FM99999999999990.000')", params

    def as_sqlite(self, compiler, connection, **extra):
        ms, params = compiler.compile(self.source_expressions[0])
        sql = (
            f"(CASE WHEN {ms} < 0 THEN '-' ELSE '' END || (abs({ms}) / 1000) || '.' "
            f"|| substr('00' || (abs({ms}) %% 1000), -3, 3))"
        )
        return sql, (*params, *params, *params)

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"SecondsText is not implemented for {connection.vendor}")


@dataclass(frozen=True)
class ExportFilter:
    period: Period | None = None
    hoster: str | None = None  # slug
    statuses: tuple[str, ...] = ()
    verdict: str | None = None
    regime: str | None = None

    def describe(self) -> dict[str, str]:
        d = {}
        if self.period is not None:
            d["from"] = self.period.start.isoformat() if self.period.start else ""
            d["to"] = self.period.end.isoformat() if self.period.end else ""
        if self.hoster:
            d["hoster"] = self.hoster
        if self.statuses:
            d["status"] = ",".join(self.statuses)
        if self.verdict:
            d["verdict"] = self.verdict
        if self.regime:
            d["regime"] = self.regime
        return d


def _as_text(flag: str):
    """A boolean column as `true`/`false` text, the same in every format's source rows."""
    return Case(When(**{flag: True}, then=Value("true")), default=Value("false"), output_field=TextField())


def export_queryset(user, flt: ExportFilter, *, now: datetime) -> QuerySet:
    """The rows a user may export, filtered, formatted in SQL: a values_list in COLUMNS order.

    URLs and host names are raw here; `rows()` replaces them for users who get pseudonyms."""
    qs = selectors.notices_visible_to(user)
    if flt.period is not None:
        qs = flt.period.filter(qs)
    if flt.hoster:
        qs = qs.filter(hoster__slug=flt.hoster)
    if flt.statuses:
        qs = qs.filter(status__in=flt.statuses)
    if flt.regime:
        qs = qs.filter(regime=flt.regime)
    qs = verdicts.annotate_verdict(qs, now)
    if flt.verdict:
        qs = qs.filter(verdict_sql=flt.verdict)
    return (
        qs.annotate(
            x_notified=IsoUtc("notified_at"),
            x_deadline=IsoUtc("deadline_at"),
            x_online=IsoUtc("last_online_at"),
            x_takedown=IsoUtc("takedown_at"),
            x_ttt=SecondsText(ttt_ms_expression()),
            x_precision=SecondsText(precision_ms_expression()),
            x_mechanism=NullIf("removal_mechanism", Value("")),
            x_displaced=_as_text("is_displaced"),
            x_cdn=_as_text("is_behind_cdn"),
            x_version=Value(settings.METHODOLOGY_VERSION, output_field=TextField()),
            x_stamp=Value(now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), output_field=TextField()),
        )
        .order_by("id")
        .values_list(*SOURCE_FIELDS)
    )


# The queryset's fields behind COLUMNS, in order.
SOURCE_FIELDS = (
    "id",
    "hoster__slug",
    "x_notified",
    "x_deadline",
    "deadline_s",
    "regime",
    "status",
    "verdict_sql",
    "x_online",
    "x_takedown",
    "x_ttt",
    "x_precision",
    "x_mechanism",
    "x_displaced",
    "reappearance_count",
    "served_selectively_count",
    "x_cdn",
    "check_count",
    "url",
    "host",
    "x_version",
    "x_stamp",
)


URL, HOST = COLUMNS.index("url"), COLUMNS.index("host")


def _fetch(sql: str, params) -> Iterator[list[tuple]]:
    """Batches of raw rows from a cursor that streams: a server-side cursor on PostgreSQL (inside a
    transaction, see `_streaming`), SQLite's lazily stepping cursor. The values are already what an
    export holds (formatted in SQL), so Django's per-row converters are skipped.

    On PostgreSQL the next batch is fetched while this one is written out (`_prefetched`): the
    server formats rows while Python hashes and joins them, on two cores instead of one by turns."""
    with _streaming():
        cursor = connection.chunked_cursor()
        try:
            cursor.execute(sql, params)
            if connection.vendor == "postgresql":
                yield from _prefetched(cursor.cursor)
            else:
                while batch := cursor.fetchmany(CHUNK_ROWS):
                    yield batch
        finally:
            cursor.close()


def _prefetched(cursor, depth: int = 2) -> Iterator[list[tuple]]:
    """Batches from `cursor`, fetched by a helper thread up to `depth` ahead.

    Race: the consumer may stop early (a client that hangs up closes this generator); the helper
    then finds `stop` set at its next hand-over and quits, and is joined before the cursor is closed,
    so the connection is never used by two threads at once. psycopg releases the GIL while it waits
    for the server, which is what lets the two overlap."""
    handover: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def fetch() -> None:
        try:
            while not stop.is_set():
                batch = cursor.fetchmany(CHUNK_ROWS)
                while not stop.is_set():
                    try:
                        handover.put(batch, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if not batch:
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            handover.put(exc)

    helper = threading.Thread(target=fetch, name="export-prefetch", daemon=True)
    helper.start()
    try:
        while True:
            item = handover.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        helper.join()


def value_batches(user, flt: ExportFilter, *, now: datetime) -> Iterator[list[list]]:
    """Batches of export rows as lists of values in COLUMNS order (int, text or None; booleans as
    `true`/`false` text), URLs and host names pseudonymised for users who get pseudonyms."""
    sql, params = export_queryset(user, flt, now=now).query.sql_with_params()
    hashed = selectors.url_mode(user) == "hash"
    pseudonym = _Pseudonyms()
    for batch in _fetch(sql, params):
        rows = [list(values) for values in batch]
        if hashed:
            for row in rows:
                row[URL] = pseudonym.url(row[URL])
                row[HOST] = pseudonym.host(row[HOST])
        yield rows


def rows(user, flt: ExportFilter, *, now: datetime) -> Iterator[list]:
    """Export rows one by one (values as in `value_batches`)."""
    for batch in value_batches(user, flt, now=now):
        yield from batch


class _Pseudonyms:
    """compliance.pseudonym's keyed hash; host names repeat across notices, so each is hashed
    once (bounded cache)."""

    url = staticmethod(pseudonymise)

    def __init__(self):
        self.cache: dict[str, str] = {}

    def host(self, host: str) -> str:
        hashed = self.cache.get(host)
        if hashed is None:
            if len(self.cache) > 100_000:
                self.cache.clear()
            hashed = self.cache[host] = self.url(host)
        return hashed


def _streaming():
    """A server-side cursor streams only inside a transaction on PostgreSQL (outside one Django
    declares it WITH HOLD, which makes the server materialise the whole result first). On SQLite a
    transaction would take the write lock (BEGIN IMMEDIATE) for the whole download: none there."""
    return transaction.atomic() if connection.vendor == "postgresql" else nullcontext()


class CsvField(Func):
    """PostgreSQL: a text value quoted for CSV as Python's csv module does (QUOTE_MINIMAL)."""

    arity = 1
    output_field = TextField()
    template = (
        "CASE WHEN strpos(%(expressions)s, '\"') > 0 OR strpos(%(expressions)s, ',') > 0"
        " OR strpos(%(expressions)s, chr(10)) > 0"
        " THEN '\"' || replace(%(expressions)s, '\"', '\"\"') || '\"' ELSE %(expressions)s END"
    )


def _pg_csv_chunks(user, flt: ExportFilter, *, now: datetime) -> Iterator[bytes]:
    """PostgreSQL builds each CSV line (up to the URL and host) in SQL; Python only joins them, and
    for pseudonymised users hashes the URL and host: several times faster than a row-by-row csv.writer
    (bench/README.md)."""
    qs = export_queryset(user, flt, now=now)
    hashed = selectors.url_mode(user) == "hash"
    parts = []
    for name in SOURCE_FIELDS[:URL]:
        parts += [F(name), Value(",")]
    qs = qs.annotate(x_head=Func(*parts, function="concat", output_field=TextField()))
    tail = f",{settings.METHODOLOGY_VERSION},{now.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}\n"
    if hashed:
        qs = qs.values_list("x_head", "url", "host")
    else:
        qs = qs.annotate(x_url=CsvField("url")).values_list("x_head", "x_url", "host")
    sql, params = qs.query.sql_with_params()
    pseudonym = _Pseudonyms()
    for batch in _fetch(sql, params):
        if hashed:
            text = "".join(f"{head}{pseudonym.url(url)},{pseudonym.host(host)}{tail}" for head, url, host in batch)
        else:
            text = "".join(f"{head}{url},{host}{tail}" for head, url, host in batch)
        yield text.encode()


def csv_stream(user, flt: ExportFilter, *, now: datetime) -> Iterator[bytes]:
    yield (",".join(COLUMNS) + "\n").encode()
    if connection.vendor == "postgresql":
        yield from _pg_csv_chunks(user, flt, now=now)
        return
    yield from python_csv_chunks(user, flt, now=now)


def python_csv_chunks(user, flt: ExportFilter, *, now: datetime) -> Iterator[bytes]:
    """The rows through Python's csv module (SQLite; and the reference the fast path is tested against)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for batch in value_batches(user, flt, now=now):
        writer.writerows(batch)  # None is written as an empty field, as PostgreSQL's NULL
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


BOOL_COLUMNS = tuple(i for i, c in enumerate(COLUMNS) if c.startswith("is_"))
# Seconds to the millisecond, exported as text (`4.501`) in CSV; numbers in JSON Lines and Parquet.
SECONDS_COLUMNS = tuple(COLUMNS.index(c) for c in ("ttt_s", "precision_s"))


def jsonl_stream(user, flt: ExportFilter, *, now: datetime) -> Iterator[bytes]:
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for batch in value_batches(user, flt, now=now):
        lines = []
        for row in batch:
            for i in BOOL_COLUMNS:
                row[i] = row[i] == "true"
            for i in SECONDS_COLUMNS:
                if row[i] is not None:
                    row[i] = float(row[i])
            lines.append(dumps(dict(zip(COLUMNS, row, strict=True))))
        yield ("\n".join(lines) + "\n").encode()


TIMESTAMP = pa.timestamp("us", tz="UTC")
PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("hoster", pa.string()),
        ("notified_at", TIMESTAMP),
        ("deadline_at", TIMESTAMP),
        ("deadline_s", pa.int64()),
        ("regime", pa.string()),
        ("status", pa.string()),
        ("verdict", pa.string()),
        ("last_online_at", TIMESTAMP),
        ("takedown_at", TIMESTAMP),
        ("ttt_s", pa.float64()),
        ("precision_s", pa.float64()),
        ("removal_mechanism", pa.string()),
        ("is_displaced", pa.bool_()),
        ("reappearance_count", pa.int64()),
        ("served_selectively_count", pa.int64()),
        ("is_behind_cdn", pa.bool_()),
        ("check_count", pa.int64()),
        ("url", pa.string()),
        ("host", pa.string()),
        ("methodology_version", pa.string()),
        ("exported_at", TIMESTAMP),
    ]
)


PARQUET_ROW_GROUP = 50_000
# Dictionary encoding only where values repeat: for URLs, hosts and ids (unique per row) the writer
# would build a dictionary of the whole row group only to fall back to plain encoding.
PARQUET_OPTIONS: dict = {"use_dictionary": ["hoster", "status", "verdict", "removal_mechanism", "methodology_version"]}


class _Sink(io.RawIOBase):
    """A write-only file for pyarrow whose bytes the stream hands on and forgets: the file is never
    whole in memory, only what pyarrow wrote since the last hand-over (a row group at most)."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        b = bytes(data)
        self.parts.append(b)
        self.position += len(b)
        return len(b)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts = []
        return out


def _record_batch(schema: pa.Schema, batch: list[list]) -> pa.RecordBatch:
    """One database batch (rows of values in COLUMNS order) as Arrow columns, typed by `schema`."""
    arrays = []
    for field, values in zip(schema, zip(*batch, strict=True), strict=True):
        if field.type == pa.bool_():
            arrays.append(pc.equal(pa.array(values, type=pa.string()), "true"))
        elif field.type == TIMESTAMP:
            arrays.append(pa.array(values, type=pa.string()).cast(TIMESTAMP))
        elif field.type == pa.float64():
            arrays.append(pa.array(values, type=pa.string()).cast(pa.float64()))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def parquet_stream(user, flt: ExportFilter, *, now: datetime, metadata: dict[str, str]) -> Iterator[bytes]:
    """Parquet in row groups of `PARQUET_ROW_GROUP` rows through pyarrow's ParquetWriter into a stream;
    the file's key-value metadata holds `metadata` (methodology version, export time, filters).

    Memory stays flat: each database batch (5,000 rows) becomes Arrow columns at once, so Python
    holds one batch of row objects at a time; a row group waits as compact Arrow columns (a few MB)
    until it is full, is written, and its bytes leave. Only the footer (a few hundred bytes per row
    group) grows with the file."""
    schema = PARQUET_SCHEMA.with_metadata({k: str(v) for k, v in metadata.items()})
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd", **PARQUET_OPTIONS)
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    try:
        for batch in value_batches(user, flt, now=now):
            pending.append(_record_batch(schema, batch))
            pending_rows += len(batch)
            if pending_rows >= PARQUET_ROW_GROUP:
                writer.write_table(pa.Table.from_batches(pending, schema=schema), row_group_size=pending_rows)
                pending, pending_rows = [], 0
                if data := sink.take():
                    yield data
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema=schema), row_group_size=pending_rows)
            pending = []
    finally:
        writer.close()
    yield sink.take()


def filename(kind: str, now: datetime) -> str:
    return f"notices-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.{kind}"


# --- Figures per hoster as CSV: the league table, "below the bar" and compliance_report ----------

LEAGUE_CSV_COLUMNS = ["rank", *scorecards.REPORT_COLUMNS, *scorecards.EXTRA_COLUMNS]


def csv_value(value) -> str:
    """A figure as a CSV field: None empty, a list space-separated, a time in ISO 8601."""
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def write_league_csv(out, rows: list[HosterMetrics], figures: PeriodMetrics) -> None:
    """The league table's rows (each with its `rank`, None: unranked) with every figure, the period's
    bounds and when the figures were computed, into the file-like `out`."""
    writer = csv.writer(out)
    writer.writerow([*LEAGUE_CSV_COLUMNS, "period_from", "period_to", "computed_at"])
    start = figures.period.start.isoformat() if figures.period.start else ""
    end = figures.period.end.isoformat() if figures.period.end else ""
    for m in rows:
        data = m.as_dict()
        data["rank"] = getattr(m, "rank", None)
        writer.writerow(
            [*(csv_value(data[c]) for c in LEAGUE_CSV_COLUMNS), start, end, figures.computed_at.isoformat()]
        )


def write_report_csv(out, rows: list[dict], columns: list[str]) -> None:
    """`compliance_report --format csv`: its rows (`scorecards.report_row`) under a header, into `out`."""
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_value(v) for k, v in row.items()})
