"""Inserting many rows with one prepared statement (`executemany`), for the import and the demo
history.

`bulk_create` spends most of a large insert building model instances and compiling SQL for every
column in chunks (SQLite caps the parameters of one statement). One prepared INSERT with values
adapted the way the connection stores them gives the same rows several times faster. Rows are
dicts of values by attname; fields a row does not give take their model default, prepared once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC

from django.db import models, transaction


def _adapter(field: models.Field, connection) -> Callable | None:
    """How a value of `field` goes to the driver; None when it goes as it is. `get_db_prep_save`
    per value costs about ten times more on half a million rows."""
    if isinstance(field, models.DateTimeField):
        if connection.vendor == "sqlite":
            # What Django's SQLite backend stores: `str()` of the naive UTC datetime.
            return lambda value: str(value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value)
        return connection.ops.adapt_datetimefield_value
    if isinstance(
        field, models.IntegerField | models.CharField | models.TextField | models.ForeignKey | models.BooleanField
    ):
        return None  # ints, strings (TextChoices members are str) and booleans go to the driver as they are
    return lambda value: field.get_db_prep_save(value, connection)


def insert_rows(model: type[models.Model], rows: Sequence[dict[str, object]]) -> None:
    """INSERT `rows` into `model`'s table. The primary key is set only when the rows give it."""
    if not rows:
        return
    connection = transaction.get_connection()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key or f.attname in rows[0]]
    missing = object()
    specs = [(f.attname, _adapter(f, connection), f.get_db_prep_save(f.get_default(), connection)) for f in fields]
    params = []
    for row in rows:
        values = []
        for attname, adapt, default in specs:
            value = row.get(attname, missing)
            if value is missing:
                values.append(default)
            elif value is None or adapt is None:
                values.append(value)
            else:
                values.append(adapt(value))
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
