"""An older database with evidence upgrades: the migrations that add the evidence chains chain the
existing checks (an UPDATE of each) before the append-only triggers refuse updates. (On SQLite the test
suite may maintain evidence, so PostgreSQL is where this test bites.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from compliance import triggers

BEFORE_CHAINS = [("compliance", "0010_notice_updated_index"), ("monitor", "0007_outcome_no_evidence")]


def _drop_triggers() -> None:
    """What a database from before the chains looks like: no append-only triggers."""
    with connection.cursor() as cursor:
        for table in triggers.TABLES:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_database_with_checks_upgrades_through_the_evidence_chains():
    _drop_triggers()
    executor = MigrationExecutor(connection)
    try:
        executor.migrate(BEFORE_CHAINS)
        _upgrade_with_checks(executor)
    finally:
        call_command("migrate", verbosity=0)  # whatever happened, the next tests find the latest state


def _upgrade_with_checks(executor) -> None:
    old = executor.loader.project_state(BEFORE_CHAINS).apps
    Notice, Check = old.get_model("compliance", "Notice"), old.get_model("monitor", "Check")
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    notice = Notice.objects.create(
        url="http://old.example/a.jpg", scheme="http", host="old.example", path="/a.jpg", received_at=t0,
        notified_at=t0, deadline_s=86400, deadline_at=t0, settles_at=t0,
    )  # fmt: skip
    for minute in range(3):
        Check.objects.create(notice_id=notice.pk, checked_at=t0.replace(minute=minute), outcome="online")

    call_command("migrate", verbosity=0)  # to the latest state, chains and triggers included

    from compliance import evidence
    from monitor.models import Check as LiveCheck

    rows = list(LiveCheck.objects.filter(notice_id=notice.pk).order_by("id"))
    assert len(rows) == 3 and all(r.chain_hash for r in rows)
    report = evidence.verify(LiveCheck.evidence_chain)
    assert report.rows == 3 and report.broken == 0
    with pytest.raises(Exception, match="append-only"), connection.cursor() as cursor:
        cursor.execute("UPDATE monitor_check SET reason = 'x' WHERE id = %s", [rows[0].pk])
