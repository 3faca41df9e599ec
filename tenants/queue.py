"""The ``provisioning`` queue: enqueue a job by its dotted path, and what the running job knows about itself.

Jobs are named by path (``"tenants.jobs.organization_provision_job"``), not imported, so the services that
enqueue them and the jobs that call back into the services do not import each other.
"""

from __future__ import annotations

import django_rq
from django.conf import settings
from rq import Retry, get_current_job

from ghostcrm.core.system_settings import setting_value

QUEUE_NAME = "provisioning"
PROVISION_JOB = "tenants.jobs.organization_provision_job"
DEPROVISION_JOB = "tenants.jobs.organization_deprovision_job"


def enqueue(func: str, organization_id: str) -> str:
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
        description=f"{func.rsplit('.', 1)[-1]}({organization_id})",
    )
    return str(job.id)


def current_job_id() -> str:
    job = get_current_job()
    return job.id if job is not None else ""


def retries_left() -> int:
    """How many more times RQ will run the current job if it raises (0 outside a job)."""
    job = get_current_job()
    return int(job.retries_left or 0) if job is not None else 0
