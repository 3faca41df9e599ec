"""Operation rows: the record of each lifecycle step as it ran (what, which attempt, how long, how it ended)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.organizations.models import Organization
from tenants.models import Operation


def now() -> dt.datetime:
    return timezone.now()


def operation_next_attempt(*, organization: Organization, step: str) -> int:
    """The attempt number the next run of ``step`` gets (1 for the first)."""
    return Operation.objects.filter(organization=organization, step=step).count() + 1


def operation_record(
    *,
    organization: Organization,
    step: str,
    actor: Actor,
    message: str,
    error: str = "",
    request: HttpRequest | None = None,
    job_id: str = "",
) -> Operation:
    """An action that changes no status (a re-enqueue, a repair): an Operation row and an audit event.

    With ``error`` the row and the event record a failure.
    """
    at = now()
    failed = bool(error)
    operation = Operation.objects.create(
        organization=organization,
        step=step,
        attempt=operation_next_attempt(organization=organization, step=step),
        from_status=organization.status,
        to_status=organization.status,
        outcome=Operation.Outcome.FAILURE if failed else Operation.Outcome.SUCCESS,
        started_at=at,
        finished_at=at,
        duration_ms=0,
        message=message,
        error=error,
        job_id=job_id,
        actor_label=actor.label,
    )
    audit_record(
        action=f"organization.{step}",
        actor=actor,
        target=organization,
        message=(error or message)[:2000],
        outcome=AuditEvent.Outcome.FAILURE if failed else AuditEvent.Outcome.SUCCESS,
        request=request,
        request_id=job_id,
    )
    return operation


def operations_abandon(*, organization: Organization, actor: Actor, reason: str) -> int:
    """Close the ``running`` rows a killed run left behind as ``abandoned``; audited when there were any.

    The caller holds the organisation's provisioning lock, so no live run owns those rows.
    """
    with transaction.atomic(using="default"):
        running = Operation.objects.select_for_update().filter(
            organization=organization, outcome=Operation.Outcome.RUNNING
        )
        steps = sorted(running.values_list("step", flat=True))
        if not steps:
            return 0
        at = now()
        running.update(outcome=Operation.Outcome.ABANDONED, finished_at=at, error=reason)
        audit_record(
            action="organization.operations_abandoned",
            actor=actor,
            target=organization,
            message=f"{reason}: {', '.join(steps)}",
        )
    return len(steps)
