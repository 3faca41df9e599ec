"""The template engine's reads: status, validation and plans, from the central ledger.

Status over every tenant is ONE query (registry joined with the ledger, aggregated per schema in
PostgreSQL); the files on disk are read once and compared in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

from ghostcrm.core.errors import ValidationError
from tenants.engine.models import LEDGER_TABLE
from tenants.engine.naming import schema_name_check, scratch_tenant_id, tenant_roles
from tenants.engine.registry import registered_schemas, tenant_ids_for
from tenants.engine.templates import TemplateSet, template_set_read, templates_directory
from tenants.models import Tenant

__all__ = ["PlannedFile", "SchemaStatus", "registered_schemas", "schema_plan", "schemas_status", "schemas_validate"]


@dataclass
class SchemaStatus:
    schema: str
    registered: bool
    applied: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    drift: list[int] = field(default_factory=list)  # applied, and the file changed since
    unknown: list[int] = field(default_factory=list)  # applied, and no such file any more
    missing: list[int] = field(default_factory=list)  # pending although a later version is applied
    last_failure: dict[str, Any] | None = None
    last_applied_at: Any = None

    @property
    def state(self) -> str:
        if self.drift or self.unknown or self.missing:
            return "drift"
        if self.last_failure:
            return "failed"
        return "pending" if self.pending else "up_to_date"

    @property
    def valid(self) -> bool:
        return not (self.drift or self.unknown or self.missing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "registered": self.registered,
            "state": self.state,
            "applied": self.applied,
            "pending": self.pending,
            "drift": self.drift,
            "unknown": self.unknown,
            "missing": self.missing,
            "last_failure": self.last_failure,
            "last_applied_at": self.last_applied_at,
        }


STATUS_SQL = f"""
WITH targets AS ({{targets}}),
applied AS (
    SELECT l.schema_name, array_agg(l.version ORDER BY l.version) AS versions,
           array_agg(l.checksum ORDER BY l.version) AS checksums, max(l.applied_at) AS last_applied_at
    FROM public.{LEDGER_TABLE} l JOIN targets t ON t.schema_name = l.schema_name
    WHERE l.success
    GROUP BY l.schema_name
),
failures AS (
    SELECT DISTINCT ON (f.schema_name) f.schema_name, f.version, f.filename, f.sqlstate, f.error,
           f.failed_statement, f.failed_line, f.applied_at
    FROM public.{LEDGER_TABLE} f JOIN targets t ON t.schema_name = f.schema_name
    WHERE NOT f.success AND NOT EXISTS (
        SELECT 1 FROM public.{LEDGER_TABLE} s
        WHERE s.schema_name = f.schema_name AND s.version = f.version AND s.success
    )
    ORDER BY f.schema_name, f.applied_at DESC, f.id DESC
)
SELECT t.schema_name, t.registered, a.versions, a.checksums, a.last_applied_at,
       f.version, f.filename, f.sqlstate, f.error, f.failed_statement, f.failed_line, f.applied_at
FROM targets t
LEFT JOIN applied a ON a.schema_name = t.schema_name
LEFT JOIN failures f ON f.schema_name = t.schema_name
ORDER BY t.schema_name
"""


def schemas_status(*, schemas: list[str] | None = None, directory: Path | None = None) -> list[SchemaStatus]:
    """Status of the given schemas (registered or not), or of every registered tenant when ``None``.

    One query on the tenant database, whatever the number of schemas.
    """
    return _statuses(schemas=schemas, templates=template_set_read(templates_directory(directory)))


def _statuses(*, schemas: list[str] | None, templates: TemplateSet) -> list[SchemaStatus]:
    tenant_table = f"public.{Tenant._meta.db_table}"
    if schemas is None:
        targets = f"SELECT schema_name::text, true AS registered FROM {tenant_table} WHERE schema_name <> 'public'"
        params: list[Any] = []
    else:
        for schema in schemas:
            schema_name_check(schema)
        targets = (
            f"SELECT s AS schema_name, EXISTS (SELECT 1 FROM {tenant_table} r WHERE r.schema_name = s) AS registered"
            " FROM unnest(%s::text[]) AS s"
        )
        params = [list(dict.fromkeys(schemas))]
    with connections[settings.TENANT_DB_ALIAS].cursor() as cursor:
        cursor.execute(STATUS_SQL.format(targets=targets), params)
        rows = cursor.fetchall()
    return [_status_from_row(row, templates) for row in rows]


def _status_from_row(row: tuple[Any, ...], templates: TemplateSet) -> SchemaStatus:
    schema, registered, versions, checksums, last_applied_at = row[:5]
    status = SchemaStatus(schema=schema, registered=registered, last_applied_at=last_applied_at)
    applied = dict(zip(versions or (), checksums or (), strict=True))
    by_version = templates.by_version
    status.applied = sorted(applied)
    status.pending = [v for v in sorted(by_version) if v not in applied]
    status.drift = [v for v in status.applied if v in by_version and by_version[v].checksum != applied[v]]
    status.unknown = [v for v in status.applied if v not in by_version]
    top = max(applied, default=0)
    status.missing = [v for v in status.pending if v < top]
    if row[5] is not None:
        status.last_failure = {
            "version": row[5],
            "filename": row[6],
            "sqlstate": row[7],
            "error": row[8],
            "statement": row[9],
            "line": row[10],
            "at": row[11],
        }
    return status


def schemas_validate(*, schemas: list[str] | None = None, directory: Path | None = None) -> list[SchemaStatus]:
    """The statuses whose applied files no longer match the directory (drift, unknown or missing versions)."""
    return [s for s in schemas_status(schemas=schemas, directory=directory) if not s.valid]


@dataclass(frozen=True)
class PlannedFile:
    version: int
    filename: str
    checksum: str
    transaction: bool
    sql: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "filename": self.filename,
            "checksum": self.checksum,
            "transaction": self.transaction,
            "sql": self.sql,
        }


def schema_plan(*, schema: str, directory: Path | None = None) -> list[PlannedFile]:
    """What ``apply`` would run in ``schema``, in order, with the SQL as it would be sent. Changes nothing."""
    schema_name_check(schema)
    templates = template_set_read(templates_directory(directory))
    blocking = templates.blocking_problems()
    if blocking:
        raise ValidationError(
            f"The templates in {templates.directory} have problems; run tenant_sql lint: {blocking[0]}.",
            code="templates_invalid",
        )
    status = _statuses(schemas=[schema], templates=templates)[0]
    tenant_id = tenant_ids_for([schema]).get(schema) or scratch_tenant_id(schema)
    roles = tenant_roles(schema)
    by_version = templates.by_version
    return [
        PlannedFile(
            version=v,
            filename=by_version[v].filename,
            checksum=by_version[v].checksum,
            transaction=not by_version[v].no_transaction,
            sql=by_version[v].render(owner_role=roles.owner, app_role=roles.app, tenant_id=tenant_id),
        )
        for v in status.pending
    ]
