"""The unmanaged Django mirrors match the tables the templates create, read real rows, and refuse writes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connections

from ghostcrm.core.errors import PermissionDenied
from tenants.crm.models import Company, CrmUser, Deal, StockLevel, TeamMember
from tenants.db import tenant_schema
from tests.templates.support import TENANT_DB, Crm, TenantSchema


@TENANT_DB
def test_every_mirror_field_is_a_column_of_the_same_type_in_the_template_tables(tenant: TenantSchema) -> None:
    conn = tenant.admin()
    connection = connections[settings.TENANT_DB_ALIAS]
    mirrors = list(apps.get_app_config("crm").get_models())
    assert len(mirrors) >= 15
    for model in mirrors:
        assert model._meta.managed is False
        assert model.database_alias == settings.TENANT_DB_ALIAS  # type: ignore[attr-defined]
        columns = dict(
            conn.execute(
                "SELECT a.attname, replace(format_type(a.atttypid, a.atttypmod), ' ', '') FROM pg_attribute a"
                " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                [f'"{tenant.schema}".{model._meta.db_table}'],
            ).fetchall()
        )
        for field in model._meta.concrete_fields:
            db_type = field.db_type(connection)
            if db_type is None:  # the composite primary key: its parts are checked as fields
                continue
            assert field.column in columns, f"{model.__name__}.{field.name}: no column {field.column}"
            assert columns[field.column] == db_type.replace(" ", ""), f"{model.__name__}.{field.name}"
    # The password hash is deliberately not mirrored.
    assert "password_hash" not in {f.column for f in CrmUser._meta.concrete_fields}


@TENANT_DB
def test_mirrors_read_a_tenant_schema_and_refuse_to_write(tenant: TenantSchema) -> None:
    crm = Crm(tenant.admin())
    owner = crm.user("owner@acme.test", "manager")
    team = crm.team("North", owner)
    crm.company(owner, "Acme Retail", private=True)
    deal_id = crm.deal(owner, "Acme tills", "1500.00", stage="Proposal")
    with tenant_schema(tenant.schema):
        company = Company.objects.get()
        deal = Deal.objects.select_related("stage", "owner").get()
        membership = TeamMember.objects.get()
        assert (company.name, company.is_private, company.owner_id) == ("Acme Retail", True, owner)
        assert (deal.pk, deal.amount, deal.stage.name, deal.owner.email) == (
            deal_id,
            Decimal("1500.00"),
            "Proposal",
            "owner@acme.test",
        )
        assert (membership.team_id, membership.user_id) == (team, owner)
        assert StockLevel.objects.count() == 0
        with pytest.raises(PermissionDenied):
            company.save()
        with pytest.raises(PermissionDenied):
            company.delete()
        with pytest.raises(PermissionDenied):
            Company.objects.filter(pk=company.pk).update(name="Renamed")
        with pytest.raises(PermissionDenied):
            Company.objects.all().delete()
    assert crm.one("SELECT name FROM companies") == "Acme Retail"
