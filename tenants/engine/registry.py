"""Reads of the django-tenants registry that the engine needs: which schemas are clients, and their ids."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from tenants.models import Tenant

PUBLIC_SCHEMA = "public"


def tenant_ids_for(schemas: Sequence[str]) -> dict[str, str]:
    """``${tenant_id}`` of registered schemas: the organisation's UUID."""
    rows = Tenant.objects.using(settings.TENANT_DB_ALIAS).filter(schema_name__in=list(schemas))
    return {schema: str(org_id) for schema, org_id in rows.values_list("schema_name", "organization_id")}


def registered_schemas() -> list[str]:
    """Every client schema in the django-tenants registry (``public`` excluded), sorted."""
    return list(
        Tenant.objects.using(settings.TENANT_DB_ALIAS)
        .exclude(schema_name=PUBLIC_SCHEMA)
        .order_by("schema_name")
        .values_list("schema_name", flat=True)
    )
