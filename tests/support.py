"""Helpers shared by test modules (fixtures live in conftest.py files)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections


def tenant_conninfo(**overrides: Any) -> dict[str, Any]:
    """psycopg connection parameters for the tenant test database, as its configured user, autocommit."""
    params = connections[settings.TENANT_DB_ALIAS].settings_dict
    info: dict[str, Any] = {
        "host": params["HOST"] or "127.0.0.1",
        "port": params["PORT"] or 5432,
        "user": params["USER"] or None,
        "password": params["PASSWORD"] or None,
        "dbname": params["NAME"],
        "autocommit": True,
    }
    info.update(overrides)
    return info
