"""The provisioning job: turn a pending organisation into a live, isolated schema, step by step.

Bad templates and invalid data fail at once (status ``failed`` with a readable ``last_error``); transient
faults, including a tenant database that cannot be reached when the job starts, are recorded and re-raised
so RQ retries with backoff, and the last attempt marks the organisation failed with the reason.
"""

from __future__ import annotations

import logging
import uuid

import psycopg
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError
from django.db import OperationalError as DjangoOperationalError

from ghostcrm.core.errors import ApplicationError, TransientError, ValidationError
from ghostcrm.organizations.models import Organization
from tenants import queue, services
from tenants.provisioning import steps
from tenants.provisioning.locks import OrganizationBusy, lock_acquire, lock_release
from tenants.provisioning.steps import SYSTEM, describe, run_step

logger = logging.getLogger(__name__)
Status = Organization.Status
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    psycopg.OperationalError,
    DjangoOperationalError,
)


def organization_provision(*, organization_id: str, job_id: str = "") -> str:
    """Provision one organisation to ``active``; returns its status at the end (``"busy"`` when another worker
    holds it)."""
    try:
        lock_acquire(organization_id)
    except OrganizationBusy:
        logger.info("organisation %s is being provisioned by another worker", organization_id)
        return "busy"
    except TRANSIENT_ERRORS as exc:
        # The tenant database cannot be reached as the job starts: a transient failure like any other.
        _record_start_failure(organization_id, exc, job_id)
        raise
    try:
        return _provision_locked(organization_id, job_id)
    finally:
        lock_release(organization_id)


def _provision_locked(organization_id: str, job_id: str) -> str:
    first_step = steps.STEPS[0][0]
    claimed = services.organization_provisioning_claim(
        organization_id=organization_id, actor=SYSTEM, job_id=job_id, first_step=first_step
    )
    if claimed is None:
        return str(Organization.objects.get(pk=organization_id).status)
    organization, attempt = claimed
    try:
        for step, func in steps.STEPS:
            organization.refresh_from_db()
            run_step(organization, step=step, job_id=job_id, attempt=attempt, func=func)
        services.organization_transition(
            organization_id=organization_id,
            to_status=Status.ACTIVE,
            actor=SYSTEM,
            step="activate",
            reason=f"provisioned in {attempt} attempt(s)",
            job_id=job_id,
        )
    except TRANSIENT_ERRORS as exc:
        _transient(organization_id, exc, job_id)
        raise
    except (ValidationError, DjangoValidationError) as exc:
        # Permanent (a bad template, invalid data): no retry will help until someone fixes it.
        _fail(organization_id, describe(exc), job_id)
        return Status.FAILED
    except Exception as exc:
        _fail(organization_id, f"{type(exc).__name__}: {describe(exc)}", job_id)
        raise
    return Status.ACTIVE


def _transient(organization_id: str, exc: BaseException, job_id: str) -> None:
    """A transient fault: note it and let RQ retry, or, on the last try, mark the organisation failed."""
    if queue.retries_left() > 0:
        try:
            services.organization_note_transient(organization_id=organization_id, error=describe(exc))
        except DatabaseError:
            logger.exception("could not note the transient error of organisation %s", organization_id)
        return
    _fail(organization_id, f"Gave up after repeated transient errors: {describe(exc)}", job_id)


def _record_start_failure(organization_id: uuid.UUID | str, exc: BaseException, job_id: str) -> None:
    """The job could not start (no tenant database): an Operation row, ``last_error``, and on the last try
    ``failed`` with the reason, as for a fault inside a step."""
    try:
        organization = Organization.objects.get(pk=organization_id)
        services.operation_record(
            organization=organization,
            step="start",
            actor=SYSTEM,
            message="could not start provisioning",
            error=describe(exc),
            job_id=job_id,
        )
    except (Organization.DoesNotExist, DjangoValidationError, ValueError, DatabaseError):
        logger.exception("could not record the failed start of organisation %s", organization_id)
        return
    _transient(str(organization_id), exc, job_id)


def _fail(organization_id: str, error: str, job_id: str) -> None:
    try:
        services.organization_transition(
            organization_id=organization_id,
            to_status=Status.FAILED,
            actor=SYSTEM,
            step="fail",
            error=error,
            job_id=job_id,
        )
    except (ApplicationError, DatabaseError):
        logger.exception("could not mark organisation %s failed: %s", organization_id, error)
