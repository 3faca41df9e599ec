"""Every file runs with lock_timeout and statement_timeout; a lock timeout is a retryable outcome, not a failure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ghostcrm.audit.services import Actor
from ghostcrm.core.services import system_setting_set
from tenants.engine.schemas import schema_create
from tests.engine.support import ledger, new_schema_name, register_tenant, tenant_sql, write_templates
from tests.support import tenant_conninfo

pytestmark = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)

RECORD = (
    "CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS l, current_setting('statement_timeout') AS s;\n"
)


def test_each_file_runs_with_the_default_timeouts_or_its_headers(pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    directory = write_templates(
        tmp_path / "t",
        {
            "001_defaults.pgsql": RECORD,
            "002_headers.pgsql": "-- tenant_sql: lock_timeout=2s\n-- tenant_sql: statement_timeout=1min\n"
            + RECORD.replace("seen", "seen_again"),
        },
    )
    schema = new_schema_name()

    run = tenant_sql("apply", "--schema", schema, "--create-schema", "--dir", str(directory))

    assert run.code == 0, run.err
    ident = sql.Identifier(schema)
    assert pg.execute(sql.SQL("SELECT l, s FROM {}.seen").format(ident)).fetchone() == ("5s", "10min")
    assert pg.execute(sql.SQL("SELECT l, s FROM {}.seen_again").format(ident)).fetchone() == ("2s", "1min")


def test_the_defaults_are_system_settings(pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    system_setting_set(key="tenant_sql.lock_timeout_ms", value="750", actor=Actor.system("test"))
    directory = write_templates(tmp_path / "t", {"001_defaults.pgsql": RECORD})
    schema = new_schema_name()

    assert tenant_sql("apply", "--schema", schema, "--create-schema", "--dir", str(directory)).code == 0

    assert pg.execute(sql.SQL("SELECT l FROM {}.seen").format(sql.Identifier(schema))).fetchone() == ("750ms",)


def test_a_locked_schema_times_out_and_the_others_finish(pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    directory = write_templates(tmp_path / "t", {"001_notes.pgsql": "CREATE TABLE notes (id bigint PRIMARY KEY);\n"})
    schemas = sorted(new_schema_name() for _ in range(3))
    for schema in schemas:
        schema_create(schema=schema)
        register_tenant(schema)
    assert tenant_sql("apply", "--tenants", ",".join(schemas), "--dir", str(directory)).code == 0
    (directory / "002_extra.pgsql").write_text(
        "-- tenant_sql: lock_timeout=200ms\nALTER TABLE notes ADD COLUMN extra text;\n"
    )
    locked = schemas[1]
    holder = psycopg.connect(**{**tenant_conninfo(), "autocommit": False}, application_name="lock holder")
    try:
        holder.execute(sql.SQL("SELECT * FROM {}.notes").format(sql.Identifier(locked)))  # ACCESS SHARE, kept open

        run = tenant_sql("apply", "--tenants", ",".join(schemas), "--dir", str(directory), "--json")

        # The command came back while the lock is still held: nobody waited for the holder.
        assert holder.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        holder_pid = holder.info.backend_pid
    finally:
        holder.rollback()
        holder.close()

    assert run.code == 3, run.err
    data = json.loads(run.out)
    assert data["summary"]["applied"] == 2
    assert data["summary"]["lock_timeout"] == 1
    assert data["summary"]["failed"] == 0
    by_schema = {entry["schema"]: entry for entry in data["schemas"]}
    timed_out = by_schema[locked]
    assert timed_out["status"] == "lock_timeout"
    assert timed_out["failed"] is None
    assert timed_out["lock_timeout"]["filename"] == "002_extra.pgsql"
    assert timed_out["lock_timeout"]["lock_timeout"] == "200ms"
    assert timed_out["lock_timeout"]["blocker_pid"] == holder_pid
    assert timed_out["lock_timeout"]["blocker_application"] == "lock holder"
    assert timed_out["lock_timeout"]["blocker_age_s"] >= 0
    assert timed_out["duration_ms"] < 10_000  # bounded by the 200 ms lock timeout, not by the holder
    for schema in (schemas[0], schemas[2]):
        assert [r["version"] for r in ledger(pg, schema)] == [1, 2]
    assert [(r["version"], r["success"]) for r in ledger(pg, locked)] == [(1, True)]  # no failure recorded

    again = tenant_sql("apply", "--tenants", ",".join(schemas), "--dir", str(directory))
    assert again.code == 0, again.err
    assert [r["version"] for r in ledger(pg, locked)] == [1, 2]
