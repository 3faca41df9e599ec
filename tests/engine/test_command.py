"""`manage.py tenant_sql`: status, plan, apply, validate, repair; JSON shapes and exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext

from ghostcrm.audit.models import AuditEvent
from tenants.engine import connection
from tenants.engine.results import TemplateApplyError
from tenants.engine.selectors import schemas_status
from tenants.engine.services import schema_apply, schema_create, schema_drop, tenant_roles
from tests.engine.support import FIXTURES, copy_fixture, ledger, new_schema_name, register_tenant, tables, tenant_sql

pytestmark = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def test_apply_create_schema_then_json_status(pg: psycopg.Connection[Any], schema_name: str) -> None:
    run = tenant_sql("apply", "--schema", schema_name, "--create-schema", "--dir", str(FIXTURES / "basic"), "--json")
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert set(data) == {"directory", "jobs", "duration_ms", "summary", "schemas"}
    assert data["summary"] == {
        "schemas": 1,
        "applied": 1,
        "up_to_date": 0,
        "failed": 0,
        "lock_timeout": 0,
        "files_applied": 3,
    }
    (entry,) = data["schemas"]
    assert entry["schema"] == schema_name
    assert entry["status"] == "applied"
    assert entry["failed"] is None
    assert [a["version"] for a in entry["applied"]] == [1, 2, 3]
    assert set(entry["applied"][0]) == {"version", "filename", "duration_ms"}
    assert AuditEvent.objects.filter(action="tenant_sql.schema_create", target_id=schema_name).exists()
    assert AuditEvent.objects.filter(action="tenant_sql.rollout").count() == 1

    status = tenant_sql("status", "--schema", schema_name, "--dir", str(FIXTURES / "basic"), "--json")
    assert status.code == 0
    (row,) = json.loads(status.out)
    assert row["state"] == "up_to_date"
    assert row["applied"] == [1, 2, 3]
    assert row["pending"] == []
    assert row["registered"] is False
    assert row["last_failure"] is None

    again = tenant_sql("apply", "--schema", schema_name, "--create-schema", "--dir", str(FIXTURES / "basic"))
    assert again.code == 0
    assert f"{schema_name}: up to date" in again.out
    assert "1 up to date, 0 failed" in again.out


def test_apply_failure_exits_1_and_other_tenants_carry_on(pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    directory = copy_fixture("basic", tmp_path)
    good, bad = new_schema_name(), new_schema_name()
    for schema in (good, bad):
        schema_create(schema=schema)
        register_tenant(schema)
    # Make 002 fail in one tenant only: that tenant already has a table named notes.
    pg.execute(f'CREATE TABLE "{bad}".notes (id bigint)')

    run = tenant_sql("apply", "--tenants", f"{bad},{good}", "--dir", str(directory), "--jobs", "2")

    assert run.code == 1
    assert f'{bad}: FAILED 002_notes.pgsql line 3: relation "notes" already exists' in run.out
    assert f"{good}: applied 001_core.pgsql" in run.out
    assert "2 schema(s)" in run.out
    assert "1 failed" in run.out
    assert [r["version"] for r in ledger(pg, good) if r["success"]] == [1, 2, 3]
    assert [(r["version"], r["success"]) for r in ledger(pg, bad)] == [(1, True), (2, False)]
    assert "website" not in {  # 002's first statement was rolled back with the rest of the file
        r[0] for r in pg.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'accounts'",
            [bad],
        )
    }  # fmt: skip

    status = tenant_sql("status", "--all", "--dir", str(directory))
    assert f"{bad}: failed" in status.out
    assert "last failure: 002_notes.pgsql line 3" in status.out

    # The operator fixes the tenant, re-runs: it resumes at 002; then repair clears nothing left over.
    pg.execute(f'DROP TABLE "{bad}".notes')
    assert tenant_sql("apply", "--all", "--dir", str(directory)).code == 0
    assert [r["version"] for r in ledger(pg, bad) if r["success"]] == [1, 2, 3]


def test_usage_errors_exit_2(schema_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sql() -> None:
        raise AssertionError("no SQL may run for a usage error")

    monkeypatch.setattr(connection, "engine_connect", no_sql)
    monkeypatch.setattr(connection, "migrator_connect", no_sql)
    unregistered = tenant_sql("apply", "--schema", schema_name, "--dir", str(FIXTURES / "basic"))
    assert unregistered.code == 2
    assert "--create-schema" in unregistered.err
    invalid = tenant_sql("apply", "--schema", "Bad-Name", "--create-schema", "--dir", str(FIXTURES / "basic"))
    assert invalid.code == 2
    assert "not a valid schema name" in invalid.err
    assert tenant_sql("apply", "--all", "--create-schema").code == 2
    assert tenant_sql("apply", "--schema", schema_name, "--jobs", "0").code == 2
    assert tenant_sql("plan", "--schema", "pg_catalog").code == 2


def test_exit_codes_from_the_shell() -> None:
    """argparse's own usage errors (no target for apply) exit 2 from the command line."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ghostcrm.settings"}
    run = subprocess.run(
        [sys.executable, "manage.py", "tenant_sql", "apply", "--dir", str(FIXTURES / "basic")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert "one of the arguments --schema --tenants --all is required" in run.stderr


def data_queries(context: CaptureQueriesContext) -> list[str]:
    """The queries run, less django-tenants' own `SET search_path` when a cursor is first opened."""
    return [q["sql"] for q in context.captured_queries if not q["sql"].startswith("SET search_path")]


def test_status_over_all_tenants_is_one_query(pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    directory = copy_fixture("broken", tmp_path)
    schemas = [new_schema_name() for _ in range(4)]
    for schema in schemas:
        schema_create(schema=schema)
        register_tenant(schema)
    for schema in schemas[:2]:
        with pytest.raises(TemplateApplyError, match="failed in schema"):
            schema_apply(schema=schema, directory=directory)

    tenant_connection = connections[settings.TENANT_DB_ALIAS]
    with CaptureQueriesContext(tenant_connection) as few:
        statuses = schemas_status(directory=directory)
    assert len(data_queries(few)) == 1
    by_schema = {s.schema: s for s in statuses}
    assert set(by_schema) == set(schemas)
    assert by_schema[schemas[0]].state == "failed"
    assert by_schema[schemas[0]].applied == [1]
    assert by_schema[schemas[0]].last_failure["statement"] == "INSERT INTO doomed VALUES (1)"
    assert by_schema[schemas[3]].state == "pending"
    assert by_schema[schemas[3]].pending == [1, 2]

    more = [new_schema_name() for _ in range(6)]
    for schema in more:
        register_tenant(schema)
    with CaptureQueriesContext(tenant_connection) as many:
        assert len(schemas_status(directory=directory)) == 10
    assert len(data_queries(many)) == 1

    run = tenant_sql("status", "--all", "--json", "--dir", str(directory))
    rows = json.loads(run.out)
    assert len(rows) == 10
    assert set(rows[0]) == {"schema", "registered", "state", "applied", "pending", "drift", "unknown", "missing",
                            "last_failure", "last_applied_at"}  # fmt: skip


def test_parallel_jobs_apply_to_every_tenant(pg: psycopg.Connection[Any]) -> None:
    schemas = [new_schema_name() for _ in range(6)]
    for schema in schemas:
        schema_create(schema=schema)
        register_tenant(schema)
    run = tenant_sql("apply", "--all", "--jobs", "3", "--dir", str(FIXTURES / "basic"), "--json")
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert data["jobs"] == 3
    assert data["summary"]["applied"] == 6
    assert data["summary"]["files_applied"] == 18
    assert [s["schema"] for s in data["schemas"]] == sorted(schemas)
    for schema in schemas:
        assert [r["version"] for r in ledger(pg, schema) if r["success"]] == [1, 2, 3]
        assert "notes" in tables(pg, schema)


def test_plan_shows_pending_sql_and_changes_nothing(pg: psycopg.Connection[Any], schema_name: str) -> None:
    schema_create(schema=schema_name)
    roles = tenant_roles(schema_name)
    run = tenant_sql("plan", "--schema", schema_name, "--dir", str(FIXTURES / "basic"))
    assert run.code == 0
    assert run.out.index("-- 001_core.pgsql") < run.out.index("-- 002_notes.pgsql") < run.out.index("-- 003_")
    assert f'TO "{roles.app}"' in run.out
    assert "${app_role}" not in run.out
    assert "no transaction, statement by statement" in run.out
    assert tables(pg, schema_name) == set()
    assert ledger(pg, schema_name) == []

    data = json.loads(tenant_sql("plan", "--schema", schema_name, "--dir", str(FIXTURES / "basic"), "--json").out)
    assert [f["version"] for f in data["files"]] == [1, 2, 3]
    assert data["files"][2]["transaction"] is False


def test_validate_catches_changed_and_unknown_files_and_repair_fixes(
    pg: psycopg.Connection[Any], schema_name: str, tmp_path: Path
) -> None:
    directory = copy_fixture("basic", tmp_path)
    schema_create(schema=schema_name)
    schema_apply(schema=schema_name, directory=directory)
    assert tenant_sql("validate", "--schema", schema_name, "--dir", str(directory)).code == 0

    core = directory / "001_core.pgsql"
    core.write_text(core.read_text().replace("-- A dollar-quoted body", "-- An edited comment"))
    (directory / "003_index_concurrently.pgsql").unlink()
    run = tenant_sql("validate", "--schema", schema_name, "--dir", str(directory))
    assert run.code == 1
    assert f"{schema_name}: checksum drift in 001; applied but not on disk: 003" in run.out
    data = json.loads(tenant_sql("validate", "--schema", schema_name, "--dir", str(directory), "--json").out)
    assert data == {"schemas": 1, "invalid": [{"schema": schema_name, "drift": [1], "unknown": [3], "missing": []}]}

    repaired = tenant_sql("repair", "--schema", schema_name, "--dir", str(directory))
    assert repaired.code == 0
    assert "1 checksum(s) updated" in repaired.out
    event = AuditEvent.objects.get(action="tenant_sql.repair", target_id=schema_name)
    assert event.after == {"checksums": {"1": ledger(pg, schema_name)[0]["checksum"]}}
    # The checksum now matches; the removed file stays reported until it is restored.
    again = tenant_sql("validate", "--schema", schema_name, "--dir", str(directory))
    assert again.code == 1
    assert "checksum drift" not in again.out
    assert "applied but not on disk: 003" in again.out


def test_repair_clears_an_outstanding_failure(pg: psycopg.Connection[Any], schema_name: str, tmp_path: Path) -> None:
    directory = copy_fixture("broken", tmp_path)
    schema_create(schema=schema_name)
    with pytest.raises(TemplateApplyError, match="failed in schema"):
        schema_apply(schema=schema_name, directory=directory)
    assert schemas_status(schemas=[schema_name], directory=directory)[0].state == "failed"
    run = tenant_sql("repair", "--schema", schema_name, "--dir", str(directory), "--json")
    data = json.loads(run.out)
    assert [f["version"] for f in data["failures_cleared"]] == [2]
    assert data["checksums_updated"] == []
    assert [r["success"] for r in ledger(pg, schema_name)] == [True]
    assert schemas_status(schemas=[schema_name], directory=directory)[0].state == "pending"


def test_schema_create_roles_and_isolation(pg: psycopg.Connection[Any]) -> None:
    a, b = new_schema_name(), new_schema_name()
    for schema in (a, b):
        schema_create(schema=schema, app_password="s3cret-pass")
        schema_create(schema=schema)  # idempotent
        schema_apply(schema=schema, directory=FIXTURES / "basic")
    roles_a = tenant_roles(a)
    found = pg.execute(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
        [[roles_a.owner, roles_a.app]],
    ).fetchall()
    assert found == [(roles_a.app, True), (roles_a.owner, False)]
    assert pg.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s", [a]).fetchone() == (
        roles_a.owner,
    )
    assert AuditEvent.objects.filter(action="tenant_sql.schema_create", target_id=a).count() == 1

    pg.execute("BEGIN")
    pg.execute(f'SET LOCAL ROLE "{roles_a.app}"')
    pg.execute("SET LOCAL app.role = 'admin'")
    assert pg.execute(f'SELECT count(*) FROM "{a}".accounts').fetchone() == (1,)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg.execute(f'SELECT count(*) FROM "{b}".accounts')
    pg.execute("ROLLBACK")
    pg.execute("BEGIN")
    pg.execute(f'SET LOCAL ROLE "{roles_a.app}"')
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        pg.execute(f'CREATE TABLE "{a}".sneaky (id bigint)')
    pg.execute("ROLLBACK")


def test_role_names_are_short_and_deterministic() -> None:
    long_name = "a" * 63
    roles = tenant_roles(long_name)
    assert len(roles.owner) <= 63
    assert len(roles.app) <= 63
    assert roles == tenant_roles(long_name)
    assert roles.owner.startswith(settings.TENANT_ROLE_PREFIX + "_")
    assert roles.owner.endswith("_own")
    assert tenant_roles("a" * 62 + "b") != roles  # the hash keeps truncated names apart


def test_schema_drop_removes_schema_roles_and_ledger(pg: psycopg.Connection[Any], schema_name: str) -> None:
    schema_create(schema=schema_name)
    schema_apply(schema=schema_name, directory=FIXTURES / "basic")
    schema_drop(schema=schema_name)
    roles = tenant_roles(schema_name)
    assert pg.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [schema_name]).fetchone() == (0,)
    assert pg.execute(
        "SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", [[roles.owner, roles.app]]
    ).fetchone() == (0,)
    assert ledger(pg, schema_name) == []
    schema_drop(schema=schema_name)  # idempotent, and a second drop changes nothing to audit
    assert AuditEvent.objects.filter(action="tenant_sql.schema_drop", target_id=schema_name).count() == 1


def test_schema_create_again_leaves_a_disabled_app_role_disabled(pg: psycopg.Connection[Any], schema_name: str) -> None:
    schema_create(schema=schema_name)
    roles = tenant_roles(schema_name)
    pg.execute(f'ALTER ROLE "{roles.app}" NOLOGIN')  # a suspended tenant
    schema_create(schema=schema_name)
    assert pg.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [roles.app]).fetchone() == (False,)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal(schema_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = _Terminal()
    call_command(
        "tenant_sql", "apply", "--schema", schema_name, "--create-schema", "--dir", str(FIXTURES / "basic"), stdout=out
    )
    err = capsys.readouterr().err
    assert "1/1" in err
    assert "schema" in err
    assert f"{schema_name}: applied" not in out.getvalue()  # no per-schema lines under a bar
    assert "1 applied (3 file(s))" in out.getvalue()


def test_validate_reports_a_skipped_version(pg: psycopg.Connection[Any], schema_name: str) -> None:
    schema_create(schema=schema_name)
    schema_apply(schema=schema_name, directory=FIXTURES / "basic")
    pg.execute("DELETE FROM public.tenant_sql_ledger WHERE schema_name = %s AND version = 2", [schema_name])
    run = tenant_sql("validate", "--all", "--dir", str(FIXTURES / "basic"))  # not registered: --all skips it
    assert run.code == 0
    assert "0 schema(s) match" in run.out
    run = tenant_sql("validate", "--schema", schema_name, "--dir", str(FIXTURES / "basic"))
    assert run.code == 1
    assert "skipped (a later version is applied): 002" in run.out
    status = schemas_status(schemas=[schema_name], directory=FIXTURES / "basic")[0]
    assert status.state == "drift"
    assert status.missing == [2]
    assert status.pending == [2]
