"""One router decides, model by model, which database a model lives in.

A model that lives in the tenant PostgreSQL database (the django-tenants registry, the template ledger)
says so with a class attribute ``database_alias = settings.TENANT_DB_ALIAS``; every other model lives
in the main database. There are no relations across the two.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, models


def database_for_model(model: type[models.Model]) -> str:
    return getattr(model, "database_alias", DEFAULT_DB_ALIAS)


class DatabaseRouter:
    def db_for_read(self, model: type[models.Model], **hints: Any) -> str:
        return database_for_model(model)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str:
        return database_for_model(model)

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool:
        return database_for_model(type(obj1)) == database_for_model(type(obj2))

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        if model_name is None:
            # RunSQL / RunPython operations name their database explicitly, else they are main-database work.
            return db == hints.get("database", DEFAULT_DB_ALIAS)
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:  # a model since removed from the code: its history belongs to the main database
            return db == DEFAULT_DB_ALIAS
        if db not in {DEFAULT_DB_ALIAS, settings.TENANT_DB_ALIAS}:
            return False
        return db == database_for_model(model)
