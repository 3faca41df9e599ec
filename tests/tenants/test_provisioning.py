"""Provisioning end to end on real PostgreSQL and Redis with a real RQ worker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.core import mail
from rest_framework.test import APIClient
from rq.timeouts import JobTimeoutException

from ghostcrm.accounts.models import Invitation
from ghostcrm.accounts.signals import invitation_accepted
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import TransientError
from ghostcrm.core.models import SystemSetting
from ghostcrm.organizations.models import Organization
from tenants import queue, services
from tenants.engine.services import tenant_roles
from tenants.keys import service_key_create
from tenants.models import Operation
from tenants.provisioning import steps
from tests.tenants.factories import PlanFactory
from tests.tenants.helpers import (
    ACTOR,
    STEPS,
    assert_fully_provisioned,
    tenant_query,
)

Status = Organization.Status
TENANT_DB = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)


@TENANT_DB
def test_api_request_to_active_schema_with_templates_admin_user_invitation_operations_and_audit(
    run_worker: Callable[[], int], settings: Any
) -> None:
    PlanFactory(code="starter", unit_amount=2_000)
    key, raw = service_key_create(
        name="signup", scopes=["organizations:write", "organizations:read"], actor=Actor.system("test")
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api.post(
        "/api/v1/organizations/",
        {"client_name": "ACME Corp", "admin_email": "Admin@ACME.test", "plan": "starter"},
        format="json",
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert body["status_url"].endswith(f"/api/v1/organizations/{body['id']}/")
    assert run_worker() == 1

    organization = Organization.objects.get(pk=body["id"])
    assert_fully_provisioned(organization)
    status = api.get(body["status_url"]).json()
    assert status["status"] == "active"
    assert status["activated_at"]
    assert status["last_error"] == ""
    assert [op["step"] for op in status["operations"]] == ["request", "provision", *STEPS, "activate"]
    assert all(op["outcome"] == "success" for op in status["operations"])
    assert all(op["duration_ms"] is not None for op in status["operations"])
    job_ids = {op["job_id"] for op in status["operations"] if op["step"] in STEPS}
    assert len(job_ids) == 1
    assert job_ids != {""}

    invitation = Invitation.objects.get(organization_id=organization.pk)
    assert (invitation.email, invitation.role) == ("admin@acme.test", "tenant_admin")
    assert any("admin@acme.test" in message.to for message in mail.outbox)
    actions = set(AuditEvent.objects.filter(organization_id=organization.pk).values_list("action", flat=True))
    assert {"organization.request", "organization.provision", "organization.activate"} <= actions
    assert {f"provisioning.{step}" for step in STEPS} <= actions
    request_event = AuditEvent.objects.get(action="organization.request", organization_id=organization.pk)
    assert (request_event.actor_type, request_event.actor_id) == ("api_key", str(key.pk))

    # The operation endpoint shows one step.
    op_id = status["operations"][2]["id"]
    assert api.get(f"/api/v1/operations/{op_id}/").json()["step"] == "registry"


@TENANT_DB
def test_duplicate_jobs_and_a_rerun_leave_one_schema_and_one_invitation(
    run_worker: Callable[[], int], request_organization: Callable[..., Organization]
) -> None:
    organization = request_organization()
    queue.enqueue(queue.PROVISION_JOB, str(organization.pk))  # a duplicate of the on-commit job
    assert run_worker() == 2
    assert_fully_provisioned(organization)
    # Re-running the steps on an active organisation changes nothing.
    queue.enqueue(queue.PROVISION_JOB, str(organization.pk))
    run_worker()
    assert_fully_provisioned(organization)
    assert Invitation.objects.filter(organization_id=organization.pk).count() == 1
    assert Operation.objects.filter(organization=organization, step="registry").count() == 1


@TENANT_DB
def test_bad_template_fails_at_once_with_the_reason_then_retry_after_the_fix_goes_active(
    run_worker: Callable[[], int], request_organization: Callable[..., Organization], template_copy: Path
) -> None:
    last = max(int(p.name.split("_", 1)[0]) for p in template_copy.glob("*.pgsql"))
    broken = template_copy / f"{last + 1:03d}_widgets.pgsql"
    broken.write_text("CREATE TABLE widgets (id uuid PRIMARY KEY);\nCREATE TABLE widgets_bad (id nosuchtype);\n")
    organization = request_organization()
    run_worker()
    organization.refresh_from_db()
    assert organization.status == Status.FAILED
    assert broken.name in organization.last_error
    assert "nosuchtype" in organization.last_error
    failed = Operation.objects.get(organization=organization, step="templates")
    assert failed.outcome == "failure"
    assert "nosuchtype" in failed.error
    # The failing file rolled back whole: nothing of it is in the schema.
    assert not tenant_query(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename LIKE 'widgets%%'", [organization.schema_name]
    )
    assert AuditEvent.objects.filter(action="organization.fail", outcome="failure").exists()

    broken.write_text("CREATE TABLE widgets (id uuid PRIMARY KEY);\n")

    services.organization_retry(organization_id=organization.pk, actor=ACTOR, reason="template fixed")
    run_worker()
    assert_fully_provisioned(organization)
    assert tenant_query(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'widgets'", [organization.schema_name]
    )
    assert Operation.objects.filter(organization=organization, step="templates").count() == 2


@TENANT_DB
def test_transient_errors_are_retried_and_the_last_attempt_marks_failed(
    run_worker: Callable[[], int], request_organization: Callable[..., Organization], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = steps.step_templates

    def flaky(organization: Organization) -> str:
        calls.append(organization.slug)
        if len(calls) == 1:
            raise TransientError("the tenant database restarted")
        return real(organization)

    monkeypatch.setattr(steps, "STEPS", tuple((n, flaky if n == "templates" else f) for n, f in steps.STEPS))
    organization = request_organization()
    run_worker()
    assert len(calls) == 2
    assert_fully_provisioned(organization)
    failures = Operation.objects.filter(organization=organization, step="templates", outcome="failure")
    assert [op.error for op in failures] == ["the tenant database restarted"]

    def always(organization: Organization) -> str:
        raise TransientError("still down")

    monkeypatch.setattr(steps, "STEPS", (("registry", always),))
    other = request_organization(name="Beta Ltd", email="admin@beta.test")
    run_worker()
    other.refresh_from_db()
    assert other.status == Status.FAILED
    assert other.last_error == "Gave up after repeated transient errors: still down"
    assert Operation.objects.filter(organization=other, step="registry", outcome="failure").count() == 3


@TENANT_DB
def test_invitation_accepted_stores_the_password_hash_on_the_crm_admin(
    run_worker: Callable[[], int], request_organization: Callable[..., Organization]
) -> None:
    organization = request_organization()
    run_worker()
    invitation = Invitation.objects.get(organization_id=organization.pk)
    invitation_accepted.send(sender=Invitation, invitation=invitation, password_hash="argon2$fake$hash")
    rows = tenant_query(
        f'SELECT password_hash FROM "{organization.schema_name}".crm_users WHERE email = %s',
        [organization.admin_email],
    )
    assert rows == [("argon2$fake$hash",)]
    assert AuditEvent.objects.filter(action="tenant_admin.password_set", organization_id=organization.pk).exists()


@TENANT_DB
def test_roles_follow_the_engine_naming(request_organization: Callable[..., Organization], run_worker: Any) -> None:
    organization = request_organization()
    run_worker()
    roles = tenant_roles(organization.schema_name)
    found = {
        r[0] for r in tenant_query("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [[roles.owner, roles.app]])
    }
    assert found == {roles.owner, roles.app}


@TENANT_DB
def test_a_job_timeout_marks_the_organisation_failed_with_the_reason(
    run_worker: Callable[[], int], request_organization: Callable[..., Organization], monkeypatch: pytest.MonkeyPatch
) -> None:
    def stuck(organization: Organization) -> str:
        raise JobTimeoutException("Task exceeded maximum timeout value (45 seconds)")

    monkeypatch.setattr(steps, "STEPS", (("registry", stuck),))
    SystemSetting.objects.create(key="provisioning.job_timeout_seconds", value="45")
    organization = request_organization()
    job_id = Operation.objects.filter(organization=organization).values_list("job_id", flat=True).first()
    assert job_id == ""  # the request itself ran outside any job

    queued = django_rq.get_queue("provisioning").jobs
    assert [job.timeout for job in queued] == [45]
    run_worker()
    organization.refresh_from_db()
    assert organization.status == Status.FAILED
    assert "JobTimeoutException" in organization.last_error
    assert "45 seconds" in organization.last_error
    assert queue.retries_left() == 0  # outside a job
