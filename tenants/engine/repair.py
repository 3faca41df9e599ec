"""``tenant_sql repair``: clear a schema's failure records and re-checksum its applied files (audited)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections, transaction

from ghostcrm.audit.services import Actor, audit_record
from tenants.engine.models import TemplateApplication
from tenants.engine.naming import schema_lock_key, schema_name_check
from tenants.engine.templates import template_set_read, templates_directory


@dataclass
class RepairResult:
    schema: str
    failures_cleared: list[dict[str, Any]]
    checksums_updated: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def schema_repair(*, schema: str, directory: Path | None = None, actor: Actor | None = None) -> RepairResult:
    """After a human fixed things: clear the schema's outstanding failure records and re-checksum its applied
    files from disk (Flyway's ``repair``). Audited with what was cleared and changed."""
    schema_name_check(schema)
    by_version = template_set_read(templates_directory(directory)).by_version
    alias = settings.TENANT_DB_ALIAS
    with transaction.atomic(using=alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [schema_lock_key(schema)])
        rows = list(TemplateApplication.objects.using(alias).select_for_update().filter(schema_name=schema))
        applied = {r.version for r in rows if r.success}
        cleared = [r for r in rows if not r.success and r.version not in applied]
        updated: list[dict[str, Any]] = []
        for row in rows:
            template = by_version.get(row.version)
            if row.success and template is not None and template.checksum != row.checksum:
                updated.append({"version": row.version, "old": row.checksum, "new": template.checksum})
                row.checksum = template.checksum
                row.filename, row.description = template.filename, template.description
                row.full_clean()
                row.save(using=alias, update_fields=["checksum", "filename", "description"])
        cleared_info = [
            {"version": r.version, "filename": r.filename, "error": r.error, "applied_at": r.applied_at}
            for r in cleared
        ]
        TemplateApplication.objects.using(alias).filter(pk__in=[r.pk for r in cleared]).delete()
    result = RepairResult(schema=schema, failures_cleared=cleared_info, checksums_updated=updated)
    audit_record(
        action="tenant_sql.repair",
        actor=actor or Actor.system("tenant_sql"),
        target_type="tenant_sql.schema",
        target_id=schema,
        target_repr=schema,
        before={"failures": cleared_info, "checksums": {u["version"]: u["old"] for u in updated}},
        after={"checksums": {u["version"]: u["new"] for u in updated}},
        message=f"{len(cleared_info)} failure record(s) cleared, {len(updated)} checksum(s) updated",
    )
    return result
