"""Restore drills: prove that recent backups restore, and restore to what was dumped."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from django.utils import timezone

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ApplicationError
from operations import selectors
from operations.models import Backup, DrillRun, Outcome
from operations.services import pg
from operations.services.restore import restore_into
from tenants.engine.services import schema_drop

logger = logging.getLogger(__name__)
SYSTEM = Actor.system("restore drill")


def drill_candidates(sample: int) -> list[Backup]:
    """The newest usable backup of each of the ``sample`` most recently backed-up clients."""
    chosen: dict[str, Backup] = {}
    usable = Backup.objects.filter(kind=Backup.Kind.TENANT, outcome=Outcome.SUCCESS, pruned_at__isnull=True)
    for backup in usable.order_by("-started_at", "-id").iterator():
        chosen.setdefault(backup.organization_slug, backup)
        if len(chosen) >= sample:
            break
    return list(chosen.values())


def compare(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """Differences between the facts taken at backup time and those of the restored copy."""
    differences = []
    if expected.get("fingerprint") != found["fingerprint"]:
        differences.append(
            f"catalog fingerprint {found['fingerprint'][:12]} differs from {str(expected.get('fingerprint'))[:12]}"
        )
    before, after = expected.get("row_counts", {}), found["row_counts"]
    for table in sorted(set(before) | set(after)):
        if before.get(table) != after.get(table):
            differences.append(f"{table}: {after.get(table)} rows, {before.get(table)} at backup time")
    return differences


def drill_one(backup: Backup) -> dict[str, Any]:
    """Restore ``backup`` into a scratch schema, compare, drop it. Never raises for a bad backup."""
    scratch = f"drill_{uuid.uuid4().hex[:12]}"
    params = selectors.tenant_servers().get(backup.server) or selectors.tenant_servers()[selectors.PRIMARY_SERVER]
    result: dict[str, Any] = {"backup": backup.pk, "slug": backup.organization_slug, "scratch_schema": scratch}
    try:
        restore_into(backup=backup, target=scratch, params=params, app_password=None, actor=SYSTEM)
    except (ApplicationError, psycopg.Error, OSError) as exc:
        return result | {"ok": False, "differences": [f"restore failed: {exc}"]}
    try:
        with pg.connect(params, autocommit=False) as conn:
            found = pg.schema_facts(conn, scratch)
        differences = compare(backup.manifest, found)
    finally:
        schema_drop(schema=scratch, actor=SYSTEM)
    return result | {"ok": not differences, "differences": differences, "tables": len(found["row_counts"])}


def drill_run(*, sample: int, actor: Actor = SYSTEM, progress: Callable[[str], None] | None = None) -> DrillRun:
    """Restore the ``sample`` newest client backups into scratch schemas and check each; recorded and audited."""
    drill = DrillRun.objects.create(sample=sample, started_at=timezone.now())
    candidates = drill_candidates(sample)
    results = []
    for position, backup in enumerate(candidates, start=1):
        outcome = drill_one(backup)
        results.append(outcome)
        if progress is not None:
            verdict = "ok" if outcome["ok"] else "FAILED: " + "; ".join(outcome["differences"])
            progress(f"[{position}/{len(candidates)}] backup #{backup.pk} of {backup.organization_slug}: {verdict}")
    drill.results = results
    drill.checked = len(results)
    drill.failed = sum(1 for r in results if not r["ok"])
    drill.outcome = Outcome.FAILURE if drill.failed or not results else Outcome.SUCCESS
    drill.error = "" if results else "No usable client backup to restore."
    drill.finished_at = timezone.now()
    drill.duration_ms = int((drill.finished_at - drill.started_at).total_seconds() * 1000)
    drill.save()
    audit_record(
        action="backup.drill",
        actor=actor,
        target=drill,
        outcome=AuditEvent.Outcome.SUCCESS if drill.outcome == Outcome.SUCCESS else AuditEvent.Outcome.FAILURE,
        message=f"{drill.checked} backup(s) restored and compared, {drill.failed} failed"
        + (f": {drill.error}" if drill.error else ""),
        duration_ms=drill.duration_ms,
    )
    if drill.outcome == Outcome.FAILURE:
        logger.error("restore drill #%s failed: %s", drill.pk, drill.error or results)
    return drill
