"""Tell an operator which database cannot be reached, by the variable that configures it."""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db import Error as DatabaseError

from ghostcrm.dburl import redact

VARIABLES = {DEFAULT_DB_ALIAS: ("main", "MAIN_DATABASE_URL"), "tenants": ("tenant", "TENANT_DATABASE_URL")}


def describe_unreachable() -> str | None:
    """A sentence about the first database that does not answer, or None when both answer."""
    for alias, (label, variable) in VARIABLES.items():
        connection = connections[alias]
        try:
            connection.close()
            connection.ensure_connection()
        except DatabaseError as exc:
            url = redact(getattr(settings, variable, ""))
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return (
                f"cannot connect to the {label} database at {url} ({variable}): {reason}. "
                f"Start that server or correct {variable}."
            )
    return None
