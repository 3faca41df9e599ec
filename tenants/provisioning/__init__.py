"""Provisioning, one module per action: ``locks`` (one worker per organisation), ``steps`` (each idempotent
step and how it is recorded), ``runner`` (the provisioning job), ``backups`` (export and restore),
``deprovision`` (leaving and the retention purge), ``reconciler`` (the periodic repair) and ``receivers``.
"""

from tenants.provisioning.backups import organization_export, schema_export, schema_restore
from tenants.provisioning.deprovision import organization_deprovision_run, organization_purge
from tenants.provisioning.locks import ADVISORY_NAMESPACE, OrganizationBusy, lock_key, organization_lock
from tenants.provisioning.reconciler import logins_reconcile, organizations_reconcile, stuck_organizations
from tenants.provisioning.runner import organization_provision

__all__ = [
    "ADVISORY_NAMESPACE",
    "OrganizationBusy",
    "lock_key",
    "logins_reconcile",
    "organization_deprovision_run",
    "organization_export",
    "organization_lock",
    "organization_provision",
    "organization_purge",
    "organizations_reconcile",
    "schema_export",
    "schema_restore",
    "stuck_organizations",
]
