"""Restoring a client backup: as a new organisation next to the live one, or over a deleted one (undelete).

The dump is turned into SQL by ``pg_restore`` and streamed line by line into ``psql --single-transaction``:
outside ``COPY`` data the schema name and the two role names are rewritten to the target's, so a copy
gets its own schema and roles; data lines pass untouched. Nothing holds the dump in memory. The engine's
``schema_create`` makes the schema and roles first; the ledger rows follow, so the copy is not re-templated.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psycopg
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from psycopg import sql

from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ApplicationError, Conflict, NotFound, ValidationError, full_clean_or_raise
from ghostcrm.organizations.models import Organization
from operations import selectors
from operations.models import Backup, Outcome
from operations.services import bundle, pg
from tenants import roles as tenant_role_logins
from tenants import services as tenant_services
from tenants.db import tenant_connection
from tenants.engine.models import LEDGER_TABLE
from tenants.engine.services import schema_create, schema_drop, tenant_roles
from tenants.models import Domain, Tenant
from tenants.schema_names import schema_name_from_slug

Status = Organization.Status
LEDGER_KEYS = ("version", "description", "filename", "checksum", "applied_by", "applied_at", "duration_ms")
CREATE_SCHEMA = re.compile(r"^CREATE SCHEMA \S+;\s*$")


class Retarget:
    """Rewrites one SQL line of a dump from the source schema and roles to the target's."""

    def __init__(self, source: str, target: str) -> None:
        old, new = tenant_roles(source), tenant_roles(target)
        self.pairs: list[tuple[re.Pattern[str], str]] = []
        if source != target:
            for before, after in ((old.owner, new.owner), (old.app, new.app), (source, target)):
                self.pairs.append((re.compile(rf'(?<![\w".])("?){re.escape(before)}("?)(?![\w"])'), after))

    def __call__(self, line: str) -> str:
        for pattern, replacement in self.pairs:
            line = pattern.sub(lambda m, r=replacement: f"{m.group(1)}{r}{m.group(2)}", line)  # type: ignore[misc]
        return line


def _pump(source: IO[bytes], sink: IO[bytes], retarget: Retarget) -> None:
    in_copy = False
    for raw in source:
        if in_copy:
            sink.write(raw)
            in_copy = raw not in (b"\\.\n", b"\\.\r\n")
            continue
        line = retarget(raw.decode("utf-8"))
        if CREATE_SCHEMA.match(line):
            continue  # the engine created the schema (with its owner) already
        if line.startswith("COPY ") and line.rstrip().endswith("FROM stdin;"):
            in_copy = True
        sink.write(line.encode("utf-8"))


def load_dump(*, params: dict[str, Any], dump: Path, source: str, target: str) -> None:
    """Stream ``dump`` (pg_dump -Fc of ``source``) into schema ``target`` in one transaction."""
    env, args = pg.conn_args(params)
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        restore = subprocess.Popen(  # noqa: S603 - fixed program, no shell
            [pg.tool("pg_restore"), "--file", "-", str(dump)], stdout=subprocess.PIPE, stderr=restore_err, env=env
        )
        psql = subprocess.Popen(  # noqa: S603 - fixed program, no shell
            [pg.tool("psql"), *args, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", params["NAME"]],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_err,
            env=env,
        )
        assert restore.stdout is not None
        assert psql.stdin is not None
        try:
            _pump(restore.stdout, psql.stdin, Retarget(source, target))
            psql.stdin.close()
        except BrokenPipeError:
            restore.kill()  # psql stopped at an error: its stderr says which
        restore_code, psql_code = restore.wait(), psql.wait()
        if restore_code or psql_code:
            restore_err.seek(0)
            psql_err.seek(0)
            detail = (psql_err.read() or restore_err.read()).decode("utf-8", "replace").strip()
            raise ValidationError(f"Restoring schema {target} failed and was rolled back: {detail[:2000]}")


def _ledger_insert(params: dict[str, Any], target: str, ledger: list[dict[str, Any]]) -> None:
    with pg.connect(params, autocommit=False) as conn:
        conn.execute(f"DELETE FROM public.{LEDGER_TABLE} WHERE schema_name = %s", [target])
        for row in ledger:
            conn.execute(
                f"INSERT INTO public.{LEDGER_TABLE} (schema_name, version, description, filename, checksum,"
                " applied_by, applied_at, duration_ms, success, sqlstate, error, failed_statement)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, '', '', '')",
                [target, *(row[k] for k in LEDGER_KEYS)],
            )


def _default_privileges(params: dict[str, Any], manifest: dict[str, Any], target: str) -> None:
    new = tenant_roles(target)
    statements = pg.default_acl_statements(
        manifest.get("default_acl", []), roles=manifest.get("roles", {}), new_owner=new.owner, new_app=new.app
    )
    if statements:
        with pg.connect(params, autocommit=False) as conn:
            for statement in statements:
                conn.execute(statement)


def restore_into(
    *,
    backup: Backup,
    target: str,
    params: dict[str, Any],
    app_password: str | None,
    actor: Actor,
    drop_on_failure: bool = True,
) -> dict[str, Any]:
    """Create ``target`` (schema and roles) from ``backup``; returns the manifest.

    If anything fails the schema and its roles are dropped again (``drop_on_failure``), or left for the
    caller, whose roles may own other objects (a schema set aside).
    """
    with bundle.workdir() as folder:
        manifest, dump = bundle.fetch(name=backup.storage_name, workdir=Path(folder), expected_sha256=backup.sha256)
        schema_create(schema=target, app_password=app_password, actor=actor)
        try:
            load_dump(params=params, dump=dump, source=manifest["schema"], target=target)
            _ledger_insert(params, target, manifest.get("ledger", []))
            _default_privileges(params, manifest, target)
        except (ApplicationError, psycopg.Error, OSError):
            if drop_on_failure:
                schema_drop(schema=target, actor=actor)
            raise
    return manifest


@dataclass
class RestoreResult:
    organization: Organization
    backup: Backup
    undeleted: bool
    duration_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "organization": str(self.organization.pk),
            "slug": self.organization.slug,
            "schema": self.organization.schema_name,
            "status": self.organization.status,
            "backup": self.backup.pk,
            "undeleted": self.undeleted,
            "duration_ms": self.duration_ms,
        }


def _usable(backup: Backup) -> Backup:
    if backup.kind != Backup.Kind.TENANT or backup.outcome != Outcome.SUCCESS or backup.pruned_at is not None:
        raise Conflict(f"Backup #{backup.pk} is not a usable client backup (kind, outcome or pruned).")
    return backup


def _register(organization: Organization) -> None:
    alias = settings.TENANT_DB_ALIAS
    tenant_connection().set_schema_to_public()  # type: ignore[attr-defined]
    with transaction.atomic(using=alias):
        tenant = Tenant(schema_name=organization.schema_name, organization_id=organization.pk)
        tenant.save(using=alias)
        domain = f"{organization.slug}.{settings.TENANT_DOMAIN_SUFFIX}"
        Domain(domain=domain, tenant=tenant, is_primary=True).save(using=alias)


def _restore_as_copy(backup: Backup, slug: str, params: dict[str, Any], actor: Actor) -> Organization:
    if Organization.objects.filter(slug=slug).exists():
        raise Conflict(f"An organisation with slug {slug!r} exists; pick another name for the copy.")
    source = Organization.objects.filter(pk=backup.organization_id).first() if backup.organization_id else None
    now = timezone.now()
    organization = Organization(
        name=f"{source.name if source else backup.organization_slug} (restored {now:%Y-%m-%d})"[:200],
        slug=slug,
        schema_name=schema_name_from_slug(slug),
        admin_email=source.admin_email if source else f"admin@{slug}.invalid",
        status=Status.ACTIVE,
        status_changed_at=now,
        activated_at=now,
        app_role_password=secrets.token_urlsafe(32),
    )
    full_clean_or_raise(organization)
    restore_into(
        backup=backup,
        target=organization.schema_name,
        params=params,
        app_password=organization.app_role_password,
        actor=actor,
    )
    organization.save()
    _register(organization)
    return organization


def _restore_over_deleted(
    backup: Backup, organization: Organization, params: dict[str, Any], actor: Actor, suspended: bool
) -> Organization:
    schema = organization.schema_name
    aside = f"{schema[:40]}_pre_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier
    with pg.connect(params) as conn:
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone()
        if exists:
            conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(ident(schema), ident(aside)))
    try:
        restore_into(
            backup=backup,
            target=schema,
            params=params,
            app_password=organization.app_role_password,
            actor=actor,
            drop_on_failure=False,
        )
    except (ApplicationError, psycopg.Error, OSError):
        with pg.connect(params) as conn:  # the deleted client's schema comes back as it was
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(ident(schema)))
            if exists:
                conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(ident(aside), ident(schema)))
        raise
    if exists:
        with pg.connect(params) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(ident(aside)))
    target_status = Status.SUSPENDED if suspended else Status.ACTIVE
    organization = tenant_services.organization_transition(
        organization_id=organization.pk,
        to_status=target_status,
        actor=actor,
        step="undelete",
        reason=f"restored from backup #{backup.pk} ({backup.started_at:%Y-%m-%d %H:%M} UTC)",
        updates={"deleted_at": None, "purge_after": None},
    )
    if target_status == Status.ACTIVE:
        tenant_role_logins.app_role_enable(schema=schema)
    else:
        tenant_role_logins.app_role_disable(schema=schema)
    return organization


def organization_restore(
    *,
    slug: str,
    actor: Actor,
    backup_id: int | None = None,
    as_slug: str = "",
    to_server: str = "",
    suspended: bool = False,
) -> RestoreResult:
    """Restore ``slug``'s newest backup (or ``backup_id``): as ``as_slug``, or over the deleted organisation."""
    started = time.monotonic()
    backup = _usable(selectors.backup_get(backup_id=backup_id) if backup_id else selectors.latest_backup_for(slug=slug))
    if backup.organization_slug != slug:
        raise ValidationError(f"Backup #{backup.pk} belongs to {backup.organization_slug!r}, not {slug!r}.")
    servers = selectors.tenant_servers()
    server = to_server or backup.server
    if server not in servers:
        raise NotFound(f"There is no tenant server {server!r}; known: {', '.join(servers)}.", code="server_not_found")
    undeleted = not as_slug
    if as_slug:
        organization = _restore_as_copy(backup, as_slug, servers[server], actor)
    else:
        found = Organization.objects.filter(slug=slug).first()
        if found is None or found.status != Status.DELETED:
            state = "does not exist" if found is None else f"is {found.status}"
            raise Conflict(
                f"Organisation {slug!r} {state}: only a deleted (not purged) organisation is restored in place; "
                "restore it under a new name with --as NEW_SLUG."
            )
        organization = _restore_over_deleted(backup, found, servers[server], actor, suspended)
    duration = int((time.monotonic() - started) * 1000)
    audit_record(
        action="organization.restore",
        actor=actor,
        target=organization,
        message=f"restored from backup #{backup.pk} of {slug} on {server}"
        + (" (undeleted)" if undeleted else f" as a copy {organization.slug}"),
        duration_ms=duration,
    )
    return RestoreResult(organization=organization, backup=backup, undeleted=undeleted, duration_ms=duration)
