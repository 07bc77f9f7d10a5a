"""Append-only in the database: triggers that refuse UPDATE and DELETE on the evidence tables,
whoever sends them (the ORM, raw SQL, a psql session).

Plain SQL per vendor, not django-pgtrigger: that library is PostgreSQL-only, so SQLite's half
would be hand-written anyway, and its main addition, `pgtrigger.ignore()` (a bypass any session can
switch on), is what these triggers must not have. One module keeps both vendors' rules side by side.

- **PostgreSQL**: one trigger function, `evidence_append_only()`, BEFORE UPDATE OR DELETE FOR EACH
  ROW. Its arguments name foreign-key columns that may be set to NULL and nothing else (the audit
  trail's actor and hoster: Django's SET_NULL when a user or hoster is deleted). TRUNCATE fires no
  row trigger: the test suite's flush uses it; production roles should not hold TRUNCATE on these
  tables (docs/operations.md).
- **SQLite**: BEFORE UPDATE / BEFORE DELETE triggers that RAISE(ABORT) unless the SQL function
  `evidence_maintenance()` says 1. The application registers that function on each of its own
  connections (compliance/apps.py) and it answers 0 unless `maintenance()` is active on that
  connection; any other SQLite client has no such function, so its UPDATE or DELETE fails too.
  Only the test suite's flush after a transactional test uses `maintenance()` (tests/conftest.py):
  SQLite has no TRUNCATE, and Django's flush is a `DELETE FROM` of every table.

`install()` is idempotent. It runs in the migrations that introduced the triggers and again after
every `migrate` (post_migrate, compliance/apps.py): on SQLite, Django rebuilds a table for many
schema changes, and the rebuilt table would otherwise come without its triggers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from django.db import connections

# table -> foreign-key columns that may only ever be set to NULL (SET_NULL on delete).
TABLES: dict[str, tuple[str, ...]] = {
    "monitor_check": (),
    "monitor_attribution": (),
    "monitor_rdaprecord": (),
    "compliance_deliveryevent": (),
    "compliance_auditevent": ("actor_id", "hoster_id"),
}

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION evidence_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    col text;
BEGIN
    IF TG_OP = 'UPDATE' AND TG_NARGS > 0 THEN
        old_row := to_jsonb(OLD);
        new_row := to_jsonb(NEW);
        FOR i IN 0 .. TG_NARGS - 1 LOOP
            col := TG_ARGV[i];
            IF (new_row -> col) <> 'null'::jsonb AND (new_row -> col) IS DISTINCT FROM (old_row -> col) THEN
                EXIT;  -- set to another value: refused below
            END IF;
            old_row := old_row - col;
            new_row := new_row - col;
        END LOOP;
        IF old_row = new_row THEN
            RETURN NEW;  -- only the listed foreign keys became NULL
        END IF;
    END IF;
    RAISE EXCEPTION '% rows are append-only: % refused', TG_TABLE_NAME, TG_OP
        USING HINT = 'evidence is never changed or deleted (compliance/triggers.py)';
END
$$;
"""


def _pg_sql(table: str, nullable: tuple[str, ...]) -> list[str]:
    args = ", ".join(f"'{c}'" for c in nullable)
    name = f"{table}_append_only"
    return [
        f"DROP TRIGGER IF EXISTS {name} ON {table}",
        f"CREATE TRIGGER {name} BEFORE UPDATE OR DELETE ON {table}"
        f" FOR EACH ROW EXECUTE FUNCTION evidence_append_only({args})",
    ]


def _sqlite_sql(table: str, nullable: tuple[str, ...], columns: list[str]) -> list[str]:
    refuse = "SELECT RAISE(ABORT, '{table} rows are append-only: {op} refused');"
    allowed = ""
    if nullable:
        # Only the listed foreign keys changed, and only to NULL.
        same = " AND ".join(f'NEW."{c}" IS OLD."{c}"' for c in columns if c not in nullable)
        to_null = " AND ".join(f'(NEW."{c}" IS NULL OR NEW."{c}" IS OLD."{c}")' for c in nullable)
        allowed = f" AND NOT ({same} AND {to_null})"
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_update",
        f"DROP TRIGGER IF EXISTS {table}_no_delete",
        f'CREATE TRIGGER {table}_no_update BEFORE UPDATE ON "{table}" WHEN NOT evidence_maintenance(){allowed}'
        f" BEGIN {refuse.format(table=table, op='UPDATE')} END",
        f'CREATE TRIGGER {table}_no_delete BEFORE DELETE ON "{table}" WHEN NOT evidence_maintenance()'
        f" BEGIN {refuse.format(table=table, op='DELETE')} END",
    ]


def install(connection, tables: Iterable[str] | None = None) -> None:
    """Create (or re-create) the triggers of every evidence table that exists (or of `tables` only:
    a migration that still has to chain another table's existing rows leaves that one for later)."""
    existing = set(connection.introspection.table_names())
    wanted = set(TABLES) if tables is None else set(tables)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_FUNCTION)
        for table, nullable in TABLES.items():
            if table not in existing or table not in wanted:
                continue
            if connection.vendor == "postgresql":
                statements = _pg_sql(table, nullable)
            elif connection.vendor == "sqlite":
                columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
                statements = _sqlite_sql(table, nullable, columns)
            else:
                continue  # other databases: the ORM's guard and the hash chains only
            for sql in statements:
                cursor.execute(sql)


def drop(connection, tables: Iterable[str]) -> None:
    """Remove the triggers of `tables` (a migration about to chain their existing rows; `install`
    puts them back)."""
    with connection.cursor() as cursor:
        for table in tables:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            elif connection.vendor == "sqlite":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


def install_all(**kwargs) -> None:
    """post_migrate: re-install on the database just migrated."""
    install(connections[kwargs.get("using", "default")])


def register_sqlite_function(sender, connection, **kwargs) -> None:
    """connection_created: give the application's SQLite connections `evidence_maintenance()`."""
    if connection.vendor != "sqlite":
        return
    connection.connection.create_function(
        "evidence_maintenance", 0, lambda: int(getattr(connection, "evidence_maintenance", False)), deterministic=False
    )


@contextlib.contextmanager
def maintenance(*aliases: str) -> Iterator[None]:
    """Let this process's SQLite connections delete evidence rows (the test suite's flush only).

    PostgreSQL has no such switch: its flush is TRUNCATE, which row triggers don't see.
    """
    wrappers = [connections[a] for a in (aliases or connections)]
    for w in wrappers:
        w.evidence_maintenance = True
    try:
        yield
    finally:
        for w in wrappers:
            w.evidence_maintenance = False
