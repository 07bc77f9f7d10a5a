"""The bulk-write helpers (compliance/bulk.py): chunks, and values adapted as the connection stores them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection

from compliance import bulk
from compliance.models import Attribution, Check, Notice


def test_chunks_cut_any_iterable_in_order_and_keep_the_rest():
    assert list(bulk.chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(bulk.chunks((i for i in range(6)), 3)) == [[0, 1, 2], [3, 4, 5]]
    assert list(bulk.chunks([], 3)) == []
    assert max(len(c) for c in bulk.chunks(range(5000))) == bulk.CHUNK


@pytest.mark.django_db
def test_a_datetime_is_adapted_as_djangos_own_backend_stores_it():
    field = Check._meta.get_field("checked_at")
    adapt = bulk.adapter(field, connection)
    plus_two = timezone(timedelta(hours=2))
    for value in (datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC), datetime(2026, 3, 1, 14, 0, tzinfo=plus_two)):
        assert adapt(value) == connection.ops.adapt_datetimefield_value(value)


@pytest.mark.django_db
def test_plain_values_go_as_they_are_and_others_through_the_field():
    fields = [
        Notice._meta.get_field(name) for name in ("check_count", "status", "hoster", "is_displaced", "lease_token")
    ]
    adapters = bulk.adapters(fields, connection)
    assert adapters[:4] == [None, None, None, None]
    token = Notice._meta.get_field("lease_token")
    value = token.to_python("12345678123456781234567812345678")
    assert bulk.adapt(adapters, [3, "online", 7, False, value]) == [
        3,
        "online",
        7,
        False,
        token.get_db_prep_save(value, connection),
    ]
    assert bulk.adapt(adapters, [None] * 5) == [None] * 5


def test_a_value_rows_share_is_adapted_once_per_batch():
    calls = []

    def counting(value):
        calls.append(value)
        return f"<{value}>"

    same, other = ["a"], ["a"]
    shared: dict = {}
    rows = [bulk.adapt([counting], [v], shared) for v in (same, same, other, same)]
    assert rows == [["<['a']>"]] * 4
    assert len(calls) == 2  # `same` once, `other` (equal, not the same object) once


@pytest.mark.django_db
def test_copy_takes_json_as_text_and_times_as_they_are():
    json_field = Attribution._meta.get_field("cname_chain")
    assert bulk.adapter(json_field, connection, copy=True)(["a.example", "b.example"]) == '["a.example", "b.example"]'
    assert bulk.adapter(Attribution._meta.get_field("created_at"), connection, copy=True) is None
