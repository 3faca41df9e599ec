"""Writes for client organisations: the lifecycle and its transitions.

Every status change goes through ``_transition`` (checks the move is allowed, writes the status, an
``Operation`` row and an audit event, in one main-database transaction). Entry points (admin, API,
commands, jobs) call the public functions here and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import slugify

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import ApplicationError, Conflict, NotFound, TransientError, ValidationError
from ghostcrm.organizations.models import Organization
from ghostcrm.organizations.schema_names import schema_name_from_slug, validate_schema_name
from tenants import selectors
from tenants.models import IdempotencyRecord, Operation

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
    Status.DELETED: frozenset({Status.PURGED}),
    Status.PURGED: frozenset(),
}
# Statuses in which the client's schema may exist and a new request for the same slug is refused.
LIVE_STATUSES = frozenset(
    {Status.PENDING, Status.PROVISIONING, Status.ACTIVE, Status.FAILED, Status.SUSPENDED, Status.DEPROVISIONING}
)
MAX_NAME_LENGTH = 200


class IdempotencyKeyReused(ApplicationError):
    """The same ``Idempotency-Key`` came back with a different request body."""

    code = "idempotency_key_reused"
    http_status = 422


# --- transitions -------------------------------------------------------------------------------------


def _now() -> Any:
    return timezone.now()


def _lock(organization_id: uuid.UUID | str) -> Organization:
    """The organisation row, locked until the surrounding transaction ends."""
    try:
        return Organization.objects.select_for_update().get(pk=organization_id)
    except (Organization.DoesNotExist, DjangoValidationError, ValueError):
        raise NotFound(f"There is no organisation with id {organization_id}.", code="organization_not_found") from None


def _transition(
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

    The caller holds the row lock (``_lock``) inside ``transaction.atomic``.
    """
    from_status = organization.status
    if to_status not in ALLOWED_TRANSITIONS.get(from_status, frozenset()):
        raise Conflict(
            f"Organisation {organization.slug!r} is {from_status}; it cannot become {to_status}.",
            code="invalid_transition",
            extra={"status": from_status},
        )
    before = model_snapshot(organization)
    now = _now()
    organization.status = to_status
    organization.status_changed_at = now
    organization.last_error = error[:10000] if to_status == Status.FAILED else ""
    if to_status == Status.ACTIVE and organization.activated_at is None:
        organization.activated_at = now
    for field, value in (updates or {}).items():
        setattr(organization, field, value)
    organization.full_clean()
    organization.save()
    failed = to_status == Status.FAILED
    Operation.objects.create(
        organization=organization,
        step=step,
        attempt=_next_attempt(organization, step),
        from_status=from_status,
        to_status=to_status,
        outcome=Operation.Outcome.FAILURE if failed else Operation.Outcome.SUCCESS,
        started_at=now,
        finished_at=now,
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


def _next_attempt(organization: Organization, step: str) -> int:
    return Operation.objects.filter(organization=organization, step=step).count() + 1


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
        organization = _lock(organization_id)
        return _transition(
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


# --- requesting a new organisation -------------------------------------------------------------------


def organization_validate_request(*, name: str, admin_email: str, plan_code: str = "") -> dict[str, str]:
    """Normalise and check a request; ``ValidationError`` with per-field messages when it cannot succeed."""
    errors: dict[str, list[str]] = {}
    name = " ".join((name or "").split())
    admin_email = (admin_email or "").strip().lower()
    plan_code = (plan_code or "").strip()
    slug = slugify(name)[:63].strip("-")
    schema_name = schema_name_from_slug(slug)
    if not name:
        errors.setdefault("name", []).append("Give the client's name.")
    elif len(name) > MAX_NAME_LENGTH:
        errors.setdefault("name", []).append(f"Use at most {MAX_NAME_LENGTH} characters.")
    elif not slug:
        errors.setdefault("name", []).append("The name needs at least one letter or digit.")
    else:
        try:
            validate_schema_name(schema_name)
        except DjangoValidationError as exc:
            errors.setdefault("name", []).append(
                f"The name gives the schema name {schema_name!r}, which cannot be used: {' '.join(exc.messages)}"
            )
    try:
        validate_email(admin_email)
    except DjangoValidationError:
        errors.setdefault("admin_email", []).append(f"{admin_email!r} is not a valid e-mail address.")
    if plan_code:
        plan_error = _plan_code_error(plan_code)
        if plan_error:
            errors.setdefault("plan", []).append(plan_error)
    if errors:
        first = next(iter(errors.values()))[0]
        raise ValidationError(first, code="invalid", extra={"fields": errors})
    return {"name": name, "admin_email": admin_email, "plan_code": plan_code, "slug": slug, "schema_name": schema_name}


def _plan_code_error(plan_code: str) -> str:
    """Why ``plan_code`` cannot be given to a new organisation ("" when it can): it must name an active plan."""
    if len(plan_code) > 64 or slugify(plan_code) != plan_code.lower():
        return "A plan code is up to 64 letters, digits, hyphens or underscores."
    codes = [code for code, _ in selectors.active_plan_choices()]
    if plan_code in codes:
        return ""
    unknown = f"There is no active billing plan with the code {plan_code!r}"
    if not codes:
        return f"{unknown}; no active plans exist, so leave the plan empty."
    return f"{unknown}; use one of: {', '.join(codes)}."


def _fingerprint(data: dict[str, str]) -> str:
    canonical = json.dumps(
        {k: data[k] for k in ("name", "admin_email", "plan_code")}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(idempotency_key: str, fingerprint: str) -> Organization | None:
    record = IdempotencyRecord.objects.select_related("organization").filter(key=idempotency_key).first()
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request body; use a new key.",
        )
    return record.organization


def organization_request(
    *,
    name: str,
    admin_email: str,
    plan_code: str = "",
    actor: Actor,
    idempotency_key: str | None = None,
    request: HttpRequest | None = None,
) -> Organization:
    """Record a new client organisation (``pending``) and enqueue its provisioning once committed.

    Idempotent: the same ``idempotency_key`` with the same data returns the first organisation (another body:
    ``IdempotencyKeyReused``); a second request for a live client with the same name and admin e-mail returns
    that client; the same name for another admin e-mail is a ``Conflict``. Concurrent requests for one client
    meet at the unique slug, so there is only ever one organisation and one schema.
    """
    data = organization_validate_request(name=name, admin_email=admin_email, plan_code=plan_code)
    fingerprint = _fingerprint(data)
    if idempotency_key:
        replayed = _replay(idempotency_key, fingerprint)
        if replayed is not None:
            return replayed
    try:
        with transaction.atomic(using="default"):
            requested_at = _now()
            organization = Organization(
                name=data["name"],
                slug=data["slug"],
                schema_name=data["schema_name"],
                admin_email=data["admin_email"],
                plan_code=data["plan_code"],
                status=Status.PENDING,
                status_changed_at=requested_at,
            )
            organization.full_clean(validate_unique=False)
            organization.save(force_insert=True)
            if idempotency_key:
                IdempotencyRecord.objects.create(
                    key=idempotency_key, fingerprint=fingerprint, organization=organization
                )
            Operation.objects.create(
                organization=organization,
                step="request",
                to_status=Status.PENDING,
                outcome=Operation.Outcome.SUCCESS,
                started_at=requested_at,
                finished_at=requested_at,
                duration_ms=0,
                actor_label=actor.label,
            )
            audit_record(
                action="organization.request",
                actor=actor,
                target=organization,
                after=model_snapshot(organization),
                request=request,
            )
            provisioning_enqueue_on_commit(organization_id=organization.pk)
    except IntegrityError:
        # Another request for this client (or with this key) won the race: answer as a replay would.
        if idempotency_key:
            replayed = _replay(idempotency_key, fingerprint)
            if replayed is not None:
                return replayed
        existing = Organization.objects.filter(slug=data["slug"]).first()
        if existing is None:
            raise
        existing = _same_client_or_conflict(existing, data)
        if idempotency_key:
            _bind_key(idempotency_key, fingerprint, existing)
        return existing
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), extra={"fields": exc.message_dict}) from None
    return organization


def _bind_key(idempotency_key: str, fingerprint: str, organization: Organization) -> None:
    """A key first used for a client that already existed now stands for that request (another body: 422)."""
    try:
        with transaction.atomic(using="default"):
            IdempotencyRecord.objects.create(key=idempotency_key, fingerprint=fingerprint, organization=organization)
    except IntegrityError:
        _replay(idempotency_key, fingerprint)  # bound meanwhile by a concurrent request: same body or 422


def _same_client_or_conflict(existing: Organization, data: dict[str, str]) -> Organization:
    if existing.admin_email == data["admin_email"] and existing.status in LIVE_STATUSES:
        return existing
    raise Conflict(
        f"An organisation with the slug {existing.slug!r} already exists ({existing.status}).",
        code="organization_exists",
        extra={"fields": {"name": [f"An organisation named {existing.name!r} already exists."]}},
    )


# --- enqueueing --------------------------------------------------------------------------------------


def provisioning_enqueue(*, organization_id: uuid.UUID | str) -> str:
    """Put the provisioning job on the ``provisioning`` queue now; returns the RQ job id."""
    from tenants import jobs

    return jobs.enqueue(jobs.organization_provision_job, str(organization_id))


def deprovisioning_enqueue(*, organization_id: uuid.UUID | str) -> str:
    from tenants import jobs

    return jobs.enqueue(jobs.organization_deprovision_job, str(organization_id))


def _on_commit(enqueue: Callable[..., str], organization_id: uuid.UUID | str) -> None:
    def run() -> None:
        # A Redis outage must not undo a committed request: the reconciler picks the organisation up.
        try:
            enqueue(organization_id=organization_id)
        except Exception:
            logger.exception("could not enqueue a job for organisation %s; the reconciler will", organization_id)

    transaction.on_commit(run, using="default")


def provisioning_enqueue_on_commit(*, organization_id: uuid.UUID | str) -> None:
    _on_commit(provisioning_enqueue, organization_id)


# --- lifecycle actions -------------------------------------------------------------------------------


def organization_retry(
    *, organization_id: uuid.UUID | str, actor: Actor, reason: str = "", request: HttpRequest | None = None
) -> Organization:
    """Provision again: a failed organisation goes back to pending; a stuck pending/provisioning one is re-enqueued.

    A deprovisioning organisation whose export did not finish gets its deprovisioning job again.
    """
    with transaction.atomic(using="default"):
        organization = _lock(organization_id)
        if organization.status == Status.FAILED:
            _transition(
                organization, to_status=Status.PENDING, actor=actor, step="retry", reason=reason, request=request
            )
            provisioning_enqueue_on_commit(organization_id=organization.pk)
        elif organization.status in {Status.PENDING, Status.PROVISIONING, Status.DEPROVISIONING}:
            _record(organization, step="retry", actor=actor, message=reason or "re-enqueued", request=request)
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


def _record(
    organization: Organization,
    *,
    step: str,
    actor: Actor,
    message: str,
    request: HttpRequest | None = None,
    job_id: str = "",
) -> None:
    """An action that changes no status (a re-enqueue): an Operation row and an audit event."""
    now = _now()
    Operation.objects.create(
        organization=organization,
        step=step,
        attempt=_next_attempt(organization, step),
        from_status=organization.status,
        to_status=organization.status,
        outcome=Operation.Outcome.SUCCESS,
        started_at=now,
        finished_at=now,
        duration_ms=0,
        message=message,
        job_id=job_id,
        actor_label=actor.label,
    )
    audit_record(action=f"organization.{step}", actor=actor, target=organization, message=message, request=request)


def organization_suspend(
    *, organization_id: uuid.UUID | str, actor: Actor, reason: str, request: HttpRequest | None = None
) -> Organization:
    """Active -> suspended: the tenant's login role loses LOGIN and its sessions end; data is untouched.

    Suspending a suspended organisation changes nothing (billing may ask twice).
    """
    from tenants import roles

    with transaction.atomic(using="default"):
        organization = _lock(organization_id)
        if organization.status == Status.SUSPENDED:
            return organization
        _transition(
            organization, to_status=Status.SUSPENDED, actor=actor, step="suspend", reason=reason, request=request
        )
        # Inside the transaction: if PostgreSQL refuses, the status stays active.
        _role_change(roles.app_role_disable, organization, "revoke the tenant's login")
    return organization


def _role_change(change: Callable[..., Any], organization: Organization, what: str) -> None:
    """Run a login-role change in the tenant database; a database fault becomes a sentence, not a traceback."""
    from django.db import DatabaseError

    try:
        change(schema=organization.schema_name)
    except DatabaseError as exc:
        raise TransientError(
            f"Could not {what} in the tenant database ({exc}); nothing was changed, try again.",
            code="tenant_database_unavailable",
        ) from exc


def organization_resume(
    *, organization_id: uuid.UUID | str, actor: Actor, reason: str, request: HttpRequest | None = None
) -> Organization:
    """Suspended -> active: the login role may connect again. Resuming an active organisation changes nothing."""
    from tenants import roles

    with transaction.atomic(using="default"):
        organization = _lock(organization_id)
        if organization.status == Status.ACTIVE:
            return organization
        _transition(organization, to_status=Status.ACTIVE, actor=actor, step="resume", reason=reason, request=request)
        _role_change(roles.app_role_enable, organization, "restore the tenant's login")
    return organization


def organization_deprovision(
    *, organization_id: uuid.UUID | str, actor: Actor, reason: str, request: HttpRequest | None = None
) -> Organization:
    """Start deprovisioning: the job exports the schema, then marks it deleted; the purge drops it later."""
    with transaction.atomic(using="default"):
        organization = _lock(organization_id)
        if organization.status == Status.DEPROVISIONING:
            return organization
        _transition(
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
