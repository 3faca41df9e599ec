"""The lifecycle of a client organisation: transitions, lifecycle actions and the public API provisioning uses.

Every status change goes through ``organization_transition_locked`` (checks the move is allowed, writes the
status, an ``Operation`` row and an audit event, in one main-database transaction). Work on the tenant
database (a login role's LOGIN) runs after the main transaction commits, outside its row lock.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, transaction
from django.http import HttpRequest
from redis.exceptions import RedisError

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import Conflict, NotFound, TransientError
from ghostcrm.organizations.models import Organization
from tenants import queue, roles
from tenants.models import Operation
from tenants.services.operations import now, operation_next_attempt, operation_record

logger = logging.getLogger(__name__)
Status = Organization.Status

# The lifecycle: from each status, the statuses it may move to. Anything else is a Conflict.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.PROVISIONING, Status.FAILED, Status.DEPROVISIONING}),
    Status.PROVISIONING: frozenset({Status.ACTIVE, Status.FAILED}),
    Status.FAILED: frozenset({Status.PENDING, Status.DEPROVISIONING}),
    Status.ACTIVE: frozenset({Status.SUSPENDED, Status.DEPROVISIONING}),
    Status.SUSPENDED: frozenset({Status.ACTIVE, Status.DEPROVISIONING}),
    Status.DEPROVISIONING: frozenset({Status.DELETED}),
    # Back to active or suspended: a restore over a deleted, not yet purged client (operations.services.restore).
    Status.DELETED: frozenset({Status.PURGED, Status.ACTIVE, Status.SUSPENDED}),
    Status.PURGED: frozenset(),
}
# Statuses in which the client's schema may exist and a new request for the same slug is refused.
LIVE_STATUSES = frozenset(
    {Status.PENDING, Status.PROVISIONING, Status.ACTIVE, Status.FAILED, Status.SUSPENDED, Status.DEPROVISIONING}
)
# Whether the tenant's CRM login role may log in, by status (statuses not listed: no opinion).
LOGIN_BY_STATUS: dict[str, bool] = {
    Status.ACTIVE: True,
    Status.SUSPENDED: False,
    Status.DEPROVISIONING: False,
    Status.DELETED: False,
}


# --- transitions (the public API the provisioning runner uses) ---------------------------------------


def organization_select_for_update(organization_id: uuid.UUID | str) -> Organization:
    """The organisation row, locked until the surrounding transaction ends (``NotFound`` when missing)."""
    try:
        return Organization.objects.select_for_update().get(pk=organization_id)
    except (Organization.DoesNotExist, DjangoValidationError, ValueError):
        raise NotFound(f"There is no organisation with id {organization_id}.", code="organization_not_found") from None


def organization_transition_locked(
    organization: Organization,
    *,
    to_status: str,
    actor: Actor,
    step: str,
    reason: str = "",
    error: str = "",
    job_id: str = "",
    request: HttpRequest | None = None,
    updates: dict[str, Any] | None = None,
) -> Organization:
    """Move a locked organisation to ``to_status``: status, an Operation row and an audit event.

    The caller holds the row lock (``organization_select_for_update``) inside ``transaction.atomic``.
    """
    from_status = organization.status
    if to_status not in ALLOWED_TRANSITIONS.get(from_status, frozenset()):
        raise Conflict(
            f"Organisation {organization.slug!r} is {from_status}; it cannot become {to_status}.",
            code="invalid_transition",
            extra={"status": from_status},
        )
    before = model_snapshot(organization)
    at = now()
    organization.status = to_status
    organization.status_changed_at = at
    organization.last_error = error[:10000] if to_status == Status.FAILED else ""
    if to_status == Status.ACTIVE and organization.activated_at is None:
        organization.activated_at = at
    for field, value in (updates or {}).items():
        setattr(organization, field, value)
    organization.full_clean()
    organization.save()
    failed = to_status == Status.FAILED
    Operation.objects.create(
        organization=organization,
        step=step,
        attempt=operation_next_attempt(organization=organization, step=step),
        from_status=from_status,
        to_status=to_status,
        outcome=Operation.Outcome.FAILURE if failed else Operation.Outcome.SUCCESS,
        started_at=at,
        finished_at=at,
        duration_ms=0,
        error=error,
        message=reason,
        job_id=job_id,
        actor_label=actor.label,
    )
    audit_record(
        action=f"organization.{step}",
        actor=actor,
        target=organization,
        before=before,
        after=model_snapshot(organization),
        outcome=AuditEvent.Outcome.FAILURE if failed else AuditEvent.Outcome.SUCCESS,
        message=(reason or error)[:2000],
        request=request,
        request_id=job_id,
    )
    return organization


def organization_transition(
    *,
    organization_id: uuid.UUID | str,
    to_status: str,
    actor: Actor,
    step: str,
    reason: str = "",
    error: str = "",
    job_id: str = "",
    request: HttpRequest | None = None,
    updates: dict[str, Any] | None = None,
) -> Organization:
    """Lock the organisation and move it to ``to_status`` (``Conflict`` when the lifecycle forbids it)."""
    with transaction.atomic(using="default"):
        organization = organization_select_for_update(organization_id)
        return organization_transition_locked(
            organization,
            to_status=to_status,
            actor=actor,
            step=step,
            reason=reason,
            error=error,
            job_id=job_id,
            request=request,
            updates=updates,
        )


def organization_provisioning_claim(
    *, organization_id: uuid.UUID | str, actor: Actor, job_id: str, first_step: str
) -> tuple[Organization, int] | None:
    """Lock the row and move pending -> provisioning; the attempt number of this run, or ``None`` when there is
    nothing to provision (already active, failed, ...)."""
    with transaction.atomic(using="default"):
        organization = organization_select_for_update(organization_id)
        if organization.status == Status.PENDING:
            organization_transition_locked(
                organization, to_status=Status.PROVISIONING, actor=actor, step="provision", job_id=job_id
            )
        elif organization.status != Status.PROVISIONING:
            return None
        return organization, operation_next_attempt(organization=organization, step=first_step)


def organization_note_transient(*, organization_id: uuid.UUID | str, error: str) -> None:
    """Say on the organisation that a transient fault happened and a retry is coming (no status change)."""
    Organization.objects.filter(pk=organization_id).update(
        last_error=f"Transient error, will retry: {error}"[:10000], updated_at=now()
    )


# --- enqueueing --------------------------------------------------------------------------------------


def provisioning_enqueue(*, organization_id: uuid.UUID | str) -> str:
    """Put the provisioning job on the ``provisioning`` queue now; returns the RQ job id."""
    return queue.enqueue(queue.PROVISION_JOB, str(organization_id))


def deprovisioning_enqueue(*, organization_id: uuid.UUID | str) -> str:
    return queue.enqueue(queue.DEPROVISION_JOB, str(organization_id))


def _on_commit(enqueue: Callable[..., str], organization_id: uuid.UUID | str) -> None:
    def run() -> None:
        # A Redis outage must not undo a committed request: the reconciler picks the organisation up.
        try:
            enqueue(organization_id=organization_id)
        except RedisError:
            logger.exception("could not enqueue a job for organisation %s; the reconciler will", organization_id)

    transaction.on_commit(run, using="default")


def provisioning_enqueue_on_commit(*, organization_id: uuid.UUID | str) -> None:
    _on_commit(provisioning_enqueue, organization_id)


# --- the tenant's login, changed after commit --------------------------------------------------------


@dataclass
class LoginChange:
    """Give or take the tenant login role's LOGIN once the main transaction has committed.

    A tenant database fault is recorded (an Operation row ``login_sync`` and an audit event, both failures)
    and kept in ``error``; the reconciler applies the change when the tenant database is back.
    """

    organization: Organization
    can_login: bool
    actor: Actor
    error: str = ""

    def apply(self) -> None:
        change = roles.app_role_enable if self.can_login else roles.app_role_disable
        try:
            change(schema=self.organization.schema_name)
        except DatabaseError as exc:
            self.error = str(exc).strip() or type(exc).__name__
            what = "restore" if self.can_login else "revoke"
            operation_record(
                organization=self.organization,
                step="login_sync",
                actor=self.actor,
                message=f"could not {what} the tenant's login; the reconciler retries",
                error=self.error,
            )

    def on_commit(self) -> None:
        transaction.on_commit(self.apply, using="default")

    def raise_if_failed(self) -> None:
        if self.error:
            what = "restore" if self.can_login else "revoke"
            raise TransientError(
                f"Organisation {self.organization.slug!r} is {self.organization.status}, but the tenant database "
                f"could not {what} its login ({self.error}); the reconciler applies it once the database is back.",
                code="tenant_database_unavailable",
            )


# --- lifecycle actions -------------------------------------------------------------------------------


def organization_retry(
    *, organization_id: uuid.UUID | str, actor: Actor, reason: str = "", request: HttpRequest | None = None
) -> Organization:
    """Provision again: a failed organisation goes back to pending; a stuck pending/provisioning one is re-enqueued.

    A deprovisioning organisation whose export did not finish gets its deprovisioning job again.
    """
    with transaction.atomic(using="default"):
        organization = organization_select_for_update(organization_id)
        if organization.status == Status.FAILED:
            organization_transition_locked(
                organization, to_status=Status.PENDING, actor=actor, step="retry", reason=reason, request=request
            )
            provisioning_enqueue_on_commit(organization_id=organization.pk)
        elif organization.status in {Status.PENDING, Status.PROVISIONING, Status.DEPROVISIONING}:
            operation_record(
                organization=organization, step="retry", actor=actor, message=reason or "re-enqueued", request=request
            )
            enqueue = deprovisioning_enqueue if organization.status == Status.DEPROVISIONING else provisioning_enqueue
            _on_commit(enqueue, organization.pk)
        else:
            raise Conflict(
                f"Organisation {organization.slug!r} is {organization.status}; only failed, pending, provisioning "
                "or deprovisioning organisations can be retried.",
                code="invalid_transition",
                extra={"status": organization.status},
            )
    return organization


def organization_suspend(
    *, organization_id: uuid.UUID | str, actor: Actor, reason: str, request: HttpRequest | None = None
) -> Organization:
    """Active -> suspended: the tenant's login role loses LOGIN and its sessions end; data is untouched.

    The role change runs after the status commits (never inside the row lock); if the tenant database refuses
    it, the status stays suspended, ``TransientError`` says so and the reconciler applies it later. Suspending
    a suspended organisation is a ``Conflict`` (code ``already_suspended``).
    """
    with transaction.atomic(using="default"):
        organization = organization_select_for_update(organization_id)
        if organization.status == Status.SUSPENDED:
            raise Conflict(
                f"Organisation {organization.slug!r} is already suspended.",
                code="already_suspended",
                extra={"status": organization.status},
            )
        organization_transition_locked(
            organization, to_status=Status.SUSPENDED, actor=actor, step="suspend", reason=reason, request=request
        )
        change = LoginChange(organization, can_login=False, actor=actor)
        change.on_commit()
    change.raise_if_failed()
    return organization


def organization_resume(
    *, organization_id: uuid.UUID | str, actor: Actor, reason: str, request: HttpRequest | None = None
) -> Organization:
    """Suspended -> active: the login role may connect again (after commit, as for suspend).

    Resuming an active organisation changes nothing (billing resumes after a payment, maybe after an admin did).
    """
    with transaction.atomic(using="default"):
        organization = organization_select_for_update(organization_id)
        if organization.status == Status.ACTIVE:
            return organization
        organization_transition_locked(
            organization, to_status=Status.ACTIVE, actor=actor, step="resume", reason=reason, request=request
        )
        change = LoginChange(organization, can_login=True, actor=actor)
        change.on_commit()
    change.raise_if_failed()
    return organization


def organization_deprovision(
    *, organization_id: uuid.UUID | str, actor: Actor, reason: str, request: HttpRequest | None = None
) -> Organization:
    """Start deprovisioning: the job exports the schema, then marks it deleted; the purge drops it later."""
    with transaction.atomic(using="default"):
        organization = organization_select_for_update(organization_id)
        if organization.status == Status.DEPROVISIONING:
            return organization
        organization_transition_locked(
            organization,
            to_status=Status.DEPROVISIONING,
            actor=actor,
            step="deprovision",
            reason=reason,
            request=request,
        )
        _on_commit(deprovisioning_enqueue, organization.pk)
    return organization


# The lifecycle actions every entry point offers (admin, API, ``tenants`` command), by name.
LIFECYCLE_ACTIONS: dict[str, Callable[..., Organization]] = {
    "retry": organization_retry,
    "suspend": organization_suspend,
    "resume": organization_resume,
    "deprovision": organization_deprovision,
}


def lifecycle_actions_for(status: str) -> list[str]:
    """The lifecycle actions an organisation in ``status`` offers (for buttons on its page)."""
    offered = {
        "retry": status in {Status.FAILED, Status.PENDING, Status.PROVISIONING, Status.DEPROVISIONING},
        "suspend": status == Status.ACTIVE,
        "resume": status == Status.SUSPENDED,
        "deprovision": Status.DEPROVISIONING in ALLOWED_TRANSITIONS.get(status, frozenset()),
    }
    return [name for name, allowed in offered.items() if allowed]
