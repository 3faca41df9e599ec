"""The provisioning steps, each idempotent, and ``run_step`` that records one as an Operation and an audit event.

The registry row is looked up by organisation, the engine's ``schema_create`` and ``schema_apply`` are
idempotent and apply each template in its own transaction, the admin user is inserted ``ON CONFLICT DO
NOTHING`` and the invitation is sent once (``invited_at``). So a retried, duplicated or reconciled job picks
up where a dead one stopped and never leaves two schemas or half a schema.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone
from psycopg import sql

from ghostcrm.accounts.services import invitation_create
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ApplicationError, ValidationError
from ghostcrm.organizations.models import Organization
from ghostcrm.organizations.schema_names import validate_schema_name
from tenants.db import tenant_connection
from tenants.engine.services import schema_apply, schema_create
from tenants.models import Domain, Operation, Tenant

SYSTEM = Actor.system("provisioning")
# The role of the client's first CRM admin, as the invitation records it.
TENANT_ADMIN_ROLE = "tenant_admin"

Step = Callable[[Organization], str]
# Called as hook(event, step, organization) with event "started" (the step's Operation row is written, its work
# not begun) or "finished" (done and recorded). Production has none; tests add one to pause or kill a worker.
StepHook = Callable[[str, str, Organization], None]
step_hooks: list[StepHook] = []


def describe(exc: BaseException) -> str:
    """An exception as the sentence an operator reads (``last_error``, an Operation's error)."""
    message = exc.message if isinstance(exc, ApplicationError) else str(exc)
    if isinstance(exc, DjangoValidationError):
        message = " ".join(exc.messages)
    return message.strip() or type(exc).__name__


def _hooks(event: str, step: str, organization: Organization) -> None:
    for hook in step_hooks:
        hook(event, step, organization)


def run_step(organization: Organization, *, step: str, job_id: str, attempt: int, func: Step) -> None:
    """Run one step, recording it as an Operation (duration, outcome, error) and an audit event."""
    clock = time.monotonic()
    operation = Operation.objects.create(
        organization=organization,
        step=step,
        attempt=attempt,
        from_status=organization.status,
        to_status=organization.status,
        started_at=timezone.now(),
        job_id=job_id,
        actor_label=SYSTEM.label,
    )
    _hooks("started", step, organization)
    try:
        message = func(organization)
    except BaseException as exc:
        duration = int((time.monotonic() - clock) * 1000)
        # Best effort: the main database may be what failed; the job's own handling still runs.
        with contextlib.suppress(DatabaseError):
            Operation.objects.filter(pk=operation.pk).update(
                outcome=Operation.Outcome.FAILURE, finished_at=timezone.now(), duration_ms=duration, error=describe(exc)
            )
            audit_record(
                action=f"provisioning.{step}",
                actor=SYSTEM,
                target=organization,
                outcome=AuditEvent.Outcome.FAILURE,
                message=describe(exc)[:2000],
                duration_ms=duration,
                request_id=job_id,
            )
        raise
    duration = int((time.monotonic() - clock) * 1000)
    Operation.objects.filter(pk=operation.pk).update(
        outcome=Operation.Outcome.SUCCESS, finished_at=timezone.now(), duration_ms=duration, message=message
    )
    audit_record(
        action=f"provisioning.{step}",
        actor=SYSTEM,
        target=organization,
        message=message,
        duration_ms=duration,
        request_id=job_id,
    )
    _hooks("finished", step, organization)


def step_registry(organization: Organization) -> str:
    """The django-tenants registry row and primary domain, in the tenant database's public schema."""
    alias = settings.TENANT_DB_ALIAS
    connection = tenant_connection()
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    with transaction.atomic(using=alias):
        tenant = Tenant.objects.using(alias).filter(organization_id=organization.pk).first()
        created = tenant is None
        if tenant is None:
            tenant = Tenant(schema_name=organization.schema_name, organization_id=organization.pk)
            tenant.save(using=alias)
        elif tenant.schema_name != organization.schema_name:
            raise ValidationError(
                f"The registry holds schema {tenant.schema_name!r} for this organisation, not "
                f"{organization.schema_name!r}; fix the registry before retrying.",
                code="registry_mismatch",
            )
        domain_name = f"{organization.slug}.{settings.TENANT_DOMAIN_SUFFIX}"
        if not Domain.objects.using(alias).filter(tenant=tenant).exists():
            Domain(domain=domain_name, tenant=tenant, is_primary=True).save(using=alias)
    return ("created" if created else "found") + f" registry row for schema {organization.schema_name}"


def step_schema(organization: Organization) -> str:
    if not organization.app_role_password:
        # Generated once and kept (encrypted) so a re-run gives the role the same password.
        organization.app_role_password = secrets.token_urlsafe(32)
        organization.save(update_fields=["app_role_password", "updated_at"])
    schema_create(schema=organization.schema_name, app_password=organization.app_role_password, actor=SYSTEM)
    return f"schema {organization.schema_name} and its roles are in place"


def step_templates(organization: Organization) -> str:
    # The engine reads settings.TENANT_TEMPLATES_DIR and applies each pending file in its own transaction.
    result = schema_apply(schema=organization.schema_name, applied_by=f"provisioning:{organization.slug}", actor=SYSTEM)
    names = ", ".join(applied.filename for applied in result.applied) or "none pending"
    return f"templates applied: {names} ({result.already_applied} already applied)"


def crm_users_table(schema: str) -> sql.Composed:
    validate_schema_name(schema)
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier("crm_users"))


def step_admin_user(organization: Organization) -> str:
    connection = tenant_connection()
    connection.ensure_connection()
    statement = sql.SQL(
        "INSERT INTO {} (email, full_name, role) VALUES (%s, %s, 'admin') ON CONFLICT (email) DO NOTHING"
    ).format(crm_users_table(organization.schema_name))
    with transaction.atomic(using=settings.TENANT_DB_ALIAS), connection.cursor() as cursor:
        cursor.execute(statement.as_string(connection.connection), [organization.admin_email, ""])
        inserted = cursor.rowcount
    return f"Tenant CRM admin {organization.admin_email} " + ("created" if inserted else "already there")


def step_invitation(organization: Organization) -> str:
    if organization.invited_at is not None:
        return f"Tenant CRM admin invitation already sent at {organization.invited_at.isoformat()}"
    with transaction.atomic(using="default"):
        invitation = invitation_create(
            email=organization.admin_email,
            role=TENANT_ADMIN_ROLE,
            inviter=None,
            organization_id=organization.pk,
            actor=SYSTEM,
        )
        organization.invited_at = timezone.now()
        organization.save(update_fields=["invited_at", "updated_at"])
    return f"Tenant CRM admin invitation {invitation.pk} sent to {organization.admin_email}"


STEPS: tuple[tuple[str, Step], ...] = (
    ("registry", step_registry),
    ("schema", step_schema),
    ("templates", step_templates),
    ("admin_user", step_admin_user),
    ("invitation", step_invitation),
)
