"""Hostile templates (issue 10, section 1): each ends with nothing outside the tenant's schema changed.

Two layers are tested separately. ``tenant_sql apply`` refuses each file because lint flags it; and when a
file gets past lint (``SchemaApplier`` is driven directly, as if lint missed it), the database refuses it
because the session that runs template text is the least-privileged migrator login. Assertions are on the
database state (roles, tables, files, the ledger), never on messages alone.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tenants.engine.apply import SchemaApplier
from tenants.engine.naming import migrator_role, tenant_roles
from tenants.engine.results import ApplyResult, ApplyTarget
from tenants.engine.schemas import schema_create
from tenants.engine.templates import template_set_read
from tests.engine.support import ledger, new_schema_name, tables, tenant_sql, write_templates

pytestmark = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)

# The database server runs on this machine in tests: a file its COPY ... PROGRAM wrote would be seen here.
PROGRAM_FILE = Path(tempfile.gettempdir()) / f"ghostcrm_tenant_sql_attack_{uuid.uuid4().hex}"
TABLE = "CREATE TABLE notes (id bigint PRIMARY KEY, body text NOT NULL);\n"


def apply_unlinted(directory: Path, schema: str) -> ApplyResult:
    """Apply as the engine does, without the lint refusal: what the database alone lets through."""
    applier = SchemaApplier(templates=template_set_read(directory), applied_by="attacker")
    try:
        return applier.apply(ApplyTarget(schema=schema, tenant_id=str(uuid.uuid4())))
    finally:
        applier.close()


@pytest.fixture
def victim(pg: psycopg.Connection[Any]) -> str:
    """Another client's schema holding a secret row, created and filled as the tenant database's owner."""
    schema = new_schema_name()
    schema_create(schema=schema)
    pg.execute(sql.SQL("CREATE TABLE {}.crm_users (email text)").format(sql.Identifier(schema)))
    pg.execute(sql.SQL("INSERT INTO {}.crm_users VALUES ('ceo@victim.test')").format(sql.Identifier(schema)))
    pg.execute(
        sql.SQL("ALTER TABLE {}.crm_users OWNER TO {}").format(
            sql.Identifier(schema), sql.Identifier(tenant_roles(schema).owner)
        )
    )
    return schema


def public_tables(pg: psycopg.Connection[Any]) -> set[str]:
    return tables(pg, "public")


def superusers(pg: psycopg.Connection[Any]) -> set[str]:
    return {r[0] for r in pg.execute("SELECT rolname FROM pg_roles WHERE rolsuper")}


def attacks(victim: str) -> dict[str, str]:
    victim_owner = tenant_roles(victim).owner
    return {
        "reset_role_alter_role": "RESET ROLE;\nALTER ROLE ${app_role} SUPERUSER;\n",
        "copy_to_program": f"RESET ROLE;\nCOPY (SELECT 1) TO PROGRAM 'id > {PROGRAM_FILE}';\n",
        "copy_program_as_owner": f"COPY (SELECT 1) TO PROGRAM 'id > {PROGRAM_FILE}';\n",
        "extension": "RESET ROLE;\nCREATE EXTENSION IF NOT EXISTS dblink SCHEMA public;\n",
        "other_tenant_reset": f"RESET ROLE;\nCREATE TABLE stolen AS SELECT * FROM {victim}.crm_users;\n",
        "other_tenant_set_role": (
            f'SET ROLE "{victim_owner}";\nCREATE TABLE {victim}.stolen AS SELECT * FROM {victim}.crm_users;\n'
        ),
        "other_tenant_drop": f"RESET ROLE;\nDROP TABLE {victim}.crm_users;\n",
        "do_block_dynamic": (
            "DO $$ BEGIN EXECUTE 'RESET ROLE'; EXECUTE 'CREATE TABLE ' || 'pub' || 'lic.x_attack()'; END $$;\n"
        ),
        "set_config_computed": (
            "DO $$ BEGIN PERFORM set_config('ro'||'le', 'postgres', true); "
            "EXECUTE 'CREATE TABLE pub' || 'lic.y_attack()'; END $$;\n"
        ),
        "session_authorization": "SET SESSION AUTHORIZATION postgres;\nALTER ROLE ${app_role} SUPERUSER;\n",
        "pg_authid": "RESET ROLE;\nCREATE TABLE hashes AS SELECT rolname, rolpassword FROM pg_authid;\n",
        "pg_authid_as_owner": "CREATE TABLE hashes AS SELECT rolname, rolpassword FROM pg_authid;\n",
        "dblink": "SELECT dblink_exec('dbname=postgres user=postgres', 'ALTER ROLE postgres NOLOGIN');\n",
        "read_file": "CREATE TABLE leaked AS SELECT pg_read_file('/etc/passwd') AS body;\n",
        "alter_system": "RESET ROLE;\nALTER SYSTEM SET work_mem = '1GB';\n",
        "definer_owner": (
            "CREATE FUNCTION escalate() RETURNS void LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';\n"
            "ALTER FUNCTION escalate() OWNER TO postgres;\n"
        ),
        "forge_other_ledger": (
            "RESET ROLE;\nINSERT INTO public.tenant_sql_ledger (schema_name, version, description, filename,"
            " checksum, applied_by, applied_at, duration_ms, success, sqlstate, error, failed_statement)"
            f" VALUES ('{victim}', 99, 'x', '099_x.pgsql', 'x', 'x', now(), 0, true, '', '', '');\n"
        ),
        "create_in_public": "RESET ROLE;\nCREATE TABLE public.planted (id int);\n",
    }


def assert_nothing_outside_changed(
    pg: psycopg.Connection[Any], *, schema: str, victim: str, public_before: set[str], supers_before: set[str]
) -> None:
    roles = tenant_roles(schema)
    assert superusers(pg) == supers_before
    attrs = pg.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = ANY(%s)",
        [[roles.app, roles.owner, migrator_role()]],
    ).fetchall()
    assert attrs
    assert all(row == (False, False, False) for row in attrs)
    assert not PROGRAM_FILE.exists()
    assert public_tables(pg) == public_before
    assert tables(pg, victim) == {"crm_users"}
    assert pg.execute(sql.SQL("SELECT email FROM {}.crm_users").format(sql.Identifier(victim))).fetchall() == [
        ("ceo@victim.test",)
    ]
    assert ledger(pg, victim) == []
    assert pg.execute("SELECT count(*) FROM pg_extension WHERE extname = 'dblink'").fetchone() == (0,)
    assert pg.execute("SELECT setting FROM pg_file_settings WHERE name = 'work_mem' AND applied IS NOT NULL"
                      " AND sourcefile LIKE '%%postgresql.auto.conf'").fetchall() == []  # fmt: skip
    # The schema itself holds nothing the file made (a failed file rolls back whole).
    assert tables(pg, schema) == set()
    assert pg.execute(
        "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s", [schema]
    ).fetchone() == (0,)
    # The migrator holds no owner role once the apply is over.
    members = pg.execute(
        "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
        [migrator_role()],
    ).fetchone()
    assert members == (0,)


ATTACK_NAMES = sorted(attacks("victim_schema"))


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_the_database_refuses_what_lint_might_miss(
    pg: psycopg.Connection[Any], tmp_path: Path, victim: str, attack: str
) -> None:
    schema = new_schema_name()
    schema_create(schema=schema)
    public_before, supers_before = public_tables(pg), superusers(pg)
    directory = write_templates(tmp_path / attack, {"001_attack.pgsql": attacks(victim)[attack]})

    result = apply_unlinted(directory, schema)

    assert result.failed is not None, result.as_dict()
    assert [r["success"] for r in ledger(pg, schema)] == [False]
    assert_nothing_outside_changed(pg, schema=schema, victim=victim, public_before=public_before,
                                   supers_before=supers_before)  # fmt: skip


@pytest.mark.parametrize("attack", ATTACK_NAMES)
def test_apply_refuses_every_attack_by_lint(
    pg: psycopg.Connection[Any], tmp_path: Path, victim: str, attack: str
) -> None:
    schema = new_schema_name()
    public_before, supers_before = public_tables(pg), superusers(pg)
    directory = write_templates(tmp_path / attack, {"001_attack.pgsql": attacks(victim)[attack]})

    run = tenant_sql("apply", "--schema", schema, "--create-schema", "--dir", str(directory))

    assert run.code == 1
    assert "fix them first (tenant_sql lint)" in run.err
    assert pg.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [schema]).fetchone() == (0,)
    assert superusers(pg) == supers_before
    assert public_tables(pg) == public_before
    assert not PROGRAM_FILE.exists()
    assert tables(pg, victim) == {"crm_users"}


def test_a_file_that_opens_the_schema_to_public_rolls_back(pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    schema = new_schema_name()
    schema_create(schema=schema)
    directory = write_templates(tmp_path / "t", {"001_open.pgsql": TABLE + "GRANT SELECT ON notes TO PUBLIC;\n"})

    result = apply_unlinted(directory, schema)

    assert result.failed is not None
    assert result.failed.sqlstate == "42501"
    assert "relation notes grants SELECT to PUBLIC" in result.failed.error
    assert tables(pg, schema) == set()  # rolled back whole, the table too
    assert [r["success"] for r in ledger(pg, schema)] == [False]


@pytest.mark.parametrize(
    "grant",
    [
        "GRANT USAGE ON SCHEMA {schema} TO PUBLIC;",
        "GRANT SELECT (body) ON notes TO {other};",
        "GRANT EXECUTE ON FUNCTION f() TO PUBLIC;",
        "ALTER DEFAULT PRIVILEGES FOR ROLE ${{owner_role}} GRANT SELECT ON TABLES TO {other};",
    ],
)
def test_grants_to_other_roles_fail_the_file(
    pg: psycopg.Connection[Any], tmp_path: Path, victim: str, grant: str
) -> None:
    schema = new_schema_name()
    schema_create(schema=schema)
    text = (
        TABLE
        + "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
        + grant.format(schema=schema, other=f'"{tenant_roles(victim).app}"')
        + "\n"
    )
    directory = write_templates(tmp_path / "t", {"001_open.pgsql": text})

    result = apply_unlinted(directory, schema)

    assert result.failed is not None, result.as_dict()
    assert result.failed.sqlstate == "42501", result.as_dict()
    assert tables(pg, schema) == set()
    public_usage = pg.execute(
        "SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = %s AND a.grantee = 0", [schema]
    ).fetchone()
    assert public_usage == (0,)  # PUBLIC never got USAGE on the schema


def test_grants_to_the_tenants_own_roles_pass(pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    schema = new_schema_name()
    schema_create(schema=schema)
    text = TABLE + "GRANT SELECT, INSERT ON notes TO ${app_role};\nGRANT SELECT (body) ON notes TO ${app_role};\n"
    directory = write_templates(tmp_path / "t", {"001_ok.pgsql": text})

    result = apply_unlinted(directory, schema)

    assert result.ok
    assert [a.version for a in result.applied] == [1]
    assert tables(pg, schema) == {"notes"}


def test_a_symlink_to_a_file_outside_the_folder_is_never_applied(pg: psycopg.Connection[Any], tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.sql"
    outside.write_text("CREATE TABLE from_outside (id bigint);\n")
    directory = write_templates(tmp_path / "t", {"001_core.pgsql": TABLE})
    (directory / "002_x.pgsql").symlink_to(outside)
    schema = new_schema_name()

    run = tenant_sql("apply", "--schema", schema, "--create-schema", "--dir", str(directory))

    assert run.code == 1
    assert "002_x.pgsql:1: symlink" in run.err
    assert pg.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [schema]).fetchone() == (0,)
    assert pg.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'from_outside'").fetchone() == (0,)


def test_the_migrator_can_only_write_ledger_rows_of_the_schema_it_applies(
    pg: psycopg.Connection[Any], tmp_path: Path, victim: str
) -> None:
    schema = new_schema_name()
    schema_create(schema=schema)
    assert apply_unlinted(write_templates(tmp_path / "t", {"001_core.pgsql": TABLE}), schema).ok

    rows = pg.execute(
        "SELECT schema_name, success FROM public.tenant_sql_ledger WHERE schema_name = ANY(%s)", [[schema, victim]]
    ).fetchall()
    assert rows == [(schema, True)]
    privileges = pg.execute(
        "SELECT has_table_privilege(%(m)s, 'public.tenant_sql_ledger', 'UPDATE'),"
        " has_table_privilege(%(m)s, 'public.tenant_sql_ledger', 'DELETE'),"
        " has_schema_privilege(%(m)s, 'public', 'CREATE'), has_schema_privilege(%(m)s, %(s)s, 'USAGE')",
        {"m": migrator_role(), "s": schema},
    ).fetchone()
    assert privileges == (False, False, False, False)
