"""The lifecycle service: allowed transitions, operations and audit rows, requests and idempotency."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.db import OperationalError, transaction

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import Conflict, TransientError, ValidationError
from ghostcrm.organizations.models import Organization
from tenants import provisioning, queue, roles, services
from tenants.models import IdempotencyRecord, Operation
from tenants.provisioning import backups, runner
from tests.tenants.factories import PlanFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
Status = Organization.Status


def _request(name: str = "ACME Corp", email: str = "admin@acme.test", **kwargs: object) -> Organization:
    return services.organization_request(name=name, admin_email=email, actor=ACTOR, **kwargs)  # type: ignore[arg-type]


def test_request_creates_a_pending_organisation_with_an_operation_and_audit_event() -> None:
    PlanFactory(code="starter", unit_amount=2_000)
    organization = _request(plan_code="starter")
    assert organization.status == Status.PENDING
    assert (organization.slug, organization.schema_name) == ("acme-corp", "acme_corp")
    assert organization.admin_email == "admin@acme.test"
    assert list(Operation.objects.filter(organization=organization).values_list("step", "to_status")) == [
        ("request", "pending")
    ]
    event = AuditEvent.objects.get(action="organization.request")
    assert event.organization_id == organization.pk
    assert event.actor_label == "test"


@pytest.mark.parametrize(
    ("name", "email", "field"),
    [
        ("", "admin@acme.test", "name"),
        ("   ", "admin@acme.test", "name"),
        ("!!!", "admin@acme.test", "name"),
        ("Public", "admin@acme.test", "name"),  # a reserved schema name
        ("Select", "admin@acme.test", "name"),  # a reserved key word
        ("1st Choice", "admin@acme.test", "name"),  # schema names start with a letter
        ("PG Stats", "admin@acme.test", "name"),  # pg_ prefix is PostgreSQL's
        ("x" * 201, "admin@acme.test", "name"),
        ("ACME Corp", "not-an-email", "admin_email"),
        ("ACME Corp", "", "admin_email"),
    ],
)
def test_bad_requests_are_refused_with_field_errors_and_nothing_is_written(name: str, email: str, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _request(name=name, email=email)
    assert field in caught.value.extra["fields"]
    assert not Organization.objects.exists()
    assert not Operation.objects.exists()


def test_a_plan_code_must_name_an_active_billing_plan() -> None:
    with pytest.raises(ValidationError) as caught:
        _request(plan_code="starter")
    none_yet = (
        "There is no active billing plan with the code 'starter'; no active plans exist, so leave the plan empty."
    )
    assert caught.value.message == none_yet
    assert caught.value.extra["fields"] == {"plan": [none_yet]}
    PlanFactory(code="team", unit_amount=5_000)
    retired = PlanFactory(code="starter", unit_amount=2_000)
    retired.active = False
    retired.save()
    for code in ("starter", "Team", "gold"):
        with pytest.raises(ValidationError) as caught:
            _request(plan_code=code)
        assert caught.value.extra["fields"]["plan"] == [
            f"There is no active billing plan with the code {code!r}; use one of: team."
        ]
    assert not Organization.objects.exists()
    assert not Operation.objects.exists()
    assert _request(plan_code=" team ").plan_code == "team"


def test_same_idempotency_key_and_body_returns_the_first_organisation() -> None:
    first = _request(idempotency_key="k1")
    again = _request(idempotency_key="k1")
    assert again.pk == first.pk
    assert Organization.objects.count() == 1
    assert IdempotencyRecord.objects.get(key="k1").organization_id == first.pk


def test_same_idempotency_key_with_another_body_is_refused() -> None:
    _request(idempotency_key="k1")
    with pytest.raises(services.IdempotencyKeyReused) as caught:
        _request(name="Other Corp", idempotency_key="k1")
    assert caught.value.http_status == 422
    assert Organization.objects.count() == 1


def test_a_second_request_for_the_same_client_returns_it_and_another_admin_conflicts() -> None:
    first = _request()
    assert _request(name="  ACME   corp ").pk == first.pk
    with pytest.raises(Conflict) as caught:
        _request(email="someone@else.test")
    assert caught.value.code == "organization_exists"
    assert Organization.objects.count() == 1


def test_allowed_transition_records_operation_and_audit() -> None:
    organization = _request()
    services.organization_transition(
        organization_id=organization.pk, to_status=Status.PROVISIONING, actor=ACTOR, step="provision", job_id="j1"
    )
    organization.refresh_from_db()
    assert organization.status == Status.PROVISIONING
    assert organization.status_changed_at is not None
    operation = Operation.objects.get(organization=organization, step="provision")
    assert (operation.from_status, operation.to_status, operation.job_id) == ("pending", "provisioning", "j1")
    assert AuditEvent.objects.filter(action="organization.provision", organization_id=organization.pk).count() == 1


def test_failed_transition_keeps_the_reason_and_active_sets_activated_at() -> None:
    organization = _request()
    for status in (Status.PROVISIONING, Status.FAILED):
        services.organization_transition(
            organization_id=organization.pk, to_status=status, actor=ACTOR, step=status, error="bad template"
        )
    organization.refresh_from_db()
    assert organization.last_error == "bad template"
    services.organization_transition(
        organization_id=organization.pk, to_status=Status.PENDING, actor=ACTOR, step="retry"
    )
    services.organization_transition(
        organization_id=organization.pk, to_status=Status.PROVISIONING, actor=ACTOR, step="provision"
    )
    services.organization_transition(
        organization_id=organization.pk, to_status=Status.ACTIVE, actor=ACTOR, step="activate"
    )
    organization.refresh_from_db()
    assert organization.last_error == ""
    assert organization.activated_at is not None


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (Status.PENDING, Status.ACTIVE),
        (Status.ACTIVE, Status.PENDING),
        (Status.FAILED, Status.ACTIVE),
        (Status.DELETED, Status.PENDING),  # deleted -> active/suspended only by a restore (undelete)
        (Status.PURGED, Status.PENDING),
        (Status.SUSPENDED, Status.FAILED),
    ],
)
def test_disallowed_transitions_conflict_and_change_nothing(start: str, target: str) -> None:
    organization = _request()
    Organization.objects.filter(pk=organization.pk).update(status=start)
    operations = Operation.objects.count()
    with pytest.raises(Conflict) as caught:
        services.organization_transition(organization_id=organization.pk, to_status=target, actor=ACTOR, step="x")
    assert caught.value.code == "invalid_transition"
    organization.refresh_from_db()
    assert organization.status == start
    assert Operation.objects.count() == operations


def test_retry_moves_failed_back_to_pending_and_refuses_active() -> None:
    organization = _request()
    Organization.objects.filter(pk=organization.pk).update(status=Status.FAILED, last_error="boom")
    services.organization_retry(organization_id=organization.pk, actor=ACTOR)
    organization.refresh_from_db()
    assert organization.status == Status.PENDING
    assert organization.last_error == ""
    Organization.objects.filter(pk=organization.pk).update(status=Status.ACTIVE)
    with pytest.raises(Conflict):
        services.organization_retry(organization_id=organization.pk, actor=ACTOR)


@pytest.mark.django_db(transaction=True)
def test_a_tenant_database_fault_after_suspend_or_resume_keeps_the_status_records_it_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    touched: list[bool] = []

    def down(*, schema: str) -> None:
        # Runs after the commit: outside the main transaction, so its row lock is already released.
        touched.append(transaction.get_connection().in_atomic_block)
        raise OperationalError("connection to server at 127.0.0.1 failed")

    monkeypatch.setattr(queue, "enqueue", lambda func, organization_id: "job-1")
    organization = services.organization_request(name="ACME Corp", admin_email="a@acme.test", actor=ACTOR)
    Organization.objects.filter(pk=organization.pk).update(status="active")
    monkeypatch.setattr(roles, "app_role_disable", down)
    with pytest.raises(TransientError, match="could not revoke its login") as caught:
        services.organization_suspend(organization_id=organization.pk, actor=ACTOR, reason="unpaid")
    assert caught.value.code == "tenant_database_unavailable"
    assert caught.value.http_status == 503
    assert touched == [False]
    organization.refresh_from_db()
    assert organization.status == "suspended"
    assert Operation.objects.filter(organization=organization, step="suspend", outcome="success").exists()
    sync = Operation.objects.get(organization=organization, step="login_sync")
    assert sync.outcome == "failure"
    assert "connection to server" in sync.error
    assert AuditEvent.objects.filter(action="organization.login_sync", outcome="failure").count() == 1

    monkeypatch.setattr(roles, "app_role_enable", down)
    with pytest.raises(TransientError, match="could not restore its login"):
        services.organization_resume(organization_id=organization.pk, actor=ACTOR, reason="paid")
    organization.refresh_from_db()
    assert organization.status == "active"
    assert Operation.objects.filter(organization=organization, step="login_sync", outcome="failure").count() == 2


def test_suspending_a_suspended_organisation_is_a_conflict() -> None:
    organization = _request()
    Organization.objects.filter(pk=organization.pk).update(status="suspended")
    with pytest.raises(Conflict) as caught:
        services.organization_suspend(organization_id=organization.pk, actor=ACTOR, reason="again")
    assert (caught.value.code, caught.value.http_status) == ("already_suspended", 409)
    assert not AuditEvent.objects.filter(action="organization.suspend").exists()


def test_a_tenant_database_unreachable_at_job_start_is_a_transient_failure_then_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreachable(organization_id: object) -> None:
        raise psycopg.OperationalError("connection to server at 127.0.0.1, port 5433 failed: Connection refused")

    organization = _request()
    monkeypatch.setattr(runner, "lock_acquire", unreachable)
    monkeypatch.setattr(queue, "retries_left", lambda: 1)
    with pytest.raises(psycopg.OperationalError):
        runner.organization_provision(organization_id=str(organization.pk), job_id="job-1")
    organization.refresh_from_db()
    assert organization.status == Status.PENDING
    assert organization.last_error.startswith("Transient error, will retry: connection to server")
    start = Operation.objects.get(organization=organization, step="start")
    assert (start.outcome, start.job_id) == ("failure", "job-1")
    assert "Connection refused" in start.error

    monkeypatch.setattr(queue, "retries_left", lambda: 0)  # the last try
    with pytest.raises(psycopg.OperationalError):
        runner.organization_provision(organization_id=str(organization.pk), job_id="job-1")
    organization.refresh_from_db()
    assert organization.status == Status.FAILED
    assert organization.last_error.startswith("Gave up after repeated transient errors: connection to server")
    assert Operation.objects.filter(organization=organization, step="start", outcome="failure").count() == 2


@pytest.mark.django_db(databases=["default", "tenants"])
def test_deprovisioning_records_the_export_as_an_operation_failed_or_done(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    organization = services.organization_request(name="ACME Corp", admin_email="a@acme.test", actor=ACTOR)
    Organization.objects.filter(pk=organization.pk).update(status="active")
    services.organization_deprovision(organization_id=organization.pk, actor=ACTOR, reason="contract ended")
    monkeypatch.setattr(backups, "schema_exists", lambda schema: True)
    monkeypatch.setattr(roles, "app_role_disable", lambda *, schema: 0)

    def broken_dump(*, schema: str, destination: Any = None) -> Any:
        raise TransientError("pg_dump of schema 'acme_corp' failed: disk full")

    monkeypatch.setattr(backups, "schema_export", broken_dump)
    with pytest.raises(TransientError):
        provisioning.organization_deprovision_run(organization_id=str(organization.pk), job_id="job-9")
    failed = Operation.objects.get(organization=organization, step="export")
    assert (failed.outcome, failed.job_id, failed.attempt) == ("failure", "job-9", 1)
    assert "disk full" in failed.error
    organization.refresh_from_db()
    assert organization.status == "deprovisioning"  # the reconciler or a retry runs it again

    dump = tmp_path / "acme_corp.sql"
    monkeypatch.setattr(backups, "schema_export", lambda *, schema, destination=None: dump)
    assert provisioning.organization_deprovision_run(organization_id=str(organization.pk)) == "deleted"
    done = Operation.objects.get(organization=organization, step="export", outcome="success")
    assert done.attempt == 2
    assert str(dump) in done.message
    organization.refresh_from_db()
    assert (organization.status, organization.export_path) == ("deleted", str(dump))
