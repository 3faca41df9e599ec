"""Explicit access to the tenant database.

django-tenants' ``schema_context`` reads the ``default`` connection, which is the main database here, so
we address the ``tenants`` connection ourselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ghostcrm.organizations.schema_names import validate_schema_name


def tenant_connection() -> BaseDatabaseWrapper:
    return connections[settings.TENANT_DB_ALIAS]


@contextmanager
def tenant_schema(schema_name: str) -> Iterator[BaseDatabaseWrapper]:
    """Point the tenant connection at one client schema for the block, then back at ``public``.

    Querysets must be evaluated inside the block: a lazy one evaluated later runs in ``public``.
    """
    validate_schema_name(schema_name)
    connection = tenant_connection()
    previous = connection.schema_name  # type: ignore[attr-defined]
    connection.set_schema(schema_name)  # type: ignore[attr-defined]
    try:
        yield connection
    finally:
        if previous and previous != schema_name:
            connection.set_schema(previous)  # type: ignore[attr-defined]
        else:
            connection.set_schema_to_public()  # type: ignore[attr-defined]
