from __future__ import annotations

import pytest
from django.apps import apps
from django.conf import settings
from django.db import router

TENANT_DATABASE_MODELS = {"tenants.tenant", "tenants.domain"}


def tenant_database_models() -> set[str]:
    return {m._meta.label_lower for m in apps.get_models() if getattr(m, "database_alias", "default") != "default"}


def test_registry_models_live_in_the_tenant_database() -> None:
    assert tenant_database_models() >= TENANT_DATABASE_MODELS
    for label in tenant_database_models():
        model = apps.get_model(label)
        assert router.db_for_read(model) == settings.TENANT_DB_ALIAS
        assert router.db_for_write(model) == settings.TENANT_DB_ALIAS
        assert router.allow_migrate_model(settings.TENANT_DB_ALIAS, model)
        assert not router.allow_migrate_model("default", model)


@pytest.mark.parametrize("model", [m for m in apps.get_models() if m._meta.managed], ids=lambda m: m._meta.label_lower)
def test_every_managed_model_has_exactly_one_database(model: type) -> None:
    expected = settings.TENANT_DB_ALIAS if model._meta.label_lower in tenant_database_models() else "default"
    assert router.db_for_read(model) == expected
    assert router.db_for_write(model) == expected
    allowed = [alias for alias in settings.DATABASES if router.allow_migrate_model(alias, model)]
    assert allowed == [expected]


def test_unmanaged_tenant_mirrors_are_never_migrated() -> None:
    for model in apps.get_app_config("crm").get_models():
        assert not model._meta.managed


def test_relations_across_databases_are_refused() -> None:
    from tenants.models import Organization, Tenant

    assert router.allow_relation(Organization(), Organization())
    assert not router.allow_relation(Organization(), Tenant())


def test_sql_operations_go_to_the_main_database_unless_named() -> None:
    assert router.allow_migrate("default", "audit")
    assert not router.allow_migrate(settings.TENANT_DB_ALIAS, "audit")
    assert router.allow_migrate(settings.TENANT_DB_ALIAS, "tenant_sql", database=settings.TENANT_DB_ALIAS)
