"""Taking backups (client schemas, the main database) and pruning them grandfather-father-son."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from django.utils import timezone

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ApplicationError, Conflict, NotFound
from ghostcrm.core.system_settings import setting_value
from ghostcrm.organizations.models import Organization
from operations import selectors
from operations.models import Backup, Outcome
from operations.services import bundle, pg
from operations.storage import backups_storage
from tenants.engine.models import LEDGER_TABLE
from tenants.engine.services import tenant_roles

logger = logging.getLogger(__name__)
SYSTEM = Actor.system("backups")
BACKED_UP = ("active", "suspended", "deleted", "deprovisioning", "failed")
LEDGER_COLUMNS = ("version", "description", "filename", "checksum", "applied_by", "applied_at", "duration_ms")
Progress = Callable[[str], None]


def _finish(backup: Backup, *, outcome: str, error: str = "", **fields: Any) -> Backup:
    backup.finished_at = timezone.now()
    backup.duration_ms = int((backup.finished_at - backup.started_at).total_seconds() * 1000)
    backup.outcome = outcome
    backup.error = error[:10000]
    for name, value in fields.items():
        setattr(backup, name, value)
    backup.save()
    return backup


def _audit(backup: Backup, actor: Actor, action: str) -> None:
    audit_record(
        action=action,
        actor=actor,
        target=backup,
        organization_id=backup.organization_id,
        outcome=AuditEvent.Outcome.SUCCESS if backup.outcome == Outcome.SUCCESS else AuditEvent.Outcome.FAILURE,
        message=(
            f"{backup.storage_name} ({backup.size_bytes} bytes, key {backup.key_id})"
            if backup.outcome == Outcome.SUCCESS
            else backup.error[:2000]
        ),
        duration_ms=backup.duration_ms,
    )


def _snapshot_dump(params: dict[str, Any], schema: str, target: Path) -> dict[str, Any]:
    """Dump ``schema`` and take its facts and ledger rows, all in one exported snapshot."""
    conn = pg.connect(params, autocommit=False)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone() is None:
            raise NotFound(f"Schema {schema!r} does not exist on its server.", code="schema_not_found")
        facts = pg.schema_facts(conn, schema)
        ledger = conn.execute(
            f"SELECT {', '.join(LEDGER_COLUMNS)} FROM public.{LEDGER_TABLE}"
            " WHERE schema_name = %s AND success ORDER BY version",
            [schema],
        ).fetchall()
        default_acl = pg.owner_default_acl(conn, tenant_roles(schema).owner)
        pg.pg_dump(params, target=target, schema=schema, snapshot=snapshot)
    finally:
        conn.close()
    facts["ledger"] = [dict(zip(LEDGER_COLUMNS, row, strict=True)) for row in ledger]
    roles = tenant_roles(schema)
    facts["roles"] = {"owner": roles.owner, "app": roles.app}
    facts["default_acl"] = default_acl
    return facts


def tenant_backup(*, organization_id: uuid.UUID | str, actor: Actor = SYSTEM) -> Backup:
    """Back up one client: its schema (``pg_dump -Fc -n``) and ledger rows, encrypted into the storage."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        raise NotFound(f"There is no organisation with id {organization_id}.", code="organization_not_found")
    if organization.status not in BACKED_UP:
        raise Conflict(f"Organisation {organization.slug!r} is {organization.status}: it has no schema to back up.")
    server = selectors.server_of(organization)
    backup = Backup.objects.create(
        kind=Backup.Kind.TENANT,
        organization_id=organization.pk,
        organization_slug=organization.slug,
        schema_name=organization.schema_name,
        server=server,
        engine="postgresql",
        started_at=timezone.now(),
    )
    stamp = backup.started_at.strftime("%Y%m%dT%H%M%SZ")
    try:
        with bundle.workdir() as folder:
            dump = Path(folder) / "schema.dump"
            facts = _snapshot_dump(selectors.tenant_servers()[server], organization.schema_name, dump)
            manifest = {"kind": "tenant", "slug": organization.slug, "schema": organization.schema_name, **facts}
            stored = bundle.store(
                manifest=manifest,
                payload=dump,
                name=f"tenants/{organization.slug}/{organization.slug}-{stamp}-{backup.pk}.gcbk",
                workdir=Path(folder),
            )
    except (ApplicationError, psycopg.Error, OSError) as exc:
        _finish(backup, outcome=Outcome.FAILURE, error=str(exc))
        _audit(backup, actor, "backup.tenant")
        raise
    _finish(
        backup,
        outcome=Outcome.SUCCESS,
        storage_name=stored.name,
        size_bytes=stored.size,
        sha256=stored.sha256,
        key_id=stored.key_id,
        manifest={k: v for k, v in facts.items() if k not in ("ledger", "default_acl")}
        | {"ledger_rows": len(facts["ledger"])},
    )
    _audit(backup, actor, "backup.tenant")
    return backup


@dataclass
class RunReport:
    backups: list[Backup] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "succeeded": [backup_as_dict(b) for b in self.backups],
            "failed": self.failures,
            "summary": {"succeeded": len(self.backups), "failed": len(self.failures)},
        }


def backups_run(*, slugs: Iterable[str] = (), actor: Actor = SYSTEM, progress: Progress | None = None) -> RunReport:
    """Back up the named clients, or every client with a schema; one failure does not stop the others."""
    wanted = list(slugs)
    found = Organization.objects.filter(status__in=BACKED_UP).order_by("slug")
    if wanted:
        found = Organization.objects.filter(slug__in=wanted).order_by("slug")
        missing = sorted(set(wanted) - set(found.values_list("slug", flat=True)))
        if missing:
            raise NotFound(f"No organisation with slug {', '.join(missing)}.", code="organization_not_found")
    report = RunReport()
    organizations = list(found.values_list("pk", "slug"))
    for position, (organization_id, slug) in enumerate(organizations, start=1):
        started = time.monotonic()
        try:
            backup = tenant_backup(organization_id=organization_id, actor=actor)
        except (ApplicationError, psycopg.Error, OSError) as exc:
            report.failures.append({"slug": slug, "error": str(exc)})
            note = f"FAILED: {exc}"
        else:
            report.backups.append(backup)
            note = f"{backup.size_bytes} bytes"
        if progress is not None:
            progress(f"[{position}/{len(organizations)}] {slug}: {note} ({time.monotonic() - started:.1f}s)")
    return report


def backup_as_dict(backup: Backup) -> dict[str, Any]:
    return {
        "id": backup.pk,
        "kind": backup.kind,
        "slug": backup.organization_slug,
        "server": backup.server,
        "engine": backup.engine,
        "file": backup.storage_name,
        "size_bytes": backup.size_bytes,
        "sha256": backup.sha256,
        "key_id": backup.key_id,
        "outcome": backup.outcome,
        "error": backup.error,
        "started_at": backup.started_at,
        "finished_at": backup.finished_at,
        "duration_ms": backup.duration_ms,
        "pruned_at": backup.pruned_at,
    }


# --- the main database -------------------------------------------------------------------------------


def mssql_backup_statement(*, database: str, target: str, stamp: str) -> str:
    """The SQL Server statement for a full backup: ``TO URL`` for an https target, else ``TO DISK``.

    Not run against a SQL Server here (none is available); see docs/operations.md.
    """
    if not target:
        raise ApplicationError("Set MSSQL_BACKUP_TARGET (a folder on the server or an https:// container URL).")
    quoted = database.replace("]", "]]")
    where = "URL" if target.startswith("https://") else "DISK"
    separator = "/" if where == "URL" else "\\"
    location = f"{target.rstrip('/')}{separator}{database}-{stamp}.bak".replace("'", "''")
    return (
        f"BACKUP DATABASE [{quoted}] TO {where} = N'{location}' "
        "WITH COMPRESSION, CHECKSUM, COPY_ONLY, FORMAT, INIT, STATS = 10"
    )


def _main_payload(target: Path) -> str:
    params = connections["default"].settings_dict
    vendor = connections["default"].vendor
    if vendor == "postgresql":
        pg.pg_dump(dict(params), target=target)
    elif vendor == "sqlite":
        # The online backup API on Django's own connection (a file, or a test's in-memory database): consistent
        # while the site runs.
        if connections["default"].in_atomic_block:
            # Its own open write transaction would make the copy wait for itself, for ever.
            raise ApplicationError("A SQLite main-database backup runs outside a transaction; call it on its own.")
        connections["default"].ensure_connection()
        destination = sqlite3.connect(str(target))
        try:
            connections["default"].connection.backup(destination)
        finally:
            destination.close()
    else:
        raise ApplicationError(f"No file backup for the {vendor} main database; SQL Server backs up itself.")
    return vendor


def main_backup(*, actor: Actor = SYSTEM) -> Backup:
    """Back up the main database: pg_dump -Fc, SQLite's online backup, or SQL Server's BACKUP DATABASE."""
    vendor = connections["default"].vendor
    backup = Backup.objects.create(kind=Backup.Kind.MAIN, server="main", engine=vendor, started_at=timezone.now())
    stamp = backup.started_at.strftime("%Y%m%dT%H%M%SZ")
    try:
        if vendor == "microsoft":
            statement = mssql_backup_statement(
                database=str(connections["default"].settings_dict["NAME"]),
                target=settings.MSSQL_BACKUP_TARGET,
                stamp=stamp,
            )
            with connections["default"].cursor() as cursor:
                cursor.execute(statement)
            _finish(backup, outcome=Outcome.SUCCESS, storage_name=statement, manifest={"statement": statement})
        else:
            with bundle.workdir() as folder:
                payload = Path(folder) / "main.dump"
                _main_payload(payload)
                stored = bundle.store(
                    manifest={"kind": "main", "engine": vendor},
                    payload=payload,
                    name=f"main/{vendor}-{stamp}-{backup.pk}.gcbk",
                    workdir=Path(folder),
                )
            _finish(
                backup,
                outcome=Outcome.SUCCESS,
                storage_name=stored.name,
                size_bytes=stored.size,
                sha256=stored.sha256,
                key_id=stored.key_id,
            )
    except (ApplicationError, psycopg.Error, OSError, sqlite3.Error) as exc:
        _finish(backup, outcome=Outcome.FAILURE, error=str(exc))
        _audit(backup, actor, "backup.main")
        raise
    _audit(backup, actor, "backup.main")
    return backup


# --- grandfather-father-son pruning ------------------------------------------------------------------


def _months_back(day: dt.date, months: int) -> tuple[int, int]:
    index = day.year * 12 + day.month - 1 - months
    return index // 12, index % 12 + 1


def gfs_keep(stamps: list[dt.datetime], *, now: dt.datetime, daily: int, weekly: int, monthly: int) -> set[int]:
    """Indexes of ``stamps`` (newest first) kept: the newest of each of the last ``daily`` calendar days, of
    the last ``weekly`` ISO weeks and of the last ``monthly`` months, counted back from ``now``; the newest
    backup always."""
    today = now.astimezone(dt.UTC).date()
    week_start = today - dt.timedelta(days=today.weekday())
    windows: list[tuple[Callable[[dt.date], Any], Callable[[dt.date], bool]]] = [
        (lambda d: d, lambda d: d > today - dt.timedelta(days=daily)),
        (lambda d: d.isocalendar()[:2], lambda d: d >= week_start - dt.timedelta(weeks=weekly - 1) and weekly > 0),
        (lambda d: (d.year, d.month), lambda d: monthly > 0 and (d.year, d.month) >= _months_back(today, monthly - 1)),
    ]
    keep: set[int] = {0} if stamps else set()
    for period, inside in windows:
        seen: set[Any] = set()
        for index, stamp in enumerate(stamps):
            day = stamp.astimezone(dt.UTC).date()
            if inside(day) and period(day) not in seen:
                seen.add(period(day))
                keep.add(index)
    return keep


def backups_prune(*, dry_run: bool = False, actor: Actor = SYSTEM) -> dict[str, Any]:
    """Remove the files of successful backups that the GFS policy no longer keeps; the rows stay."""
    daily, weekly, monthly = (int(setting_value(f"backups.keep_{k}")) for k in ("daily", "weekly", "monthly"))
    live = Backup.objects.filter(outcome=Outcome.SUCCESS, pruned_at__isnull=True).exclude(engine="microsoft")
    groups: dict[tuple[str, str], list[Backup]] = {}
    for backup in live.order_by("-started_at", "-id"):
        groups.setdefault((backup.kind, backup.organization_slug), []).append(backup)
    pruned: list[int] = []
    storage = backups_storage()
    now = timezone.now()
    for group in groups.values():
        kept = gfs_keep([b.started_at for b in group], now=now, daily=daily, weekly=weekly, monthly=monthly)
        for index, backup in enumerate(group):
            if index in kept:
                continue
            pruned.append(backup.pk)
            if not dry_run:
                storage.delete(backup.storage_name)
                backup.pruned_at = timezone.now()
                backup.save(update_fields=["pruned_at"])
    result = {"dry_run": dry_run, "pruned": pruned, "kept": live.count() - (0 if dry_run else len(pruned))}
    if not dry_run and pruned:
        audit_record(
            action="backup.prune",
            actor=actor,
            target_type="operations.backup",
            message=f"{len(pruned)} backup file(s) pruned (daily {daily}, weekly {weekly}, monthly {monthly})",
            after={"pruned": pruned},
        )
    return result
