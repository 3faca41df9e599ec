"""Tenant schemas built from the real client templates, and connections as the roles that use them.

Schemas are created and filled by the template engine exactly as provisioning does
(``tenants.engine.services.schema_create`` + ``schema_apply``). Tests then talk to them two ways:
``TenantSchema.admin()`` (the database superuser, which bypasses row-level security: for seeding and for
looking at the real state) and ``TenantSchema.app(user_id, role)`` (a real password login as the tenant's
app role with ``app.user_id`` / ``app.role`` set, as the CRM app runs). Helpers are in ``support.py``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator

import pytest

from ghostcrm.audit.models import AuditChainHead
from ghostcrm.audit.services import GENESIS_HASH
from tenants.engine.services import schema_apply, schema_create, tenant_roles
from tests.templates.support import TenantSchema


@pytest.fixture(autouse=True)
def _audit_chain_head(request: pytest.FixtureRequest) -> None:
    """Transactional tests flush the main database, taking the audit chain's head row (made by a migration)."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    request.getfixturevalue("transactional_db" if marker.kwargs.get("transaction") else "db")
    AuditChainHead.objects.get_or_create(pk=1, defaults={"sequence": 0, "hash": GENESIS_HASH})


@pytest.fixture
def make_tenant() -> Iterator[Callable[..., TenantSchema]]:
    made: list[TenantSchema] = []

    def make(prefix: str = "tpl") -> TenantSchema:
        schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
        password = secrets.token_urlsafe(18)
        schema_create(schema=schema, app_password=password)
        result = schema_apply(schema=schema, applied_by="tests.templates")
        assert [a.filename for a in result.applied] == [
            "001_client_schema_template.pgsql",
            "002_collaboration_features.pgsql",
            "003_inventory_management.pgsql",
        ]
        tenant = TenantSchema(schema=schema, roles=tenant_roles(schema), app_password=password)
        made.append(tenant)
        return tenant

    yield make
    for tenant in made:  # before the harness drops the schemas and roles
        tenant.close()


@pytest.fixture
def tenant(make_tenant: Callable[..., TenantSchema]) -> TenantSchema:
    return make_tenant()
