"""The privileged path: the migrator login's setup (idempotent, least privilege) and owner memberships."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from psycopg import sql

from tenants.engine import connection
from tenants.engine.naming import migrator_role, tenant_roles
from tenants.engine.schemas import migrator_setup, owner_membership, schema_create
from tenants.engine.signals import migrator_after_migrate
from tests.engine.support import new_schema_name

pytestmark = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)


def drop_migrator(pg: psycopg.Connection[Any]) -> None:
    role = sql.Identifier(migrator_role())
    if pg.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [migrator_role()]).fetchone():
        pg.execute(sql.SQL("DROP OWNED BY {}").format(role))
        pg.execute(sql.SQL("DROP ROLE {}").format(role))


def test_migrate_sets_up_the_migrator_with_least_privilege_idempotently(pg: psycopg.Connection[Any]) -> None:
    drop_migrator(pg)

    migrator_after_migrate(apps.get_app_config("tenant_sql"), using=settings.TENANT_DB_ALIAS)

    row = pg.execute(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolreplication, rolbypassrls"
        " FROM pg_roles WHERE rolname = %s",
        [migrator_role()],
    ).fetchone()
    assert row == (True, False, False, False, False, False, False)
    assert migrator_role().startswith(settings.TENANT_ROLE_PREFIX + "_")
    privileges = pg.execute(
        "SELECT has_table_privilege(%(m)s, 'public.tenant_sql_ledger', 'INSERT'),"
        " has_table_privilege(%(m)s, 'public.tenant_sql_ledger', 'UPDATE'),"
        " has_table_privilege(%(m)s, 'public.tenant_sql_ledger', 'DELETE'),"
        " has_schema_privilege(%(m)s, 'public', 'CREATE'),"
        " has_database_privilege(%(m)s, current_database(), 'CREATE')",
        {"m": migrator_role()},
    ).fetchone()
    assert privileges == (True, False, False, False, False)
    assert migrator_setup() is False  # nothing left to do the second time


def test_a_tampered_migrator_is_repaired(pg: psycopg.Connection[Any]) -> None:
    migrator_setup()
    pg.execute(sql.SQL("ALTER ROLE {} CREATEDB INHERIT").format(sql.Identifier(migrator_role())))

    assert migrator_setup() is True

    row = pg.execute("SELECT rolcreatedb, rolinherit FROM pg_roles WHERE rolname = %s", [migrator_role()]).fetchone()
    assert row == (False, False)


def test_a_migrator_name_without_the_prefix_is_refused(settings: Any) -> None:
    settings.TENANT_MIGRATOR_ROLE = "migrator"
    with pytest.raises(ImproperlyConfigured, match="must start with TENANT_ROLE_PREFIX"):
        migrator_role()


def test_owner_membership_lasts_for_the_block_only(pg: psycopg.Connection[Any]) -> None:
    schema = new_schema_name()
    schema_create(schema=schema)
    migrator_setup()
    query = "SELECT pg_has_role(%s, %s, 'MEMBER')"
    args = [migrator_role(), tenant_roles(schema).owner]
    admin = connection.engine_connect()
    try:
        with owner_membership(admin, schema):
            assert pg.execute(query, args).fetchone() == (True,)
    finally:
        admin.close()
    assert pg.execute(query, args).fetchone() == (False,)
