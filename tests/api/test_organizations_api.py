"""The organisations API: request with idempotency, reads, lifecycle actions, errors, the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from ghostcrm.audit.models import AuditEvent
from ghostcrm.organizations.models import Organization
from tenants.models import Operation

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("billing_plans")]
URL = "/api/v1/organizations/"
BODY = {"client_name": "ACME Corp", "admin_email": "admin@acme.test", "plan": "starter"}


def test_post_returns_202_with_id_status_and_status_url(api: APIClient) -> None:
    response = api.post(URL, BODY, format="json")
    assert response.status_code == 202
    data = response.json()
    organization = Organization.objects.get(pk=data["id"])
    assert data["status"] == "pending" and organization.plan_code == "starter"
    assert data["status_url"] == f"http://testserver{URL}{organization.pk}/"
    assert response["Location"] == data["status_url"]
    detail = api.get(data["status_url"]).json()
    assert detail["id"] == data["id"] and detail["last_error"] == "" and "created_at" in detail
    assert [op["step"] for op in detail["operations"]] == ["request"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"admin_email": "a@b.test"}, "client_name"),
        ({"client_name": "ACME", "admin_email": "nope"}, "admin_email"),
        ({"client_name": "ACME"}, "admin_email"),
        ({"client_name": "Public", "admin_email": "a@b.test"}, "client_name"),
        ({"client_name": "9 Lives", "admin_email": "a@b.test"}, "client_name"),
        ({"client_name": "???", "admin_email": "a@b.test"}, "client_name"),
        ({"client_name": "ACME", "admin_email": "a@b.test", "plan": "no spaces allowed"}, "plan"),
    ],
)
def test_bad_input_is_400_with_field_errors_and_nothing_created(
    api: APIClient, body: dict[str, str], field: str
) -> None:
    response = api.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    data = response.json()
    assert data["code"] == "invalid" and data["message"]
    assert field in data["fields"]
    assert not Organization.objects.exists()


@pytest.mark.parametrize("code", ["gold", "retired"])
def test_a_plan_that_is_not_an_active_billing_plan_is_400_naming_the_plans_in_use(api: APIClient, code: str) -> None:
    from billing.models import Plan

    Plan.objects.filter(code="pro").update(code="retired", active=False)
    response = api.post(URL, {**BODY, "plan": code}, format="json")
    assert response.status_code == 400, response.content
    data = response.json()
    expected = f"There is no active billing plan with the code {code!r}; use one of: starter."
    assert (data["code"], data["message"], data["fields"]) == ("invalid", expected, {"plan": [expected]})
    assert not Organization.objects.exists()


def test_idempotency_key_replays_the_first_result_and_refuses_another_body(api: APIClient) -> None:
    first = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="signup-42")
    again = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="signup-42")
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = api.post(URL, {**BODY, "client_name": "Globex"}, format="json", HTTP_IDEMPOTENCY_KEY="signup-42")
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert Organization.objects.count() == 1
    bad = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="has spaces")
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["fields"]


def test_idempotency_keys_are_scoped_per_service_key(make_key: Callable[..., Any]) -> None:
    clients = []
    for name in ("a", "b"):
        _, raw = make_key(name=name)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        clients.append(client)
    assert clients[0].post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 202
    # Same header value from another caller with another body is a new request, not a 422.
    response = clients[1].post(URL, {**BODY, "client_name": "Globex"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 202
    assert Organization.objects.count() == 2


def test_same_name_for_another_admin_is_409(api: APIClient) -> None:
    api.post(URL, BODY, format="json")
    response = api.post(URL, {**BODY, "admin_email": "other@acme.test"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "organization_exists"
    assert list(response.json()["fields"]) == ["client_name"]  # the request body's name, not the model's


def test_list_filters_by_status_and_refuses_unknown_status(api: APIClient) -> None:
    api.post(URL, BODY, format="json")
    api.post(URL, {**BODY, "client_name": "Globex"}, format="json")
    Organization.objects.filter(name="Globex").update(status="failed")
    data = api.get(URL, {"status": "failed"}).json()
    assert data["count"] == 1 and [o["client_name"] for o in data["results"]] == ["Globex"]
    assert api.get(URL).json()["count"] == 2
    bad = api.get(URL, {"status": "sideways"})
    assert bad.status_code == 400 and "status" in bad.json()["fields"]


@pytest.mark.parametrize("path", [f"{URL}00000000-0000-0000-0000-000000000000/", f"{URL}not-a-uuid/",
                                  "/api/v1/operations/999999/", "/api/v1/operations/abc/"])  # fmt: skip
def test_unknown_ids_are_404_json(api: APIClient, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["code"] in {"organization_not_found", "operation_not_found"}


def test_lifecycle_actions_follow_the_lifecycle_and_are_audited_as_the_key(api: APIClient) -> None:
    org_id = api.post(URL, BODY, format="json").json()["id"]
    suspend = api.post(f"{URL}{org_id}/suspend/", {"reason": "unpaid"}, format="json")
    assert suspend.status_code == 409 and suspend.json()["code"] == "invalid_transition"
    Organization.objects.filter(pk=org_id).update(status="failed", last_error="boom")
    retry = api.post(f"{URL}{org_id}/retry/", format="json")
    assert retry.status_code == 202 and retry.json()["status"] == "pending" and retry.json()["last_error"] == ""
    deprovision = api.post(f"{URL}{org_id}/deprovision/", {"reason": "cancelled"}, format="json")
    assert deprovision.status_code == 202 and deprovision.json()["status"] == "deprovisioning"
    resume = api.post(f"{URL}{org_id}/resume/", format="json")
    assert resume.status_code == 409
    events = AuditEvent.objects.filter(action__in=["organization.retry", "organization.deprovision"])
    assert {e.actor_type for e in events} == {"api_key"}
    operation = Operation.objects.get(organization_id=org_id, step="deprovision")
    response = api.get(f"/api/v1/operations/{operation.pk}/").json()
    assert (response["step"], response["from_status"], response["to_status"]) == (
        "deprovision",
        "pending",
        "deprovisioning",
    )
    assert response["message"] == "cancelled"


def test_lifecycle_actions_need_the_lifecycle_scope(make_key: Callable[..., Any]) -> None:
    _, raw = make_key(["organizations:read", "organizations:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    org_id = client.post(URL, BODY, format="json").json()["id"]
    response = client.post(f"{URL}{org_id}/deprovision/", format="json")
    assert response.status_code == 403 and response.json()["code"] == "insufficient_scope"
    assert Organization.objects.get(pk=org_id).status == "pending"


def test_openapi_schema_and_docs_pages_use_local_assets() -> None:
    client = Client()
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/v1/organizations/{organization_id}/suspend/" in text and "ServiceKey" in text
    assert "Code of an active billing plan; empty for none." in text  # the request body's plan field
    for page in ("/api/docs/", "/api/redoc/"):
        html = client.get(page).content.decode()
        assert "drf_spectacular_sidecar" in html
        assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
