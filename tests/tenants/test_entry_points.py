"""Admin actions, API calls and the ``tenants`` command reach the same lifecycle services, with the same records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.organizations.models import Organization
from tenants import roles, services
from tenants.keys import service_key_create
from tenants.models import Operation

pytestmark = pytest.mark.django_db
ACTIONS = ("suspend", "resume", "deprovision")


def _via_admin(admin_session: Any) -> Callable[[Organization, str], None]:
    def run(organization: Organization, action: str) -> None:
        data = {"action": f"{action}_selected", "_selected_action": [str(organization.pk)], "confirm": "yes",
                "reason": f"{action} by hand"}  # fmt: skip
        assert admin_session.post(reverse("admin:organizations_organization_changelist"), data).status_code == 302

    return run


def _via_api(_admin_session: Any) -> Callable[[Organization, str], None]:
    _, raw = service_key_create(name="ops", scopes=["organizations:lifecycle"], actor=Actor.system("t"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def run(organization: Organization, action: str) -> None:
        url = f"/api/v1/organizations/{organization.pk}/{action}/"
        assert client.post(url, {"reason": f"{action} by hand"}, format="json").status_code in (200, 202)

    return run


def _via_command(_admin_session: Any) -> Callable[[Organization, str], None]:
    def run(organization: Organization, action: str) -> None:
        call_command("tenants", action, organization.slug, "--reason", f"{action} by hand")

    return run


@pytest.mark.parametrize(
    ("entry_point", "actor_type"), [(_via_admin, "user"), (_via_api, "api_key"), (_via_command, "system")]
)
def test_every_entry_point_records_one_operation_and_one_audit_event_per_action(
    entry_point: Callable[[Any], Callable[[Organization, str], None]],
    actor_type: str,
    admin_session: Any,
    redis_conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # The PostgreSQL side of suspend/resume is proven in test_suspend_deprovision; here only who calls what.
    role_calls: list[tuple[str, str]] = []
    monkeypatch.setattr(roles, "app_role_disable", lambda *, schema: role_calls.append(("disable", schema)))
    monkeypatch.setattr(roles, "app_role_enable", lambda *, schema: role_calls.append(("enable", schema)))
    run = entry_point(admin_session)
    active = services.organization_request(name="ACME Corp", admin_email="a@acme.test", actor=Actor.system("t"))
    failed = services.organization_request(name="Globex", admin_email="it@globex.test", actor=Actor.system("t"))
    Organization.objects.filter(pk=active.pk).update(status="active")
    Organization.objects.filter(pk=failed.pk).update(status="failed", last_error="boom")

    expected = [("suspend", "active", "suspended"), ("resume", "suspended", "active"),
                ("deprovision", "active", "deprovisioning")]  # fmt: skip
    # The login-role changes run once the main transaction commits (the test's own transaction never does).
    for action in ACTIONS:
        with django_capture_on_commit_callbacks(execute=True):
            run(active, action)
    run(failed, "retry")

    steps = Operation.objects.filter(organization=active).exclude(step="request").order_by("id")
    assert list(steps.values_list("step", "from_status", "to_status")) == expected
    assert all(op.message == f"{op.step} by hand" for op in steps)
    retry = Operation.objects.get(organization=failed, step="retry")
    assert (retry.from_status, retry.to_status, retry.message) == ("failed", "pending", "retry by hand")
    assert role_calls == [("disable", active.schema_name), ("enable", active.schema_name)]
    events = AuditEvent.objects.filter(action__in=[f"organization.{a}" for a in (*ACTIONS, "retry")])
    assert sorted(events.values_list("action", flat=True)) == sorted(f"organization.{a}" for a in (*ACTIONS, "retry"))
    assert set(events.values_list("actor_type", flat=True)) == {actor_type}


def test_suspending_a_suspended_organisation_is_409_in_the_api_and_refused_everywhere(
    admin_session: Any, redis_conn: Any
) -> None:
    _, raw = service_key_create(name="ops", scopes=["organizations:lifecycle"], actor=Actor.system("t"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    organization = services.organization_request(name="ACME Corp", admin_email="a@acme.test", actor=Actor.system("t"))
    Organization.objects.filter(pk=organization.pk).update(status="suspended")

    response = client.post(f"/api/v1/organizations/{organization.pk}/suspend/", {"reason": "again"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "already_suspended"
    with pytest.raises(CommandError, match="already suspended"):
        call_command("tenants", "suspend", organization.slug)
    data = {"action": "suspend_selected", "_selected_action": [str(organization.pk)], "confirm": "yes"}
    page = admin_session.post(reverse("admin:organizations_organization_changelist"), data, follow=True)
    assert "is already suspended" in page.content.decode()
    assert not Operation.objects.filter(organization=organization, step="suspend").exists()
