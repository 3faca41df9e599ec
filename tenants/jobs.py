"""RQ jobs of the ``provisioning`` queue. Each takes an organisation id, nothing else, and calls one service.

Jobs are enqueued by the services with ``transaction.on_commit``; a duplicate or retried job is harmless
(the services lock, re-read the row and return early when the work is done).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_rq
from django.conf import settings
from rq import Retry, get_current_job

from ghostcrm.core.system_settings import setting_value

QUEUE_NAME = "provisioning"


def enqueue(func: Callable[..., Any], organization_id: str) -> str:
    """Enqueue ``func(organization_id)`` with the provisioning timeout and backoff; returns the job id."""
    intervals = list(settings.PROVISIONING_RETRY_INTERVALS)
    # "auto": put it on the queue now. The services already defer to on_commit where it matters; django-rq's
    # default would defer again inside an atomic block and hand back no job (and no id to record).
    job = django_rq.get_queue(QUEUE_NAME, commit_mode="auto").enqueue(
        func,
        organization_id,
        job_timeout=setting_value("provisioning.job_timeout_seconds"),
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        failure_ttl=7 * 24 * 3600,
        result_ttl=24 * 3600,
        description=f"{func.__name__}({organization_id})",
    )
    return job.id


def current_job_id() -> str:
    job = get_current_job()
    return job.id if job is not None else ""


def retries_left() -> int:
    """How many more times RQ will run the current job if it raises (0 outside a job)."""
    job = get_current_job()
    return int(job.retries_left or 0) if job is not None else 0


def organization_provision_job(organization_id: str) -> str:
    from tenants.provisioning import organization_provision

    return organization_provision(organization_id=organization_id, job_id=current_job_id())


def organization_deprovision_job(organization_id: str) -> str:
    from tenants.provisioning import organization_deprovision_run

    return organization_deprovision_run(organization_id=organization_id, job_id=current_job_id())


def reconcile_job() -> dict[str, int]:
    """Periodic: re-enqueue stuck organisations and purge deleted ones past their retention."""
    from tenants.provisioning import organizations_reconcile

    return organizations_reconcile()
