"""Leaving: the deprovisioning job (end sessions, export, mark deleted) and the retention purge."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import Conflict
from ghostcrm.core.system_settings import setting_value
from ghostcrm.organizations.models import Organization
from tenants import roles, services
from tenants.db import tenant_connection
from tenants.engine.services import schema_drop
from tenants.models import Domain, Tenant
from tenants.provisioning import backups
from tenants.provisioning.locks import organization_lock
from tenants.provisioning.steps import SYSTEM, run_step

Status = Organization.Status


def _export_step(organization: Organization, exported: list[Path]) -> str:
    roles.app_role_disable(schema=organization.schema_name)
    exported.append(backups.schema_export(schema=organization.schema_name))
    return f"schema {organization.schema_name} exported to {exported[0]}"


def organization_deprovision_run(*, organization_id: str, job_id: str = "") -> str:
    """Deprovisioning job: end the tenant's sessions, export its schema, mark it deleted with a purge date."""
    with organization_lock(organization_id):
        organization = Organization.objects.get(pk=organization_id)
        if organization.status != Status.DEPROVISIONING:
            return organization.status
        export_path = ""
        clock = time.monotonic()
        if backups.schema_exists(organization.schema_name):
            exported: list[Path] = []
            # An operation row of its own, so a failing pg_dump shows in the admin like any provisioning step.
            run_step(
                organization,
                step="export",
                job_id=job_id,
                attempt=services.operation_next_attempt(organization=organization, step="export"),
                func=lambda org: _export_step(org, exported),
            )
            export_path = str(exported[0])
        retention = int(setting_value("provisioning.retention_days"))
        now = timezone.now()
        services.organization_transition(
            organization_id=organization_id,
            to_status=Status.DELETED,
            actor=SYSTEM,
            step="delete",
            reason=(f"exported to {export_path}" if export_path else "no schema to export")
            + f" in {int((time.monotonic() - clock) * 1000)} ms; purge after {retention} day(s)",
            job_id=job_id,
            updates={"deleted_at": now, "purge_after": now + timedelta(days=retention), "export_path": export_path},
        )
        return Status.DELETED


def organization_purge(*, organization_id: str, actor: Actor = SYSTEM) -> Organization:
    """Drop the schema, its roles and the registry rows of a deleted organisation; the export stays."""
    with organization_lock(organization_id):
        organization = Organization.objects.get(pk=organization_id)
        if organization.status != Status.DELETED:
            raise Conflict(
                f"Organisation {organization.slug!r} is {organization.status}; only deleted organisations are purged.",
                code="invalid_transition",
            )
        schema_drop(schema=organization.schema_name, actor=actor)
        alias = settings.TENANT_DB_ALIAS
        tenant_connection().set_schema_to_public()  # type: ignore[attr-defined]
        with transaction.atomic(using=alias):
            Domain.objects.using(alias).filter(tenant__organization_id=organization.pk).delete()
            Tenant.objects.using(alias).filter(organization_id=organization.pk).delete()
        return services.organization_transition(
            organization_id=organization_id,
            to_status=Status.PURGED,
            actor=actor,
            step="purge",
            reason=f"schema {organization.schema_name} dropped; export kept at {organization.export_path or '-'}",
        )
