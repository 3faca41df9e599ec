"""The privileged path: roles, schemas and the migrator login. It never runs template text.

Runs on ``engine_connect`` (the login of ``TENANT_DATABASE_URL``, which needs CREATEROLE, or superuser,
and owns the ledger table). Template text runs elsewhere (``tenants.engine.apply``), as the migrator.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from ghostcrm.audit.services import Actor, audit_record
from tenants.engine import connection
from tenants.engine.connection import rollback_if_open, simple
from tenants.engine.grants import GRANTS_FUNCTION, grants_function_create
from tenants.engine.models import LEDGER_TABLE
from tenants.engine.naming import migrator_role, schema_lock_key, schema_name_check, tenant_roles

MIGRATOR_LOCK_KEY = schema_lock_key("tenant_sql migrator setup")
MIGRATOR_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOINHERIT NOREPLICATION NOBYPASSRLS"
MIGRATOR_STATE_SQL = f"""
SELECT r.rolname IS NOT NULL AND r.rolcanlogin AND NOT (r.rolsuper OR r.rolcreaterole OR r.rolcreatedb
           OR r.rolinherit OR r.rolreplication OR r.rolbypassrls),
       CASE WHEN r.rolname IS NOT NULL THEN has_table_privilege(r.oid, 'public.{LEDGER_TABLE}', 'INSERT') END,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = 'public.{LEDGER_TABLE}'::regclass AND p.polname = %(m)s),
       (SELECT relrowsecurity FROM pg_class WHERE oid = 'public.{LEDGER_TABLE}'::regclass),
       CASE WHEN r.rolname IS NOT NULL AND to_regprocedure('public.{GRANTS_FUNCTION}(name,name,name)') IS NOT NULL
            THEN has_function_privilege(r.oid, 'public.{GRANTS_FUNCTION}(name,name,name)', 'EXECUTE') END
FROM (SELECT %(m)s::name AS name) AS wanted LEFT JOIN pg_roles r ON r.rolname = wanted.name
"""
# The migrator may read and write ledger rows only of schemas whose owner role it is a member of, which is
# only while it applies that schema (``owner_membership``).
LEDGER_POLICY = f"""
CREATE POLICY {{policy}} ON public.{LEDGER_TABLE} TO {{role}}
USING (EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
               WHERE n.nspname = schema_name AND pg_catalog.pg_has_role(n.nspowner, 'MEMBER')))
WITH CHECK (EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
                    WHERE n.nspname = schema_name AND pg_catalog.pg_has_role(n.nspowner, 'MEMBER')))
"""


def migrator_ensure(conn: psycopg.Connection[Any], *, password: str | None = None, force: bool = False) -> bool:
    """Create or repair the migrator login and its few privileges; idempotent. True when it changed anything.

    The migrator gets: LOGIN, no other attribute; CONNECT on the database; SELECT and INSERT on the ledger,
    limited by a row-level security policy to the schema it is applying. Owner roles are granted to it only
    for the time of an apply (``owner_membership``).
    """
    role = migrator_role()
    state = conn.execute(MIGRATOR_STATE_SQL, {"m": role}).fetchone()
    if state is not None and all(state) and not force and password is None:
        return False
    ident = sql.Identifier
    simple(conn, sql.SQL("BEGIN; SELECT pg_advisory_xact_lock({})").format(sql.Literal(MIGRATOR_LOCK_KEY)))
    try:
        exists = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)", [role]).fetchone()
        database = conn.execute("SELECT current_database()").fetchone()
        assert exists is not None
        assert database is not None
        verb = "ALTER" if exists[0] else "CREATE"
        statements = [
            sql.SQL(f"{verb} ROLE {{}} {MIGRATOR_ATTRIBUTES}").format(ident(role)),
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(ident(database[0]), ident(role)),
            sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident(role)),
            sql.SQL("REVOKE ALL ON public.{} FROM {}").format(ident(LEDGER_TABLE), ident(role)),
            sql.SQL("GRANT SELECT, INSERT ON public.{} TO {}").format(ident(LEDGER_TABLE), ident(role)),
            sql.SQL("ALTER TABLE public.{} ENABLE ROW LEVEL SECURITY").format(ident(LEDGER_TABLE)),
            sql.SQL("DROP POLICY IF EXISTS {} ON public.{}").format(ident(role), ident(LEDGER_TABLE)),
            sql.SQL(LEDGER_POLICY).format(policy=ident(role), role=ident(role)),
            grants_function_create(role),
        ]
        if password is not None:
            statements.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident(role), sql.Literal(password)))
        simple(conn, sql.SQL("; ").join(statements))
        simple(conn, "COMMIT")
    except BaseException:
        rollback_if_open(conn)
        raise
    return True


def migrator_setup(*, password: str | None = None) -> bool:
    """``migrator_ensure`` on a new privileged connection (called by ``migrate``, ``make demo``, ``make test``)."""
    return connection.run_write("Setting up the migrator login", lambda c: migrator_ensure(c, password=password))


@contextmanager
def owner_membership(conn: psycopg.Connection[Any], schema: str) -> Iterator[None]:
    """The migrator is a member of ``schema``'s owner role inside this block only.

    A session advisory lock (not the schema's own key, which the migrator takes) keeps two runners of the
    same schema from revoking the membership under each other.
    """
    ident = sql.Identifier
    owner, migrator = ident(tenant_roles(schema).owner), ident(migrator_role())
    key = sql.Literal(schema_lock_key(f"membership:{schema}"))
    # GRANT locks pg_auth_members after the advisory lock is granted, which makes it see the REVOKE that
    # the previous holder committed before unlocking.
    simple(conn, sql.SQL("SELECT pg_advisory_lock({}); GRANT {} TO {}").format(key, owner, migrator))
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            # The REVOKE commits before the lock is released, so that the next runner's GRANT sees it.
            simple(
                conn,
                sql.SQL("BEGIN; REVOKE {} FROM {}; COMMIT; SELECT pg_advisory_unlock({})").format(owner, migrator, key),
            )


def _schema_create_on(conn: psycopg.Connection[Any], *, schema: str, app_password: str | None) -> list[str]:
    """Create whatever is missing of the schema and its two roles; return what changed (for the audit)."""
    roles = tenant_roles(schema)
    ident = sql.Identifier
    changes: list[str] = []
    simple(conn, sql.SQL("BEGIN; SELECT pg_advisory_xact_lock({})").format(sql.Literal(schema_lock_key(schema))))
    try:
        found = conn.execute(
            "SELECT (SELECT array_agg(rolname::text) FROM pg_roles WHERE rolname = ANY(%s)),"
            " EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s),"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), current_database()",
            [[roles.owner, roles.app], schema],
        ).fetchone()
        assert found is not None
        existing, schema_exists, is_super, database = set(found[0] or ()), found[1], found[2], found[3]
        statements: list[sql.Composable] = []
        if roles.owner not in existing:
            statements.append(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident(roles.owner)))
            changes.append(f"role {roles.owner} created")
        else:
            statements.append(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident(roles.owner)))
        if roles.app not in existing:
            statements.append(sql.SQL("CREATE ROLE {} LOGIN").format(ident(roles.app)))
            changes.append(f"role {roles.app} created")
        # An existing app role keeps its LOGIN/NOLOGIN: a suspended tenant's role stays shut (tenants.roles).
        if app_password is not None:
            # Utility statements take no bind parameters: the password goes as a psycopg-quoted literal.
            statements.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident(roles.app), sql.Literal(app_password)))
            changes.append(f"password of {roles.app} set")
        if not is_super:
            # A non-superuser privileged login must be a member of the owner role to drop its schema.
            statements.append(sql.SQL("GRANT {} TO CURRENT_USER").format(ident(roles.owner)))
        if not schema_exists:
            statements.append(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(ident(schema), ident(roles.owner)))
            changes.append(f"schema {schema} created")
        else:
            statements.append(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(ident(schema), ident(roles.owner)))
        statements += [
            sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(ident(schema)),
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident(schema), ident(roles.app)),
            # The CRM app's sessions see their own schema only (pg_catalog stays implicit).
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path TO {}").format(
                ident(roles.app), ident(database), ident(schema)
            ),
        ]
        simple(conn, sql.SQL("; ").join(statements))
        simple(conn, "COMMIT")
    except BaseException:
        rollback_if_open(conn)
        raise
    return changes


def schema_create(*, schema: str, app_password: str | None = None, actor: Actor | None = None) -> None:
    """Create the schema with its NOLOGIN owner role and LOGIN app role; idempotent, audited when it changes."""
    schema_name_check(schema)
    started = time.monotonic()
    changes = connection.run_write(
        f"Creating schema {schema}", lambda conn: _schema_create_on(conn, schema=schema, app_password=app_password)
    )
    if changes:
        roles = tenant_roles(schema)
        audit_record(
            action="tenant_sql.schema_create",
            actor=actor or Actor.system("tenant_sql"),
            target_type="tenant_sql.schema",
            target_id=schema,
            target_repr=schema,
            after={"schema": schema, "owner_role": roles.owner, "app_role": roles.app, "changes": changes},
            message="; ".join(changes),
            duration_ms=int((time.monotonic() - started) * 1000),
        )


def _schema_drop_on(conn: psycopg.Connection[Any], *, schema: str) -> dict[str, Any]:
    roles = tenant_roles(schema)
    ident = sql.Identifier
    simple(conn, sql.SQL("BEGIN; SELECT pg_advisory_xact_lock({})").format(sql.Literal(schema_lock_key(schema))))
    try:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s),"
            " (SELECT array_agg(rolname::text) FROM pg_roles WHERE rolname = ANY(%s)),"
            f" (SELECT count(*) FROM public.{LEDGER_TABLE} WHERE schema_name = %s)",
            [schema, [roles.owner, roles.app], schema],
        ).fetchone()
        assert row is not None
        existed, present, ledger_rows = row[0], set(row[1] or ()), row[2]
        statements: list[sql.Composable] = []
        if existed:
            statements.append(sql.SQL("DROP SCHEMA {} CASCADE").format(ident(schema)))
        for role in (roles.app, roles.owner):
            if role in present:
                # Anything the role still owns elsewhere is kept (given to us), its privileges revoked.
                statements.append(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(ident(role)))
                statements.append(sql.SQL("DROP OWNED BY {}").format(ident(role)))
                statements.append(sql.SQL("DROP ROLE {}").format(ident(role)))
        if statements:
            simple(conn, sql.SQL("; ").join(statements))
        conn.execute(f"DELETE FROM public.{LEDGER_TABLE} WHERE schema_name = %s", [schema])
        simple(conn, "COMMIT")
    except BaseException:
        rollback_if_open(conn)
        raise
    return {"schema_existed": existed, "roles": sorted(present), "ledger_rows": ledger_rows}


def schema_drop(*, schema: str, actor: Actor | None = None) -> None:
    """Drop the schema (CASCADE), its ledger rows and both roles, in one transaction; audited."""
    schema_name_check(schema)
    started = time.monotonic()
    before = connection.run_write(f"Dropping schema {schema}", lambda conn: _schema_drop_on(conn, schema=schema))
    if before["schema_existed"] or before["roles"] or before["ledger_rows"]:
        audit_record(
            action="tenant_sql.schema_drop",
            actor=actor or Actor.system("tenant_sql"),
            target_type="tenant_sql.schema",
            target_id=schema,
            target_repr=schema,
            before=before,
            message=f"schema {schema} and its roles dropped",
            duration_ms=int((time.monotonic() - started) * 1000),
        )
