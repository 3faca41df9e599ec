from __future__ import annotations

import pytest
from django.apps import apps
from django.conf import settings
from django.db import router

# Written out, not read from the attribute the router itself reads: a model that lands in the wrong database
# (a forgotten or misplaced `database_alias`) fails here. The tenant database holds the django-tenants registry,
# the template ledger (app `tenant_sql`) and the unmanaged mirrors of template tables (app `crm`); every other
# model, including third-party apps', lives in the main database.
TENANT_DATABASE_MODELS = {"tenants.tenant", "tenants.domain"}
TENANT_DATABASE_APPS = {"tenant_sql", "crm"}


def expected_database(model: type) -> str:
    label = model._meta.label_lower
    in_tenants = label in TENANT_DATABASE_MODELS or model._meta.app_label in TENANT_DATABASE_APPS
    return settings.TENANT_DB_ALIAS if in_tenants else "default"


def test_the_expected_tenant_database_models_exist() -> None:
    labels = {m._meta.label_lower for m in apps.get_models()}
    assert labels >= TENANT_DATABASE_MODELS
    for app_label in TENANT_DATABASE_APPS:
        assert list(apps.get_app_config(app_label).get_models()), app_label


@pytest.mark.parametrize("model", apps.get_models(), ids=lambda m: m._meta.label_lower)
def test_every_model_has_exactly_one_database(model: type) -> None:
    expected = expected_database(model)
    assert router.db_for_read(model) == expected
    assert router.db_for_write(model) == expected
    allowed = [alias for alias in settings.DATABASES if router.allow_migrate_model(alias, model)]
    assert allowed == [expected]  # unmanaged models (the mirrors) have no table wherever they are allowed
    # Relations only within one database.
    assert router.allow_relation(model(), model())
    other = apps.get_model("tenants.tenant" if expected == "default" else "organizations.organization")
    assert not router.allow_relation(model(), other())


def test_unmanaged_tenant_mirrors_are_never_migrated() -> None:
    for model in apps.get_app_config("crm").get_models():
        assert not model._meta.managed


def test_relations_across_databases_are_refused() -> None:
    from ghostcrm.organizations.models import Organization
    from tenants.models import Tenant

    assert router.allow_relation(Organization(), Organization())
    assert not router.allow_relation(Organization(), Tenant())


def test_sql_operations_go_to_the_main_database_unless_named() -> None:
    assert router.allow_migrate("default", "audit")
    assert not router.allow_migrate(settings.TENANT_DB_ALIAS, "audit")
    assert router.allow_migrate(settings.TENANT_DB_ALIAS, "tenant_sql", database=settings.TENANT_DB_ALIAS)
