"""Writing many rows with one prepared statement (`executemany`) or COPY: the one home of how a
Python value goes to the database driver in bulk, and of cutting id lists into chunks.

`bulk_create` spends most of a large insert building model instances and compiling SQL for every
column in chunks (SQLite caps the parameters of one statement). One prepared INSERT with values
adapted the way the connection stores them gives the same rows several times faster. Its users:
the import (`services.notices_insert`), the monitor's check and attribution drains (checks,
attributions, notice states) and the demo history.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC
from typing import TypeVar

from django.db import models, transaction

T = TypeVar("T")

# ids per IN (...) list, or rows per statement: below every database's parameter limit.
CHUNK = 900

# Fields whose Python values go to the driver as they are: ints, strings (TextChoices members are
# str), booleans, floats, and foreign keys' ids.
_AS_IS = (
    models.IntegerField,
    models.CharField,
    models.TextField,
    models.ForeignKey,
    models.BooleanField,
    models.FloatField,
)


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """`items` in lists of at most `size`, in order (any iterable: a generator is read once)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def adapter(field: models.Field, connection=None, *, copy: bool = False) -> Callable | None:
    """How a (non-None) value of `field` goes to the driver; None when it goes as it is.

    `copy`: for PostgreSQL's COPY, which takes aware datetimes as they are and JSON as text.
    `get_db_prep_save` per value costs about ten times more on half a million rows, so the common
    types skip it.
    """
    connection = connection or transaction.get_connection()
    if isinstance(field, models.DateTimeField):
        if copy:
            return None
        if connection.vendor == "sqlite":
            # What Django's SQLite backend stores (`adapt_datetimefield_value`): `str()` of the
            # naive UTC datetime; the same, without its per-call checks.
            return lambda value: str(value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value)
        return connection.ops.adapt_datetimefield_value
    if copy and isinstance(field, models.JSONField):
        return json.dumps  # text; COPY parses it as jsonb
    if isinstance(field, _AS_IS):
        return None
    return lambda value: field.get_db_prep_save(value, connection)


def adapters(fields: Sequence[models.Field], connection=None, *, copy: bool = False) -> list[Callable | None]:
    """`adapter` of each field, in order."""
    return [adapter(f, connection, copy=copy) for f in fields]


def adapt(adapters: Sequence[Callable | None], values: Iterable, shared: dict | None = None) -> list:
    """`values` (in the order of `adapters`) as the driver takes them.

    With `shared` (a dict the caller keeps for one batch), a value object that recurs across rows
    (the same datetime, the same JSON list) is adapted once. It is keyed by identity: the caller's
    rows keep every value alive meanwhile, so an id cannot be reused for another value.
    """
    if shared is None:
        return [v if a is None or v is None else a(v) for a, v in zip(adapters, values, strict=True)]
    out = []
    for i, (a, v) in enumerate(zip(adapters, values, strict=True)):
        if a is None or v is None:
            out.append(v)
            continue
        key = (i, id(v))
        if key not in shared:
            shared[key] = a(v)
        out.append(shared[key])
    return out


def insert_rows(model: type[models.Model], rows: Sequence[dict[str, object]]) -> None:
    """INSERT `rows` (dicts of values by attname) into `model`'s table; fields a row does not give
    take their model default, prepared once. The primary key is set only when the rows give it."""
    if not rows:
        return
    connection = transaction.get_connection()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key or f.attname in rows[0]]
    missing = object()
    specs = [(f.attname, adapter(f, connection), f.get_db_prep_save(f.get_default(), connection)) for f in fields]
    params = []
    for row in rows:
        values = []
        for attname, adapt_value, default in specs:
            value = row.get(attname, missing)
            if value is missing:
                values.append(default)
            elif value is None or adapt_value is None:
                values.append(value)
            else:
                values.append(adapt_value(value))
        params.append(values)
    insert_values(model, [f.column for f in fields], params)


def insert_values(model: type[models.Model], columns: Sequence[str], params: Iterable[Sequence]) -> None:
    """INSERT rows of values already adapted for the driver, in the order of `columns`."""
    connection = transaction.get_connection()
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    placeholders = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", params)
