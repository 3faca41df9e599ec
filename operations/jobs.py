"""Periodic RQ jobs of the operations area (scheduled in ``settings.PERIODIC_JOBS``); each calls one service."""

from __future__ import annotations

from typing import Any

from ghostcrm.core.system_settings import setting_value
from operations.services import backups, drills, retention


def tenant_backups_job() -> dict[str, Any]:
    """Back up every client with a schema (a failure is recorded per client, the others go on)."""
    return backups.backups_run().as_dict()["summary"]


def main_backup_job() -> int:
    return backups.main_backup().pk


def backups_prune_job() -> dict[str, Any]:
    return backups.backups_prune()


def backup_drill_job() -> dict[str, Any]:
    drill = drills.drill_run(sample=int(setting_value("backups.drill_sample")))
    return {"id": drill.pk, "outcome": drill.outcome, "checked": drill.checked, "failed": drill.failed}


def retention_job() -> dict[str, Any]:
    return retention.retention_run(dry_run=False).as_dict()
