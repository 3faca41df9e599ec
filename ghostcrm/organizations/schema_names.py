"""Strict validation of PostgreSQL schema names for client schemas.

django-tenants' own check is loose; a schema name reaches SQL only after passing this, and then only as
``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

SCHEMA_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{2,62}$")
RESERVED_SCHEMAS = frozenset(
    {"public", "information_schema", "citus", "citus_internal", "columnar", "columnar_internal", "topology",
     "extensions", "default", "template", "tenant", "tenants", "admin", "postgres", "root", "repmgr", "pgbouncer"}
)  # fmt: skip
# PostgreSQL's reserved key words (pg_get_keywords() with catcode 'R'): not usable unquoted.
RESERVED_KEYWORDS = frozenset(
    [
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "current_catalog",
        "current_date",
        "current_role",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "initially",
        "intersect",
        "into",
        "lateral",
        "leading",
        "limit",
        "localtime",
        "localtimestamp",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "placing",
        "primary",
        "references",
        "returning",
        "select",
        "session_user",
        "some",
        "symmetric",
        "system_user",
        "table",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "when",
        "where",
        "window",
        "with",
    ]
)


def validate_schema_name(name: str) -> None:
    """Raise ``ValidationError`` with a sentence unless ``name`` is a safe client schema name."""
    if not isinstance(name, str) or not SCHEMA_NAME_RE.match(name):
        raise ValidationError(
            f"{name!r} is not a valid schema name: use 3 to 63 characters, lowercase letters, digits and "
            "underscores, starting with a letter.",
            code="invalid_schema_name",
        )
    if name.startswith("pg_") or name in RESERVED_SCHEMAS or name in RESERVED_KEYWORDS:
        raise ValidationError(
            f"{name!r} is a reserved name and cannot be a client schema.", code="reserved_schema_name"
        )


def schema_name_from_slug(slug: str) -> str:
    """The schema name for an organisation slug: hyphens become underscores."""
    return slug.replace("-", "_")
