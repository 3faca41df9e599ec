"""The provisioning job's idempotency claims, step by step, and the reconciler's threshold."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import django_rq
import psycopg
import pytest
from django.db import connections
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from ghostcrm.accounts.models import Invitation
from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.models import SystemSetting
from ghostcrm.organizations.models import Organization
from tenants import provisioning, queue
from tenants.models import Domain, Operation, Tenant
from tenants.provisioning import steps
from tests.tenants.helpers import STEPS, assert_fully_provisioned, schemas_like, tenant_query

Status = Organization.Status
TENANT_DB = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)


@TENANT_DB
@pytest.mark.parametrize("crash_after", STEPS)
def test_a_retry_after_each_step_finishes_with_one_complete_schema(
    crash_after: str, monkeypatch: pytest.MonkeyPatch, request_organization: Callable[..., Organization]
) -> None:
    """The step's work is done, then the connection drops before it is recorded: RQ's retry runs every step again."""

    def crash_once(func: Callable[[Organization], str]) -> Callable[[Organization], str]:
        calls = []

        def wrapped(organization: Organization) -> str:
            message = func(organization)
            calls.append(1)
            if len(calls) == 1:
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return message

        return wrapped

    monkeypatch.setattr(steps, "STEPS", tuple((s, crash_once(f) if s == crash_after else f) for s, f in steps.STEPS))
    monkeypatch.setattr("tenants.queue.retries_left", lambda: 1)  # as inside an RQ job with a retry to come
    organization = request_organization()
    with pytest.raises(psycopg.OperationalError):
        provisioning.organization_provision(organization_id=str(organization.pk), job_id="job-1")
    organization.refresh_from_db()
    assert organization.status == Status.PROVISIONING
    assert "will retry" in organization.last_error

    assert provisioning.organization_provision(organization_id=str(organization.pk), job_id="job-1") == Status.ACTIVE
    assert_fully_provisioned(organization)
    assert Tenant.objects.using("tenants").filter(organization_id=organization.pk).count() == 1
    assert Domain.objects.using("tenants").filter(tenant__organization_id=organization.pk).count() == 1
    assert Invitation.objects.filter(organization_id=organization.pk).count() == 1
    ledger = tenant_query(
        "SELECT version, count(*) FROM public.tenant_sql_ledger WHERE schema_name = %s GROUP BY version",
        [organization.schema_name],
    )
    assert ledger
    assert all(count == 1 for _, count in ledger)
    failed = Operation.objects.get(organization=organization, outcome="failure")
    assert (failed.step, failed.attempt) == (crash_after, 1)
    second = Operation.objects.filter(organization=organization, step__in=STEPS, attempt=2, outcome="success")
    assert sorted(second.values_list("step", flat=True)) == sorted(STEPS)
    assert Operation.objects.filter(organization=organization, step="activate").count() == 1
    assert AuditEvent.objects.filter(action=f"provisioning.{crash_after}", outcome="failure").count() == 1


@TENANT_DB
def test_the_same_job_twice_at_once_provisions_once(request_organization: Callable[..., Organization]) -> None:
    organization = request_organization()
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(provisioning.organization_provision(organization_id=str(organization.pk), job_id="dup"))
        except Exception as exc:
            results.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # One runs the steps; the other finds the lock taken ("busy") or, if it came second, the work done.
    assert sorted(results) in (["active", "busy"], ["active", "active"]), results
    assert_fully_provisioned(organization)
    assert schemas_like(organization.schema_name) == [organization.schema_name]
    assert Operation.objects.filter(organization=organization, step="registry").count() == 1
    assert Operation.objects.filter(organization=organization, step="provision").count() == 1


def _aged(organization: Organization, *, status: str, changed_minutes_ago: float, step_minutes_ago: float) -> None:
    now = timezone.now()
    Organization.objects.filter(pk=organization.pk).update(
        status=status, status_changed_at=now - dt.timedelta(minutes=changed_minutes_ago)
    )
    Operation.objects.filter(organization=organization).update(started_at=now - dt.timedelta(minutes=step_minutes_ago))


@pytest.mark.django_db(databases=["default", "tenants"])
def test_reconciler_threshold_picks_only_what_made_no_progress(
    redis_conn: Any, request_organization: Callable[..., Organization]
) -> None:
    SystemSetting.objects.create(key="provisioning.stuck_after_minutes", value="15")
    cases = {
        "stuck pending": ("pending", 20, 20, True),
        "stuck provisioning": ("provisioning", 30, 16, True),
        "stuck deprovisioning": ("deprovisioning", 60, 60, True),
        "old status, recent step": ("provisioning", 60, 5, False),
        "recent status": ("pending", 5, 20, False),
        "just under": ("pending", 14, 14, False),
        "failed waits for a person": ("failed", 60, 60, False),
        "active": ("active", 60, 60, False),
        "suspended": ("suspended", 60, 60, False),
    }
    organizations = {}
    for name, (status, changed, step, _) in cases.items():
        organization = request_organization(name=name, email=f"{name.split()[0]}@acme.test")
        _aged(organization, status=status, changed_minutes_ago=changed, step_minutes_ago=step)
        organizations[name] = organization
    django_rq.get_queue("provisioning").empty()  # the requests' own on-commit jobs

    stuck = {o.name for o in provisioning.stuck_organizations(older_than=dt.timedelta(minutes=15))}
    assert stuck == {name for name, case in cases.items() if case[3]}
    assert provisioning.organizations_reconcile() == {
        "requeued": 3,
        "enqueue_failures": 0,
        "logins_repaired": 0,
        "login_repair_failures": 0,
        "logins_missing": 1,  # "active" has no schema, so no login role: reported
        "purged": 0,
        "purge_failures": 0,
    }
    queued = [job.func_name for job in django_rq.get_queue("provisioning").jobs]
    assert sorted(queued) == sorted(
        ["tenants.jobs.organization_provision_job"] * 2 + ["tenants.jobs.organization_deprovision_job"]
    )
    for name in ("stuck pending", "stuck provisioning", "stuck deprovisioning"):
        row = Operation.objects.get(organization=organizations[name], step="reconcile")
        assert row.job_id
        assert "no progress for 0:15:00" in row.message
        assert row.from_status == row.to_status == cases[name][0]  # the reconciler changes no status
    assert AuditEvent.objects.filter(action="organization.reconcile").count() == 3
    # The reconcile row is progress: the next run within the threshold leaves them to the jobs just queued.
    assert provisioning.organizations_reconcile()["requeued"] == 0


@pytest.mark.django_db(databases=["default", "tenants"])
def test_reconciler_without_redis_counts_what_it_could_not_requeue_and_records_nothing(
    monkeypatch: pytest.MonkeyPatch, request_organization: Callable[..., Organization]
) -> None:
    def no_redis(*args: Any, **kwargs: Any) -> str:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    organization = request_organization()
    _aged(organization, status="pending", changed_minutes_ago=60, step_minutes_ago=60)
    monkeypatch.setattr(queue, "enqueue", no_redis)
    result = provisioning.organizations_reconcile()
    assert (result["requeued"], result["enqueue_failures"]) == (0, 1)
    assert not Operation.objects.filter(organization=organization, step="reconcile").exists()
    # Still stuck, so the next run (with Redis back) tries again.
    assert [o.pk for o in provisioning.stuck_organizations(older_than=dt.timedelta(minutes=15))] == [organization.pk]
