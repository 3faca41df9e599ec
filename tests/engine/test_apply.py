"""Applying templates: fresh apply, re-apply, failures, resume, concurrency, no-transaction files."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connections

from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.errors import TransientError, ValidationError
from tenants.engine import connection, services
from tenants.engine.lint import template_set_read, templates_lint
from tenants.engine.selectors import schemas_status
from tenants.engine.services import (
    ApplyTarget,
    SchemaApplier,
    TemplateApplyError,
    schema_apply,
    schema_create,
    schema_drop,
    schema_lock_key,
    tenant_roles,
)
from tests.engine.support import FIXTURES, copy_fixture, ledger, new_schema_name, tables

pytestmark = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)


def test_fresh_apply_creates_every_object_and_ledger_row(pg: psycopg.Connection[Any], schema_name: str) -> None:
    schema_create(schema=schema_name)
    result = schema_apply(schema=schema_name, directory=FIXTURES / "basic", applied_by="tester")

    assert [a.version for a in result.applied] == [1, 2, 3]
    assert result.status == "applied"
    assert tables(pg, schema_name) == {"accounts", "events", "notes", "tenant_settings"}
    assert pg.execute("SELECT count(*) FROM pg_views WHERE schemaname = %s", [schema_name]).fetchone()[0] == 1
    assert (
        pg.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = %s AND p.proname = 'touch_updated_at'",
            [schema_name],
        ).fetchone()[0]
        == 1
    )
    assert pg.execute("SELECT count(*) FROM pg_policies WHERE schemaname = %s", [schema_name]).fetchone()[0] == 1
    assert pg.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal", [f'"{schema_name}".accounts']
    ).fetchall() == [("accounts_touch",)]
    indexes = {r[0] for r in pg.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", [schema_name])}
    assert {"events_account_idx", "notes_account_idx", "accounts_name_idx"} <= indexes
    # Nothing leaked into public through the search_path.
    assert "accounts" not in tables(pg, "public")

    rows = ledger(pg, schema_name)
    assert [(r["version"], r["success"], r["applied_by"]) for r in rows] == [(1, True, "tester"), (2, True, "tester"),
                                                                              (3, True, "tester")]  # fmt: skip
    for row in rows:
        data = (FIXTURES / "basic" / row["filename"]).read_bytes()
        assert row["checksum"] == hashlib.sha256(data).hexdigest()
        assert row["duration_ms"] >= 0
        assert row["applied_at"] is not None
        assert row["error"] == ""
    assert rows[0]["description"] == "core"

    # Objects belong to the tenant's NOLOGIN owner role, not to the control plane's user.
    roles = tenant_roles(schema_name)
    owners = {r[0] for r in pg.execute("SELECT tableowner FROM pg_tables WHERE schemaname = %s", [schema_name])}
    assert owners == {roles.owner}
    # ${tenant_id} became a literal: a scratch schema gets a stable UUID from its name.
    value = pg.execute(f'SELECT value FROM "{schema_name}".tenant_settings WHERE key = %s', ["tenant_id"]).fetchone()
    assert value == (services.scratch_tenant_id(schema_name),)
    assert AuditEvent.objects.filter(action="tenant_sql.apply", target_id=schema_name).count() == 1


def test_tricky_sql_is_sent_whole(pg: psycopg.Connection[Any], schema_name: str) -> None:
    schema_create(schema=schema_name)
    schema_apply(schema=schema_name, directory=FIXTURES / "basic")
    # The DO block ran; the strings with semicolons, quotes and E'' escapes arrived intact.
    row = pg.execute(f'SELECT name, note FROM "{schema_name}".accounts').fetchone()
    assert row == ("first; account", "dollar 'quoted'; text")
    default = pg.execute(
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a"
        " ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = %s::regclass AND a.attname = 'note'",
        [f'"{schema_name}".accounts'],
    ).fetchone()[0]
    assert "it''s; fine" in default
    assert "\n" in default
    # The trigger function with semicolons in its $body$ works.
    pg.execute(f"UPDATE \"{schema_name}\".accounts SET name = 'renamed' RETURNING updated_at")


def test_reapply_is_a_no_op(pg: psycopg.Connection[Any], schema_name: str) -> None:
    schema_create(schema=schema_name)
    schema_apply(schema=schema_name, directory=FIXTURES / "basic")
    before = ledger(pg, schema_name)

    again = schema_apply(schema=schema_name, directory=FIXTURES / "basic")

    assert again.status == "up_to_date"
    assert again.applied == []
    assert again.already_applied == 3
    assert ledger(pg, schema_name) == before
    assert AuditEvent.objects.filter(action="tenant_sql.apply", target_id=schema_name).count() == 1


def test_broken_file_rolls_back_whole_and_is_recorded(
    pg: psycopg.Connection[Any], schema_name: str, tmp_path: Path
) -> None:
    directory = copy_fixture("broken", tmp_path)
    schema_create(schema=schema_name)

    with pytest.raises(TemplateApplyError) as caught:
        schema_apply(schema=schema_name, directory=directory, applied_by="tester")

    assert "002_broken.pgsql failed" in caught.value.message
    assert "line 4" in caught.value.message
    # 001 stays applied; nothing of 002 is left behind, not even the statements before the failing one.
    assert tables(pg, schema_name) == {"accounts", "events", "tenant_settings"}
    rows = ledger(pg, schema_name)
    assert [(r["version"], r["success"]) for r in rows] == [(1, True), (2, False)]
    failure = rows[1]
    assert failure["sqlstate"] == "23505"
    assert "duplicate key value violates unique constraint" in failure["error"]
    assert failure["failed_statement"] == "INSERT INTO doomed VALUES (1)"
    assert failure["failed_line"] == 4
    assert failure["applied_by"] == "tester"
    event = AuditEvent.objects.get(action="tenant_sql.apply", target_id=schema_name)
    assert event.outcome == "failure"

    # A human fixes the file; a re-run resumes at 002 and the failure is no longer outstanding.
    fixed = directory / "002_broken.pgsql"
    fixed.write_text(fixed.read_text().replace("INSERT INTO doomed VALUES (1);\nCREATE", "CREATE"))
    result = schema_apply(schema=schema_name, directory=directory)
    assert [a.version for a in result.applied] == [2]
    assert {"doomed", "never_reached"} <= tables(pg, schema_name)

    status = schemas_status(schemas=[schema_name], directory=directory)[0]
    assert status.state == "up_to_date"
    assert status.last_failure is None


def test_error_position_names_the_failing_statement(
    pg: psycopg.Connection[Any], schema_name: str, tmp_path: Path
) -> None:
    directory = tmp_path / "t"
    directory.mkdir()
    (directory / "001_first.pgsql").write_text(
        "CREATE TABLE a (id bigint);\n-- x; y\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n"
        "SELECT id\n  FROM no_such_table;\nCREATE TABLE b (id bigint);\n"
    )
    schema_create(schema=schema_name)
    with pytest.raises(TemplateApplyError):
        schema_apply(schema=schema_name, directory=directory)
    failure = ledger(pg, schema_name)[0]
    assert failure["sqlstate"] == "42P01"
    assert failure["failed_statement"] == "SELECT id\n  FROM no_such_table"
    assert failure["failed_line"] == 4
    assert tables(pg, schema_name) == set()


def test_failure_inside_a_do_block_names_the_block(
    pg: psycopg.Connection[Any], schema_name: str, tmp_path: Path
) -> None:
    directory = tmp_path / "t"
    directory.mkdir()
    (directory / "001_first.pgsql").write_text(
        "CREATE TABLE a (id bigint);\nDO $$ BEGIN RAISE EXCEPTION 'stop; here'; END $$;\n"
    )
    schema_create(schema=schema_name)
    with pytest.raises(TemplateApplyError):
        schema_apply(schema=schema_name, directory=directory)
    failure = ledger(pg, schema_name)[0]
    assert failure["failed_statement"] == "DO $$ BEGIN RAISE EXCEPTION 'stop; here'; END $$"
    assert failure["failed_line"] == 2
    assert failure["error"].startswith("stop; here")


def test_two_concurrent_runs_apply_each_file_once(pg: psycopg.Connection[Any], schema_name: str) -> None:
    schema_create(schema=schema_name)
    templates = template_set_read(FIXTURES / "concurrent")
    results: list[Any] = []
    # Hold the schema's lock so that both runners are queued on it before either can start.
    pg.execute("SELECT pg_advisory_lock(%s)", [schema_lock_key(schema_name)])

    def run() -> None:
        applier = SchemaApplier(templates=templates, applied_by="racer")
        try:
            results.append(applier.apply(ApplyTarget(schema=schema_name, tenant_id="t")))
        finally:
            applier.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    waiting = 0
    for _ in range(500):  # bounded poll until both runners wait on the advisory lock
        waiting = pg.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()[0]
        if waiting == 2:
            break
        threading.Event().wait(0.01)
    assert waiting == 2
    pg.execute("SELECT pg_advisory_unlock(%s)", [schema_lock_key(schema_name)])
    for thread in threads:
        thread.join(timeout=60)

    assert all(r.ok for r in results), [r.as_dict() for r in results]
    assert sorted(v for r in results for v in (a.version for a in r.applied)) == [1, 2]
    rows = ledger(pg, schema_name)
    assert [(r["version"], r["success"]) for r in rows] == [(1, True), (2, True)]
    assert pg.execute(f'SELECT count(*) FROM "{schema_name}".counter').fetchone() == (1,)


def test_no_transaction_file_runs_statement_by_statement(
    pg: psycopg.Connection[Any], schema_name: str, tmp_path: Path
) -> None:
    directory = copy_fixture("basic", tmp_path)
    (directory / "003_index_concurrently.pgsql").write_text(
        "-- tenant_sql: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS n1 ON notes (account_id);\n"
        "CREATE INDEX CONCURRENTLY n2 ON no_such_table (x);\n"
    )
    schema_create(schema=schema_name)
    with pytest.raises(TemplateApplyError):
        schema_apply(schema=schema_name, directory=directory)
    rows = ledger(pg, schema_name)
    assert [(r["version"], r["success"]) for r in rows] == [(1, True), (2, True), (3, False)]
    assert rows[2]["failed_statement"] == "CREATE INDEX CONCURRENTLY n2 ON no_such_table (x)"
    assert rows[2]["failed_line"] == 3
    # Statements before the failing one stay (documented), and the session is reset for the next schema.
    indexes = {r[0] for r in pg.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", [schema_name])}
    assert "n1" in indexes
    assert pg.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone() == (0,)


def test_apply_refuses_a_missing_schema_or_drift(schema_name: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        schema_apply(schema=schema_name, directory=FIXTURES / "basic")
    directory = copy_fixture("basic", tmp_path)
    schema_create(schema=schema_name)
    schema_apply(schema=schema_name, directory=directory)
    (directory / "001_core.pgsql").write_text((directory / "001_core.pgsql").read_text() + "\n-- edited\n")
    (directory / "004_more.pgsql").write_text("CREATE TABLE more (id bigint);\n")
    with pytest.raises(ValidationError, match="Checksum drift"):
        schema_apply(schema=schema_name, directory=directory)


def test_apply_refuses_unknown_placeholder_before_any_sql(
    schema_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "t"
    directory.mkdir()
    (directory / "001_first.pgsql").write_text("GRANT USAGE ON SCHEMA x TO ${reader_role};\n")
    monkeypatch.setattr(connection, "engine_connect", _no_sql)
    monkeypatch.setattr(connection, "migrator_connect", _no_sql)
    with pytest.raises(ValidationError, match="unknown placeholder"):
        schema_apply(schema=schema_name, directory=directory)


def _no_sql() -> None:
    raise AssertionError("no connection may be opened for this input")


@pytest.mark.parametrize("bad", ['x"; DROP TABLE y; --', "Upper", "pg_temp1", "public", "ab", "1abc", "a" * 64])
def test_invalid_schema_name_is_refused_before_any_sql(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection, "engine_connect", _no_sql)
    monkeypatch.setattr(connection, "migrator_connect", _no_sql)
    for call in (
        lambda: schema_create(schema=bad),
        lambda: schema_apply(schema=bad, directory=FIXTURES / "basic"),
        lambda: schema_drop(schema=bad),
        lambda: tenant_roles(bad),
    ):
        with pytest.raises(ValidationError) as caught:
            call()
        assert caught.value.code == "invalid_schema_name"


def test_lost_connection_is_transient(schema_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    params = connections[settings.TENANT_DB_ALIAS].settings_dict
    monkeypatch.setitem(params, "PORT", 1)  # nothing listens there
    with pytest.raises(TransientError):
        schema_create(schema=schema_name)


def test_connections_are_recycled(schema_name: str) -> None:
    schemas = [new_schema_name() for _ in range(5)]
    for schema in schemas:
        schema_create(schema=schema)
    applier = SchemaApplier(templates=template_set_read(FIXTURES / "basic"), applied_by="t", recycle_every=2)
    try:
        results = [applier.apply(ApplyTarget(schema=s, tenant_id="t")) for s in schemas]
    finally:
        applier.close()
    assert all(r.status == "applied" for r in results)
    assert applier.connections_opened == 3


def test_project_templates_lint_clean_and_apply_once(pg: psycopg.Connection[Any], schema_name: str) -> None:
    directory = Path(settings.TENANT_TEMPLATES_DIR)
    linted = templates_lint(directory)
    assert [str(p) for p in linted.problems] == []
    assert [t.version for t in linted.templates] == list(range(1, len(linted.templates) + 1))
    schema_create(schema=schema_name)
    result = schema_apply(schema=schema_name)  # the default directory, as provisioning calls it
    assert [a.version for a in result.applied] == [t.version for t in linted.templates]
    assert "crm_users" in tables(pg, schema_name)
    assert schema_apply(schema=schema_name).status == "up_to_date"


def test_connection_lost_mid_file_is_transient_and_the_next_schema_carries_on(
    pg: psycopg.Connection[Any], tmp_path: Path
) -> None:
    directory = tmp_path / "t"
    directory.mkdir()
    # The file waits on a lock the test holds, so the test can end its connection while it runs.
    (directory / "001_wait.pgsql").write_text("CREATE TABLE a (id bigint);\nSELECT pg_advisory_xact_lock(4242);\n")
    first, second = new_schema_name(), new_schema_name()
    for schema in (first, second):
        schema_create(schema=schema)
    pg.execute("SELECT pg_advisory_lock(4242)")
    results: list[Any] = []
    applier = SchemaApplier(templates=template_set_read(directory), applied_by="t")

    def run() -> None:
        results.append(applier.apply(ApplyTarget(schema=first, tenant_id="t")))

    thread = threading.Thread(target=run)
    thread.start()
    pid = None
    for _ in range(500):  # bounded poll until the file waits on the test's lock
        row = pg.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted"
        ).fetchone()
        if row:
            pid = row[0]
            break
        threading.Event().wait(0.01)
    assert pid is not None
    pg.execute("SELECT pg_terminate_backend(%s)", [pid])
    thread.join(timeout=60)
    pg.execute("SELECT pg_advisory_unlock(4242)")

    (lost,) = results
    assert lost.transient
    assert "connection was lost" in lost.error
    assert lost.failed is None
    assert tables(pg, first) == set()
    assert ledger(pg, first) == []
    # The same worker reconnects for the next schema.
    carried_on = applier.apply(ApplyTarget(schema=second, tenant_id="t"))
    applier.close()
    assert carried_on.status == "applied"
    assert applier.connections_opened == 2
