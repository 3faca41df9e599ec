"""The tenant's login role at the PostgreSQL level: suspend (NOLOGIN + end its sessions) and resume (LOGIN).

Role names come from the template engine (``tenant_roles``); they reach SQL only as identifiers.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from ghostcrm.organizations.schema_names import validate_schema_name
from tenants.db import tenant_connection
from tenants.engine.services import tenant_roles


def _app_role(schema: str) -> str:
    validate_schema_name(schema)
    return tenant_roles(schema).app


def _execute(statement: sql.Composable, params: list[Any] | None = None) -> list[tuple[object, ...]]:
    connection = tenant_connection()
    connection.ensure_connection()
    raw = connection.connection
    with connection.cursor() as cursor:
        cursor.execute(statement.as_string(raw), params or [])
        return cursor.fetchall() if cursor.description else []


def role_exists(role: str) -> bool:
    return bool(_execute(sql.SQL("SELECT 1 FROM pg_roles WHERE rolname = %s"), [role]))


def app_role_disable(*, schema: str) -> int:
    """Take LOGIN away from the tenant's app role and end its open sessions; returns how many were ended."""
    role = _app_role(schema)
    if not role_exists(role):
        return 0
    _execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
    ended = _execute(
        sql.SQL(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND pid <> pg_backend_pid()"
        ),
        [role],
    )
    return len(ended)


def app_role_enable(*, schema: str) -> None:
    """Give the tenant's app role LOGIN back (its password is unchanged)."""
    role = _app_role(schema)
    if role_exists(role):
        _execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))


def roles_can_login(role_names: list[str]) -> dict[str, bool]:
    """``rolcanlogin`` of each existing role among ``role_names``, in one query (missing roles are left out)."""
    rows = _execute(sql.SQL("SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)"), [role_names])
    return {str(name): bool(can_login) for name, can_login in rows}
