"""A back-up restored with pg_dump and psql still verifies (docs/operations.md, "Back-ups").

The test database's evidence (committed: a transactional test) is dumped with `pg_dump`, loaded
into a database of its own with `psql`, and `verify_evidence` runs against the copy in a process
of its own: every chain, head and the digest must hold there; and the copy keeps its triggers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from monitor.evidence_digest import record_digest
from tests.compliance.test_evidence import _check, _notice

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_database_restored_from_pg_dump_still_verifies(prompt_hoster, analyst, settings, tmp_path):
    for tool in ("pg_dump", "psql"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed (the PostgreSQL client)")
    settings.EVIDENCE_TSA_URL = ""
    for n in range(3):
        notice = _notice(prompt_hoster, n)
        for minutes in range(4):
            _check(notice, minutes)
    from compliance.audit import audit_record

    audit_record(actor=analyst, action="test", notice=notice)
    record_digest()

    params = connection.settings_dict
    source = params["NAME"]
    target = f"{source}_restore"
    host = params.get("HOST") or "127.0.0.1"
    port = str(params.get("PORT") or 5432)
    user = params.get("USER") or "postgres"
    env = {**os.environ, "PGPASSWORD": params.get("PASSWORD") or ""}
    admin = psycopg.connect(host=host, port=port, user=user, dbname="postgres", autocommit=True)
    try:
        admin.execute(f'DROP DATABASE IF EXISTS "{target}"')
        admin.execute(f'CREATE DATABASE "{target}"')
        dump = tmp_path / "monitor.sql"
        common = ["-h", host, "-p", port, "-U", user]
        subprocess.run(["pg_dump", *common, "-f", str(dump), source], check=True, env=env)
        subprocess.run(
            ["psql", *common, "-q", "-v", "ON_ERROR_STOP=1", "-d", target, "-f", str(dump)],
            check=True,
            env=env,
            capture_output=True,
        )
        url = f"postgres://{user}@{host}:{port}/{target}"
        result = subprocess.run(
            [sys.executable, "manage.py", "verify_evidence"],
            cwd=ROOT,
            env={**env, "DATABASE_URL": url, "DEBUG": "on", "TEST_DATABASE_NAME": ""},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["chains"]["checks"] == {"rows": 12, "chains": 3, "broken": 0}
        assert summary["digest"]["matches"] is True
        with psycopg.connect(url) as copy:
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                copy.execute("DELETE FROM monitor_check")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        admin.close()
