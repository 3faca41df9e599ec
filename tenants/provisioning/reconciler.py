"""The periodic reconciler: what the main database says against what the queue and the tenant database do.

- Organisations stuck pending, provisioning or deprovisioning (Redis lost, a worker killed) are re-enqueued;
  the ``running`` operation rows a killed run left are closed as ``abandoned`` first.
- Each organisation's status is compared with its tenant login role's real ``rolcanlogin``; a mismatch is
  repaired (and audited) or reported.
- Deleted organisations past their retention are purged.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import psycopg
from django.db import DatabaseError
from django.db import OperationalError as DjangoOperationalError
from django.db.models import Max, Q
from django.utils import timezone
from redis.exceptions import RedisError

from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import ApplicationError
from ghostcrm.core.system_settings import setting_value
from ghostcrm.organizations.models import Organization
from tenants import queue, roles, services
from tenants.engine.services import tenant_roles
from tenants.models import Operation
from tenants.provisioning.deprovision import organization_purge
from tenants.provisioning.locks import OrganizationBusy, organization_lock

logger = logging.getLogger(__name__)
Status = Organization.Status
RECONCILER = Actor.system("reconciler")


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


def _abandon_dead_run(organization: Organization) -> None:
    """Close the rows a killed run left ``running``, when no live worker holds the organisation."""
    if not organization.operations.filter(outcome=Operation.Outcome.RUNNING).exists():
        return
    try:
        with organization_lock(organization.pk):
            services.operations_abandon(
                organization=organization, actor=RECONCILER, reason="the run stopped without finishing this step"
            )
    except OrganizationBusy:
        return  # a worker is on it: its rows are live
    except DatabaseError:
        logger.exception("could not check the operations of organisation %s", organization.pk)


def _requeue_stuck() -> tuple[int, int]:
    threshold = timedelta(minutes=int(setting_value("provisioning.stuck_after_minutes")))
    requeued = failures = 0
    for organization in stuck_organizations(older_than=threshold):
        _abandon_dead_run(organization)
        job = queue.DEPROVISION_JOB if organization.status == Status.DEPROVISIONING else queue.PROVISION_JOB
        try:
            job_id = queue.enqueue(job, str(organization.pk))
        except RedisError:
            # Nothing recorded, so the next run picks it up again; the rest of the reconciler needs no Redis.
            logger.exception("could not re-enqueue organisation %s; the next run tries again", organization.pk)
            failures += 1
            continue
        services.operation_record(
            organization=organization,
            step="reconcile",
            actor=RECONCILER,
            message=f"no progress for {threshold}; re-enqueued as job {job_id}",
            job_id=job_id,
        )
        requeued += 1
    return requeued, failures


def _repair_login(organization: Organization, *, can_login: bool) -> bool:
    """Give the login role the LOGIN its organisation's status calls for; False when the database refused."""
    try:
        if can_login:
            roles.app_role_enable(schema=organization.schema_name)
        else:
            roles.app_role_disable(schema=organization.schema_name)
    except DatabaseError as exc:
        services.operation_record(
            organization=organization,
            step="login_repair",
            actor=RECONCILER,
            message="could not repair the tenant's login",
            error=str(exc).strip() or type(exc).__name__,
        )
        return False
    services.operation_record(
        organization=organization,
        step="login_repair",
        actor=RECONCILER,
        message=f"the tenant's login role {'could not' if can_login else 'could'} log in while the organisation is "
        f"{organization.status}; LOGIN {'restored' if can_login else 'revoked'}",
    )
    return True


def logins_reconcile() -> dict[str, int]:
    """Compare each organisation's status with its login role's ``rolcanlogin``; repair or report mismatches.

    ``missing`` counts organisations whose status calls for a login role that does not exist (reported, not
    repaired: the role comes back with the schema, by a retry or a restore).
    """
    organizations = list(Organization.objects.filter(status__in=list(services.LOGIN_BY_STATUS)))
    role_names = {organization.pk: tenant_roles(organization.schema_name).app for organization in organizations}
    actual = roles.roles_can_login(list(role_names.values()))
    repaired = failed = missing = 0
    for organization in organizations:
        expected = services.LOGIN_BY_STATUS[organization.status]
        can_login = actual.get(role_names[organization.pk])
        if can_login is None:
            if expected:
                logger.warning("organisation %s is active but its login role is missing", organization.slug)
                missing += 1
            continue
        if can_login == expected:
            continue
        if _repair_login(organization, can_login=expected):
            repaired += 1
        else:
            failed += 1
    return {"logins_repaired": repaired, "login_repair_failures": failed, "logins_missing": missing}


def _purge_due() -> tuple[int, int]:
    purged = failures = 0
    due = Organization.objects.filter(status=Status.DELETED, purge_after__lte=timezone.now())
    for organization_id in due.values_list("pk", flat=True):
        try:
            organization_purge(organization_id=str(organization_id), actor=Actor.system("retention"))
            purged += 1
        except (ApplicationError, OrganizationBusy, psycopg.Error, DjangoOperationalError):
            logger.exception("retention purge of organisation %s failed; the next run tries again", organization_id)
            failures += 1
    return purged, failures


def organizations_reconcile() -> dict[str, int]:
    """One reconciler run: re-enqueue what is stuck, repair tenant logins, purge what is past its retention."""
    requeued, enqueue_failures = _requeue_stuck()
    try:
        logins = logins_reconcile()
    except DatabaseError:
        # The tenant database is down: nothing to compare against now; the next run does it.
        logger.exception("could not compare tenant logins; the next run tries again")
        logins = {"logins_repaired": 0, "login_repair_failures": 0, "logins_missing": 0}
    purged, purge_failures = _purge_due()
    return {
        "requeued": requeued,
        "enqueue_failures": enqueue_failures,
        **logins,
        "purged": purged,
        "purge_failures": purge_failures,
    }
