"""The exports (reports/exports.py): the notices' rows in CSV (the fast path byte for byte), JSON
Lines and Parquet, streamed; and the figures per hoster as CSV."""

from __future__ import annotations

import io
from datetime import timedelta

import pyarrow.parquet as pq
import pytest

from compliance.models import Notice
from reports import exports

from .helpers import csv_rows

CSV = "/api/v1/export/notices.csv"


@pytest.mark.parametrize("role", ["analyst", "researcher"])
def test_the_fast_csv_path_writes_exactly_what_the_csv_module_writes(market, prompt_hoster, role, request):
    """On PostgreSQL the CSV lines are built in SQL; they must equal Python's csv module byte for byte."""
    from django.utils import timezone

    from .helpers import notice

    notice(prompt_hoster, timezone.now(), ttt_s=5, url='http://x.example/a,b"c"/d', removal_mechanism="")
    notice(prompt_hoster, timezone.now(), ttt_s=4.500001, last_online_at=None)  # sub-second, rounded up
    notice(prompt_hoster, timezone.now(), ttt_s=-0.25)  # gone before the notification
    user = request.getfixturevalue(role)
    now = timezone.now()
    flt = exports.ExportFilter()
    fast = b"".join(exports.csv_stream(user, flt, now=now))
    reference = (",".join(exports.COLUMNS) + "\n").encode() + b"".join(exports.python_csv_chunks(user, flt, now=now))
    assert fast == reference
    assert fast.count(b"\n") == Notice.objects.count() + 1


def test_a_download_stopped_half_way_leaves_the_connection_usable(market, analyst, researcher, monkeypatch):
    """A client that hangs up closes the stream: the prefetching helper (PostgreSQL) stops and the
    cursor and transaction are closed; the next query on the connection works."""
    import threading

    from django.utils import timezone

    monkeypatch.setattr(exports, "CHUNK_ROWS", 10)
    threads_before = threading.active_count()
    for user in (analyst, researcher):
        stream = exports.csv_stream(user, exports.ExportFilter(), now=timezone.now())
        next(stream)  # the header
        next(stream)  # the first batch
        stream.close()
    assert threading.active_count() == threads_before
    assert Notice.objects.count() == 76
    full = b"".join(exports.csv_stream(analyst, exports.ExportFilter(), now=timezone.now()))
    assert full.count(b"\n") == 77


def test_parquet_leaves_row_group_by_row_group_and_holds_every_row(market, analyst, monkeypatch):
    """The Parquet stream hands on each row group's bytes as it is written (the file is never whole
    in memory), row groups made of several database batches, and the file reads back whole."""
    from django.utils import timezone

    monkeypatch.setattr(exports, "CHUNK_ROWS", 7)  # database batches of 7 rows
    monkeypatch.setattr(exports, "PARQUET_ROW_GROUP", 20)  # row groups of 21 (3 batches), the last smaller
    now = timezone.now()
    parts = list(exports.parquet_stream(analyst, exports.ExportFilter(), now=now, metadata={"k": "v"}))
    assert len(parts) >= 4 and all(parts)  # 76 rows: 3 full row groups leave before the footer
    parquet = pq.ParquetFile(io.BytesIO(b"".join(parts)))
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)] == [21, 21, 21, 13]
    table = parquet.read()
    expected = list(exports.rows(analyst, exports.ExportFilter(), now=now))
    assert table.column("id").to_pylist() == [r[0] for r in expected]
    assert table.column("url").to_pylist() == [r[exports.URL] for r in expected]
    assert table.column("is_behind_cdn").to_pylist() == [
        r[exports.COLUMNS.index("is_behind_cdn")] == "true" for r in expected
    ]
    assert table.schema.metadata[b"k"] == b"v"


def test_export_times_are_seconds_to_the_millisecond_rounded_up(api, prompt_hoster, analyst):
    from django.utils import timezone

    from .helpers import notice

    at = timezone.now().replace(microsecond=0)
    a = notice(prompt_hoster, at, ttt_s=4.500001, last_online_at=at + timedelta(seconds=4, microseconds=100))
    b = notice(prompt_hoster, at, ttt_s=-0.25, last_online_at=None)
    c = notice(prompt_hoster, at, ttt_s=86400)
    rows = {int(r["id"]): r for r in csv_rows(api.as_user(analyst).get(CSV))}
    assert (rows[a.pk]["ttt_s"], rows[a.pk]["precision_s"]) == ("4.501", "0.500")
    assert (rows[b.pk]["ttt_s"], rows[b.pk]["precision_s"]) == ("-0.250", "-0.250")
    assert rows[c.pk]["ttt_s"] == "86400.000"


def test_figures_become_csv_fields_as_plain_text():
    from datetime import UTC, datetime

    assert exports.csv_value(None) == ""
    assert exports.csv_value([180, 86400]) == "180 86400"
    assert exports.csv_value(datetime(2026, 3, 1, 11, tzinfo=UTC)) == "2026-03-01T11:00:00+00:00"
    assert (exports.csv_value(True), exports.csv_value(0.5), exports.csv_value(7)) == ("True", "0.5", "7")


def test_the_reports_csv_has_a_header_and_one_line_per_row():
    out = io.StringIO()
    exports.write_report_csv(
        out, [{"hoster": "a", "rate": None, "deadlines_s": [60, 120]}], ["hoster", "rate", "deadlines_s"]
    )
    assert out.getvalue() == "hoster,rate,deadlines_s\na,,60 120\n"
