"""RQ jobs of the ``provisioning`` queue. Each takes an organisation id, nothing else, and calls one service.

Jobs are enqueued by path (``tenants.queue``) with ``transaction.on_commit``; a duplicate or retried job is
harmless (the services lock, re-read the row and return early when the work is done).
"""

from __future__ import annotations

from django.db import close_old_connections

from tenants.provisioning import deprovision, reconciler, runner
from tenants.queue import current_job_id


def organization_provision_job(organization_id: str) -> str:
    # As Django does per request: a worker outlives database restarts, so a connection broken by one is replaced.
    close_old_connections()
    return runner.organization_provision(organization_id=organization_id, job_id=current_job_id())


def organization_deprovision_job(organization_id: str) -> str:
    close_old_connections()
    return deprovision.organization_deprovision_run(organization_id=organization_id, job_id=current_job_id())


def reconcile_job() -> dict[str, int]:
    """Periodic: re-enqueue stuck organisations, repair tenant logins, purge deleted ones past their retention."""
    return reconciler.organizations_reconcile()
