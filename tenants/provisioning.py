"""The provisioning job's work: turn a pending organisation into a live, isolated schema (and back out).

Each step is idempotent, so a retried, duplicated or reconciled job picks up where a dead one stopped and
never leaves two schemas or half a schema: the registry row is looked up by organisation, the engine's
``schema_create`` and ``schema_apply`` are idempotent and apply each template in its own transaction, the
admin user is inserted ``ON CONFLICT DO NOTHING`` and the invitation is sent once (``invited_at``).
Two workers never run one organisation at once: a PostgreSQL advisory lock in the tenant database (held
by the worker's session, so it vanishes with a killed worker) guards the whole run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError as DjangoOperationalError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from psycopg import sql
from redis.exceptions import RedisError

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.errors import ApplicationError, Conflict, NotFound, TransientError, ValidationError
from ghostcrm.core.system_settings import setting_value
from ghostcrm.organizations.models import Organization
from ghostcrm.organizations.schema_names import validate_schema_name
from tenants import selectors, services
from tenants.db import tenant_connection
from tenants.models import Domain, Operation, Tenant

logger = logging.getLogger(__name__)
Status = Organization.Status
SYSTEM = Actor.system("provisioning")
ADVISORY_NAMESPACE = 0x6763  # "gc": keeps our organisation locks apart from the engine's schema locks
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    psycopg.OperationalError,
    DjangoOperationalError,
)


class OrganizationBusy(Exception):
    """Another worker holds this organisation's lock."""


# --- the per-organisation lock -----------------------------------------------------------------------


def _lock_key(organization_id: uuid.UUID | str) -> int:
    # pg_try_advisory_lock(int4, int4): a CRC of the id as a signed 32-bit key.
    value = zlib.crc32(str(organization_id).encode())
    return value - (1 << 32) if value >= (1 << 31) else value


@contextlib.contextmanager
def organization_lock(organization_id: uuid.UUID | str) -> Iterator[None]:
    """Hold this organisation's advisory lock on the tenant database session, or raise ``OrganizationBusy``."""
    connection = tenant_connection()
    key = _lock_key(organization_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_NAMESPACE, key])
        if not cursor.fetchone()[0]:
            raise OrganizationBusy(str(organization_id))
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_NAMESPACE, key])
        except Exception:  # the session is gone, and the lock with it
            logger.warning("could not release the advisory lock of organisation %s", organization_id)


# --- steps -------------------------------------------------------------------------------------------


def _run_step(
    organization: Organization, *, step: str, job_id: str, attempt: int, func: Callable[[Organization], str]
) -> None:
    """Run one step, recording it as an Operation (duration, outcome, error) and an audit event."""
    started = timezone.now()
    clock = time.monotonic()
    operation = Operation.objects.create(
        organization=organization,
        step=step,
        attempt=attempt,
        from_status=organization.status,
        to_status=organization.status,
        started_at=started,
        job_id=job_id,
        actor_label=SYSTEM.label,
    )
    try:
        message = func(organization)
    except BaseException as exc:
        duration = int((time.monotonic() - clock) * 1000)
        with contextlib.suppress(Exception):
            Operation.objects.filter(pk=operation.pk).update(
                outcome=Operation.Outcome.FAILURE,
                finished_at=timezone.now(),
                duration_ms=duration,
                error=_describe(exc),
            )
            audit_record(
                action=f"provisioning.{step}",
                actor=SYSTEM,
                target=organization,
                outcome=AuditEvent.Outcome.FAILURE,
                message=_describe(exc)[:2000],
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
    _test_hold(step)


def _test_hold(step: str) -> None:
    """Test-only pause point: with GHOSTCRM_PROVISION_HOLD=<step>:<dir>, announce and wait after ``step``.

    The fault-injection test kills the worker while it waits here (no sleeps for timing on its side). Never set
    outside tests; refused in production.
    """
    hold = os.environ.get("GHOSTCRM_PROVISION_HOLD", "")
    if not hold or settings.GHOSTCRM_ENV == "production":
        return
    hold_step, _, directory = hold.partition(":")
    if hold_step != step:
        return
    folder = Path(directory)
    (folder / "reached").write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _step_registry(organization: Organization) -> str:
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


def _step_schema(organization: Organization) -> str:
    from tenants.engine.services import schema_create

    if not organization.app_role_password:
        # Generated once and kept (encrypted) so a re-run gives the role the same password.
        organization.app_role_password = secrets.token_urlsafe(32)
        organization.save(update_fields=["app_role_password", "updated_at"])
    schema_create(schema=organization.schema_name, app_password=organization.app_role_password, actor=SYSTEM)
    return f"schema {organization.schema_name} and its roles are in place"


def _step_templates(organization: Organization) -> str:
    from tenants.engine.services import schema_apply

    # The engine reads settings.TENANT_TEMPLATES_DIR and applies each pending file in its own transaction.
    result = schema_apply(schema=organization.schema_name, applied_by=f"provisioning:{organization.slug}", actor=SYSTEM)
    names = ", ".join(applied.filename for applied in result.applied) or "none pending"
    return f"templates applied: {names} ({result.already_applied} already applied)"


def _crm_users(schema: str) -> sql.Composed:
    validate_schema_name(schema)
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier("crm_users"))


def _step_admin_user(organization: Organization) -> str:
    connection = tenant_connection()
    connection.ensure_connection()
    statement = sql.SQL(
        "INSERT INTO {} (email, full_name, role) VALUES (%s, %s, 'admin') ON CONFLICT (email) DO NOTHING"
    ).format(_crm_users(organization.schema_name))
    with transaction.atomic(using=settings.TENANT_DB_ALIAS), connection.cursor() as cursor:
        cursor.execute(statement.as_string(connection.connection), [organization.admin_email, ""])
        inserted = cursor.rowcount
    return f"admin user {organization.admin_email} " + ("created" if inserted else "already there")


def _step_invitation(organization: Organization) -> str:
    if organization.invited_at is not None:
        return f"invitation already sent at {organization.invited_at.isoformat()}"
    from ghostcrm.accounts.services import invitation_create

    with transaction.atomic(using="default"):
        invitation = invitation_create(
            email=organization.admin_email,
            role="tenant_admin",
            inviter=None,
            organization_id=organization.pk,
            actor=SYSTEM,
        )
        organization.invited_at = timezone.now()
        organization.save(update_fields=["invited_at", "updated_at"])
    return f"invitation {invitation.pk} sent to {organization.admin_email}"


STEPS: tuple[tuple[str, Callable[[Organization], str]], ...] = (
    ("registry", _step_registry),
    ("schema", _step_schema),
    ("templates", _step_templates),
    ("admin_user", _step_admin_user),
    ("invitation", _step_invitation),
)


def _describe(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, ApplicationError) else str(exc)
    if isinstance(exc, DjangoValidationError):
        message = " ".join(exc.messages)
    return message.strip() or type(exc).__name__


# --- the job -----------------------------------------------------------------------------------------


def _claim(organization_id: str, job_id: str) -> tuple[Organization, int] | None:
    """Lock the row and move pending -> provisioning; ``None`` when there is nothing to do."""
    with transaction.atomic(using="default"):
        organization = services._lock(organization_id)
        if organization.status == Status.PENDING:
            services._transition(
                organization, to_status=Status.PROVISIONING, actor=SYSTEM, step="provision", job_id=job_id
            )
        elif organization.status != Status.PROVISIONING:
            return None
        return organization, services._next_attempt(organization, "registry")


def organization_provision(*, organization_id: str, job_id: str = "") -> str:
    """Provision one organisation to ``active``; returns its status at the end.

    Bad templates and invalid data fail at once (status ``failed`` with a readable ``last_error``); transient
    faults are re-raised so RQ retries with backoff, and the last attempt marks the organisation failed.
    """
    from tenants.jobs import retries_left

    try:
        with organization_lock(organization_id):
            claimed = _claim(organization_id, job_id)
            if claimed is None:
                return Organization.objects.get(pk=organization_id).status
            organization, attempt = claimed
            try:
                for step, func in STEPS:
                    organization.refresh_from_db()
                    _run_step(organization, step=step, job_id=job_id, attempt=attempt, func=func)
                services.organization_transition(
                    organization_id=organization_id,
                    to_status=Status.ACTIVE,
                    actor=SYSTEM,
                    step="activate",
                    reason=f"provisioned in {attempt} attempt(s)",
                    job_id=job_id,
                )
                return Status.ACTIVE
            except TRANSIENT_ERRORS as exc:
                if retries_left() > 0:
                    _note_transient(organization_id, exc)
                    raise
                _fail(organization_id, f"Gave up after repeated transient errors: {_describe(exc)}", job_id)
                raise
            except (ValidationError, DjangoValidationError) as exc:
                # Permanent (a bad template, invalid data): no retry will help until someone fixes it.
                _fail(organization_id, _describe(exc), job_id)
                return Status.FAILED
            except Exception as exc:
                _fail(organization_id, f"{type(exc).__name__}: {_describe(exc)}", job_id)
                raise
    except OrganizationBusy:
        logger.info("organisation %s is being provisioned by another worker", organization_id)
        return "busy"


def _note_transient(organization_id: str, exc: BaseException) -> None:
    with contextlib.suppress(Exception):
        Organization.objects.filter(pk=organization_id).update(
            last_error=f"Transient error, will retry: {_describe(exc)}"[:10000], updated_at=timezone.now()
        )


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
    except Exception:
        logger.exception("could not mark organisation %s failed: %s", organization_id, error)


# --- deprovisioning, export, purge -------------------------------------------------------------------


def _backups_dir() -> Path:
    folder = Path(settings.TENANT_BACKUPS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _pg_env_and_args() -> tuple[dict[str, str], list[str]]:
    params = tenant_connection().settings_dict
    env = {**os.environ}
    if params.get("PASSWORD"):
        env["PGPASSWORD"] = str(params["PASSWORD"])
    args = ["-h", str(params.get("HOST") or "127.0.0.1"), "-p", str(params.get("PORT") or 5432)]
    if params.get("USER"):
        args += ["-U", str(params["USER"])]
    return env, args


def _schema_exists(schema: str) -> bool:
    with tenant_connection().cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return cursor.fetchone() is not None


def _ledger_sql(schema: str) -> str:
    """The schema's successful ledger rows as INSERTs, so a restored schema is not re-templated."""
    from tenants.engine.models import TemplateApplication

    columns = [
        "schema_name", "version", "description", "filename", "checksum", "applied_by", "applied_at", "duration_ms",
        "success", "sqlstate", "error", "failed_statement", "failed_line",
    ]  # fmt: skip
    rows = TemplateApplication.objects.using(settings.TENANT_DB_ALIAS).filter(schema_name=schema, success=True)
    connection = tenant_connection()
    connection.ensure_connection()
    statements = []
    for row in rows.order_by("version").values_list(*columns):
        statement = sql.SQL("INSERT INTO public.{} ({}) VALUES ({}) ON CONFLICT DO NOTHING;").format(
            sql.Identifier(TemplateApplication._meta.db_table),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            sql.SQL(", ").join(sql.Literal(v) for v in row),
        )
        statements.append(statement.as_string(connection.connection))
    return "\n".join([f"\n-- ghostcrm: template ledger of schema {schema}", *statements, ""])


def schema_export(*, schema: str, destination: Path | None = None) -> Path:
    """``pg_dump -n <schema>`` (plain SQL, owners and grants kept) plus its ledger rows; returns the file."""
    validate_schema_name(schema)
    if not _schema_exists(schema):
        raise NotFound(f"Schema {schema!r} does not exist in the tenant database.", code="schema_not_found")
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise ApplicationError("pg_dump is not installed on this machine; install the PostgreSQL client tools.")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    target = destination or _backups_dir() / f"{schema}-{stamp}.sql"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    env, args = _pg_env_and_args()
    dbname = str(tenant_connection().settings_dict["NAME"])
    result = subprocess.run(  # noqa: S603 - fixed program, validated schema name, no shell
        [pg_dump, *args, "--schema", schema, "--file", str(partial), "--no-password", dbname],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise TransientError(f"pg_dump of schema {schema!r} failed: {result.stderr.strip()[:2000]}")
    with partial.open("a", encoding="utf-8") as handle:
        handle.write(_ledger_sql(schema))
    partial.replace(target)  # an export file is either complete or absent
    return target


CREATE_SCHEMA_RE = re.compile(r'^CREATE SCHEMA "?([a-z][a-z0-9_]{2,62})"?;$', re.MULTILINE)


def schema_restore(*, path: Path, actor: Actor) -> str:
    """Restore a schema exported by ``schema_export`` into the tenant database; returns the schema name.

    Refused when the schema exists. The schema and its roles are created first (the engine's
    ``schema_create``, with the organisation's stored password when there is one), then the dump runs in one
    transaction; if it fails, what was created is dropped again.
    """
    from tenants import roles
    from tenants.engine.services import schema_create, schema_drop, schema_name_check

    if not path.is_file():
        raise NotFound(f"{path} is not a file.", code="file_not_found")
    text = path.read_text(encoding="utf-8")
    found = CREATE_SCHEMA_RE.findall(text)
    if len(found) != 1:
        raise ValidationError(f"{path} is not a one-schema export (found {len(found)} CREATE SCHEMA statements).")
    schema = schema_name_check(found[0])
    if _schema_exists(schema):
        raise Conflict(f"Schema {schema!r} already exists; drop or rename it before restoring.", code="schema_exists")
    psql = shutil.which("psql")
    if psql is None:
        raise ApplicationError("psql is not installed on this machine; install the PostgreSQL client tools.")
    organization = Organization.objects.filter(schema_name=schema).first()
    password = organization.app_role_password if organization is not None else None
    started = time.monotonic()
    schema_create(schema=schema, app_password=password or None, actor=actor)
    # The schema now exists with its owner: the dump's own CREATE SCHEMA would fail, so it is left out.
    body = CREATE_SCHEMA_RE.sub("", text, count=1)
    env, args = _pg_env_and_args()
    dbname = str(tenant_connection().settings_dict["NAME"])
    result = subprocess.run(  # noqa: S603 - fixed program, no shell
        [psql, *args, "--no-password", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", dbname],
        input=body,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        schema_drop(schema=schema, actor=actor)
        raise ValidationError(f"Restoring {path.name} failed and was rolled back: {result.stderr.strip()[:2000]}")
    if organization is None or organization.status != Status.ACTIVE:
        roles.app_role_disable(schema=schema)  # only an active organisation's CRM may log in
    if organization is not None and organization.status in {Status.ACTIVE, Status.SUSPENDED}:
        _step_registry(organization)
    audit_record(
        action="tenant_sql.schema_restore",
        actor=actor,
        target_type="tenant_sql.schema",
        target_id=schema,
        target_repr=schema,
        organization_id=organization.pk if organization is not None else None,
        message=f"restored from {path}",
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return schema


def organization_deprovision_run(*, organization_id: str, job_id: str = "") -> str:
    """Deprovisioning job: end the tenant's sessions, export its schema, mark it deleted with a purge date."""
    from tenants import roles

    with organization_lock(organization_id):
        organization = Organization.objects.get(pk=organization_id)
        if organization.status != Status.DEPROVISIONING:
            return organization.status
        export_path = ""
        clock = time.monotonic()
        if _schema_exists(organization.schema_name):
            exported: list[Path] = []

            def export(org: Organization) -> str:
                roles.app_role_disable(schema=org.schema_name)
                exported.append(schema_export(schema=org.schema_name))
                return f"schema {org.schema_name} exported to {exported[0]}"

            # An operation row of its own, so a failing pg_dump shows in the admin like any provisioning step.
            attempt = services._next_attempt(organization, "export")
            _run_step(organization, step="export", job_id=job_id, attempt=attempt, func=export)
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
    from tenants.engine.services import schema_drop

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


# --- the reconciler ----------------------------------------------------------------------------------


def stuck_organizations(*, older_than: timedelta) -> list[Organization]:
    """Pending, provisioning or deprovisioning organisations with no progress for ``older_than``."""
    cutoff = timezone.now() - older_than
    candidates = Organization.objects.filter(
        status__in=[Status.PENDING, Status.PROVISIONING, Status.DEPROVISIONING]
    ).annotate(last_step=Max("operations__started_at"))
    return list(
        candidates.filter(Q(status_changed_at__lt=cutoff) | Q(status_changed_at__isnull=True)).filter(
            Q(last_step__lt=cutoff) | Q(last_step__isnull=True)
        )
    )


def organizations_reconcile() -> dict[str, int]:
    """Re-enqueue what is stuck (a lost Redis, a killed worker) and purge what is past its retention."""
    from tenants import jobs

    threshold = timedelta(minutes=int(setting_value("provisioning.stuck_after_minutes")))
    requeued = enqueue_failures = 0
    for organization in stuck_organizations(older_than=threshold):
        job = (
            jobs.organization_deprovision_job
            if organization.status == Status.DEPROVISIONING
            else jobs.organization_provision_job
        )
        try:
            job_id = jobs.enqueue(job, str(organization.pk))
        except RedisError:
            # Nothing recorded, so the next run picks it up again; the retention purge below needs no Redis.
            logger.exception("could not re-enqueue organisation %s; the next run tries again", organization.pk)
            enqueue_failures += 1
            continue
        services._record(
            organization,
            step="reconcile",
            actor=Actor.system("reconciler"),
            message=f"no progress for {threshold}; re-enqueued as job {job_id}",
            job_id=job_id,
        )
        requeued += 1
    purged = failed_purges = 0
    due = Organization.objects.filter(status=Status.DELETED, purge_after__lte=timezone.now())
    for organization_id in due.values_list("pk", flat=True):
        try:
            organization_purge(organization_id=str(organization_id), actor=Actor.system("retention"))
            purged += 1
        except (ApplicationError, OrganizationBusy, psycopg.Error, DjangoOperationalError):
            logger.exception("retention purge of organisation %s failed; the next run tries again", organization_id)
            failed_purges += 1
    return {
        "requeued": requeued,
        "enqueue_failures": enqueue_failures,
        "purged": purged,
        "purge_failures": failed_purges,
    }


def invitation_accepted_receiver(sender: Any, invitation: Any, password_hash: str, **kwargs: Any) -> None:
    """Store the accepted tenant admin's password hash on their CRM user inside the tenant schema."""
    organization_id = getattr(invitation, "organization_id", None)
    if getattr(invitation, "role", "") != "tenant_admin" or organization_id is None:
        return
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None or organization.status not in {Status.ACTIVE, Status.PROVISIONING}:
        return
    connection = tenant_connection()
    connection.ensure_connection()
    statement = sql.SQL("UPDATE {} SET password_hash = %s, updated_at = now() WHERE lower(email) = lower(%s)").format(
        _crm_users(organization.schema_name)
    )
    with transaction.atomic(using=settings.TENANT_DB_ALIAS), connection.cursor() as cursor:
        cursor.execute(statement.as_string(connection.connection), [password_hash, invitation.email])
        updated = cursor.rowcount
    audit_record(
        action="tenant_admin.password_set",
        actor=Actor.system("invitations"),
        target=organization,
        message=f"password set for CRM admin {invitation.email}" if updated else f"no CRM user {invitation.email}",
        outcome=AuditEvent.Outcome.SUCCESS if updated else AuditEvent.Outcome.FAILURE,
    )


def organization_export(*, organization_id: uuid.UUID | str, actor: Actor, destination: Path | None = None) -> Path:
    """Export an organisation's schema now (backups, moves); audited."""
    organization = selectors.organization_get(organization_id=organization_id)
    started = time.monotonic()
    path = schema_export(schema=organization.schema_name, destination=destination)
    audit_record(
        action="organization.export",
        actor=actor,
        target=organization,
        message=f"schema {organization.schema_name} exported to {path}",
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return path
