"""Exports and restores of one client schema: ``pg_dump -n`` plus its ledger rows, and ``psql`` back in."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from psycopg import sql

from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ApplicationError, Conflict, NotFound, TransientError, ValidationError
from ghostcrm.organizations.models import Organization
from ghostcrm.organizations.schema_names import validate_schema_name
from tenants import roles, selectors
from tenants.db import tenant_connection
from tenants.engine.models import TemplateApplication
from tenants.engine.services import schema_create, schema_drop, schema_name_check
from tenants.provisioning.steps import step_registry

Status = Organization.Status


def backups_dir() -> Path:
    folder = Path(settings.TENANT_BACKUPS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def pg_env_and_args() -> tuple[dict[str, str], list[str]]:
    params = tenant_connection().settings_dict
    env = {**os.environ}
    if params.get("PASSWORD"):
        env["PGPASSWORD"] = str(params["PASSWORD"])
    args = ["-h", str(params.get("HOST") or "127.0.0.1"), "-p", str(params.get("PORT") or 5432)]
    if params.get("USER"):
        args += ["-U", str(params["USER"])]
    return env, args


def schema_exists(schema: str) -> bool:
    with tenant_connection().cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return cursor.fetchone() is not None


def _ledger_sql(schema: str) -> str:
    """The schema's successful ledger rows as INSERTs, so a restored schema is not re-templated."""
    columns = [
        "schema_name", "version", "description", "filename", "checksum", "applied_by", "applied_at", "duration_ms",
        "success", "sqlstate", "error", "failed_statement", "failed_line",
    ]  # fmt: skip
    rows = TemplateApplication.objects.using(settings.TENANT_DB_ALIAS).filter(schema_name=schema, success=True)
    connection = tenant_connection()
    connection.ensure_connection()
    statements = []
    for row in rows.order_by("version").values_list(*columns):
        statement = sql.SQL("INSERT INTO public.{} ({}) VALUES ({}) ON CONFLICT DO NOTHING;").format(
            sql.Identifier(TemplateApplication._meta.db_table),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            sql.SQL(", ").join(sql.Literal(v) for v in row),
        )
        statements.append(statement.as_string(connection.connection))
    return "\n".join([f"\n-- ghostcrm: template ledger of schema {schema}", *statements, ""])


def schema_export(*, schema: str, destination: Path | None = None) -> Path:
    """``pg_dump -n <schema>`` (plain SQL, owners and grants kept) plus its ledger rows; returns the file."""
    validate_schema_name(schema)
    if not schema_exists(schema):
        raise NotFound(f"Schema {schema!r} does not exist in the tenant database.", code="schema_not_found")
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise ApplicationError("pg_dump is not installed on this machine; install the PostgreSQL client tools.")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    target = destination or backups_dir() / f"{schema}-{stamp}.sql"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    env, args = pg_env_and_args()
    dbname = str(tenant_connection().settings_dict["NAME"])
    result = subprocess.run(  # noqa: S603 - fixed program, validated schema name, no shell
        [pg_dump, *args, "--schema", schema, "--file", str(partial), "--no-password", dbname],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise TransientError(f"pg_dump of schema {schema!r} failed: {result.stderr.strip()[:2000]}")
    with partial.open("a", encoding="utf-8") as handle:
        handle.write(_ledger_sql(schema))
    partial.replace(target)  # an export file is either complete or absent
    return target


CREATE_SCHEMA_RE = re.compile(r'^CREATE SCHEMA "?([a-z][a-z0-9_]{2,62})"?;$', re.MULTILINE)


def schema_restore(*, path: Path, actor: Actor) -> str:
    """Restore a schema exported by ``schema_export`` into the tenant database; returns the schema name.

    Refused when the schema exists. The schema and its roles are created first (the engine's
    ``schema_create``, with the organisation's stored password when there is one), then the dump runs in one
    transaction; if it fails, what was created is dropped again.
    """
    if not path.is_file():
        raise NotFound(f"{path} is not a file.", code="file_not_found")
    text = path.read_text(encoding="utf-8")
    found = CREATE_SCHEMA_RE.findall(text)
    if len(found) != 1:
        raise ValidationError(f"{path} is not a one-schema export (found {len(found)} CREATE SCHEMA statements).")
    schema = schema_name_check(found[0])
    if schema_exists(schema):
        raise Conflict(f"Schema {schema!r} already exists; drop or rename it before restoring.", code="schema_exists")
    psql = shutil.which("psql")
    if psql is None:
        raise ApplicationError("psql is not installed on this machine; install the PostgreSQL client tools.")
    organization = Organization.objects.filter(schema_name=schema).first()
    password = organization.app_role_password if organization is not None else None
    started = time.monotonic()
    schema_create(schema=schema, app_password=password or None, actor=actor)
    # The schema now exists with its owner: the dump's own CREATE SCHEMA would fail, so it is left out.
    body = CREATE_SCHEMA_RE.sub("", text, count=1)
    env, args = pg_env_and_args()
    dbname = str(tenant_connection().settings_dict["NAME"])
    result = subprocess.run(  # noqa: S603 - fixed program, no shell
        [psql, *args, "--no-password", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", dbname],
        input=body,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        schema_drop(schema=schema, actor=actor)
        raise ValidationError(f"Restoring {path.name} failed and was rolled back: {result.stderr.strip()[:2000]}")
    if organization is None or organization.status != Status.ACTIVE:
        roles.app_role_disable(schema=schema)  # only an active organisation's CRM may log in
    if organization is not None and organization.status in {Status.ACTIVE, Status.SUSPENDED}:
        step_registry(organization)
    audit_record(
        action="tenant_sql.schema_restore",
        actor=actor,
        target_type="tenant_sql.schema",
        target_id=schema,
        target_repr=schema,
        organization_id=organization.pk if organization is not None else None,
        message=f"restored from {path}",
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return schema


def organization_export(*, organization_id: uuid.UUID | str, actor: Actor, destination: Path | None = None) -> Path:
    """Export an organisation's schema now (backups, moves); audited."""
    organization = selectors.organization_get(organization_id=organization_id)
    started = time.monotonic()
    path = schema_export(schema=organization.schema_name, destination=destination)
    audit_record(
        action="organization.export",
        actor=actor,
        target=organization,
        message=f"schema {organization.schema_name} exported to {path}",
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return path
