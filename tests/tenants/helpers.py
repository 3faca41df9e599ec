"""Helpers shared by the tenants tests (test modules import these, never each other)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings

from ghostcrm.audit.services import Actor
from ghostcrm.organizations.models import Organization
from tenants.models import Domain, Tenant
from tests.support import tenant_conninfo

ACTOR = Actor.system("test")
TEMPLATES = Path(settings.BASE_DIR) / "migrations_sql" / "client-provisioning"
STEPS = ["registry", "schema", "templates", "admin_user", "invitation"]


def tenant_query(query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """A query on a connection of its own, so it sees only committed state."""
    with psycopg.connect(**tenant_conninfo()) as conn:
        cursor = conn.execute(query, params or [])
        return cursor.fetchall() if cursor.description else []


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60, what: str) -> Any:
    """Poll until ``predicate`` is truthy (bounded); the tests never sleep for a fixed time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def template_files(folder: Path = TEMPLATES) -> list[str]:
    return sorted(p.name for p in folder.glob("*.pgsql"))


def schemas_like(prefix: str) -> list[str]:
    return [r[0] for r in tenant_query("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [prefix + "%"])]


def assert_fully_provisioned(organization: Organization) -> None:
    organization.refresh_from_db()
    assert organization.status == Organization.Status.ACTIVE, organization.last_error
    assert organization.activated_at is not None
    assert organization.last_error == ""
    schema = organization.schema_name
    assert schemas_like(schema) == [schema]
    ledger = tenant_query(
        "SELECT filename FROM public.tenant_sql_ledger WHERE schema_name = %s AND success ORDER BY version", [schema]
    )
    assert [row[0] for row in ledger] == template_files(Path(settings.TENANT_TEMPLATES_DIR))
    users = tenant_query(f'SELECT email, role FROM "{schema}".crm_users')
    assert users == [(organization.admin_email, "admin")]
    tenant = Tenant.objects.using("tenants").get(organization_id=organization.pk)
    assert tenant.schema_name == schema
    assert Domain.objects.using("tenants").filter(tenant=tenant, is_primary=True).count() == 1
