"""The API's contract beyond the happy path: every error is JSON with a code and a message, rate-limit headers,
the caller-supplied id question, idempotency after the organisation moved on, and what the OpenAPI schema says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from ghostcrm.audit.services import Actor
from ghostcrm.organizations.models import Organization
from tenants import services
from tenants.models import IdempotencyRecord

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("billing_plans")]
URL = "/api/v1/organizations/"
BODY = {"client_name": "ACME Corp", "admin_email": "admin@acme.test", "plan": "starter"}
THROTTLED = {
    "EXCEPTION_HANDLER": "ghostcrm.core.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": {"service_key": "3/min"},
}


def _error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    data = response.json()
    assert isinstance(data["code"], str) and data["code"]
    assert isinstance(data["message"], str) and data["message"]
    if code is not None:
        assert data["code"] == code, data
    return data


@pytest.mark.parametrize(
    "path",
    ["/api/", "/api/v1/", "/api/v2/organizations/", "/api/v1/nothing/", "/api/v1/organizations/x/y/z/"],
)
def test_unknown_urls_under_api_are_404_json(api: APIClient, path: str) -> None:
    _error(api.get(path), 404, "not_found")
    _error(Client().post(path, {}), 404, "not_found")  # without a key too: the URL does not exist


def test_a_missing_trailing_slash_is_a_404_that_names_the_right_url(api: APIClient) -> None:
    data = _error(api.post(URL.rstrip("/"), BODY, format="json"), 404, "not_found")
    assert URL in data["message"]
    assert not Organization.objects.exists()


def test_method_not_allowed_is_405_json(api: APIClient) -> None:
    _error(api.delete(URL), 405, "method_not_allowed")
    _error(api.get(f"{URL}00000000-0000-0000-0000-000000000000/suspend/"), 405, "method_not_allowed")
    assert api.head(URL).status_code == 200  # HEAD needs what GET needs
    assert api.options(URL).status_code == 200


def test_auth_and_parse_errors_are_json(api: APIClient, make_key: Callable[..., Any]) -> None:
    response = Client().get(URL)
    _error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")
    _error(Client().get(URL, HTTP_AUTHORIZATION="Bearer gcrm_nope"), 401, "invalid_key")
    _, read_only = make_key(["organizations:read"], name="reader")
    _error(Client().post(URL, BODY, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {read_only}"),
           403, "insufficient_scope")  # fmt: skip
    _error(api.post(URL, "{not json", content_type="application/json"), 400, "parse_error")


@override_settings(REST_FRAMEWORK=THROTTLED)
def test_every_response_carries_rate_limit_headers_and_429_is_json(make_key: Callable[..., Any]) -> None:
    _, raw = make_key()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    remaining = []
    for _ in range(3):
        response = client.get(URL)
        assert response.status_code == 200
        assert response["RateLimit-Limit"] == "3"
        assert 0 < int(response["RateLimit-Reset"]) <= 60
        remaining.append(int(response["RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    limited = client.get(URL)
    data = _error(limited, 429, "throttled")
    assert limited["RateLimit-Remaining"] == "0" and limited["RateLimit-Limit"] == "3"
    assert 0 < int(limited["Retry-After"]) <= 60 and data["retry_after"] == int(limited["Retry-After"])
    # An error answered before the throttle ran (a 404 for an unknown organisation) still counts and says so.
    assert int(limited["RateLimit-Reset"]) > 0


@pytest.mark.parametrize("field", ["id", "client_id", "clientId"])
def test_a_caller_supplied_id_is_refused_with_the_way_to_get_idempotency(api: APIClient, field: str) -> None:
    data = _error(api.post(URL, {**BODY, field: "7c0e3c0e-0000-4000-8000-000000000001"}, format="json"), 400, "invalid")
    assert "Idempotency-Key" in data["fields"][field][0]
    assert not Organization.objects.exists()


def test_unknown_fields_are_refused_rather_than_ignored(api: APIClient) -> None:
    data = _error(api.post(URL, {**BODY, "admin_mail": "typo@acme.test"}, format="json"), 400, "invalid")
    assert "admin_mail" in data["fields"]
    assert not Organization.objects.exists()


def test_post_202_body(api: APIClient) -> None:
    response = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="signup-1")
    assert response.status_code == 202
    data = response.json()
    assert {"id", "status", "status_url", "client_name", "admin_email", "plan", "created_at"} <= set(data)
    assert data["status"] == "pending" and data["client_name"] == "ACME Corp" and data["plan"] == "starter"


def test_the_same_key_and_body_return_the_same_organisation_after_it_moved_on(api: APIClient) -> None:
    first = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="signup-7").json()
    Organization.objects.filter(pk=first["id"]).update(status="active")
    again = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="signup-7")
    assert again.status_code == 202
    assert again.json()["id"] == first["id"] and again.json()["status_url"] == first["status_url"]
    assert again.json()["status"] == "active"  # the organisation as it is now, not a stale copy
    Organization.objects.filter(pk=first["id"]).update(status="purged")
    assert api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="signup-7").json()["id"] == first["id"]
    _error(api.post(URL, {**BODY, "plan": "pro"}, format="json", HTTP_IDEMPOTENCY_KEY="signup-7"), 422,
           "idempotency_key_reused")  # fmt: skip
    assert Organization.objects.count() == 1


def test_a_key_first_used_for_an_existing_client_is_bound_to_that_request() -> None:
    actor = Actor.system("test")
    existing = services.organization_request(name="ACME Corp", admin_email="admin@acme.test", actor=actor)
    replay = services.organization_request(
        name="ACME Corp", admin_email="admin@acme.test", actor=actor, idempotency_key="k-9"
    )
    assert replay.pk == existing.pk
    assert IdempotencyRecord.objects.get(key="k-9").organization_id == existing.pk
    with pytest.raises(services.IdempotencyKeyReused):
        services.organization_request(name="Globex", admin_email="it@globex.test", actor=actor, idempotency_key="k-9")
    assert Organization.objects.count() == 1


def test_openapi_documents_auth_errors_the_202_and_the_idempotency_header() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["components"]["securitySchemes"]["ServiceKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "gcrm_<prefix>_<secret>",
    }
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message"}
    paths = schema["paths"]
    post = paths["/api/v1/organizations/"]["post"]
    assert post["security"] == [{"ServiceKey": []}]
    assert {"202", "400", "401", "403", "409", "422", "429"} <= set(post["responses"])
    accepted = post["responses"]["202"]
    assert accepted["content"]["application/json"]["schema"]["$ref"].endswith("/Organization")
    assert "Location" in accepted["headers"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in post["parameters"])
    for path, methods in paths.items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert {"401", "403", "429"} <= set(responses), (method, path)
            for code in ("401", "403", "404", "429"):
                if code in responses:
                    ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/Error"), (method, path, code)
            ok = next(c for c in responses if c.startswith("2"))
            assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(responses[ok]["headers"])
    assert {"202"} == {c for c in paths["/api/v1/organizations/{organization_id}/retry/"]["post"]["responses"]
                       if c.startswith("2")}  # fmt: skip


def test_openapi_gives_each_lifecycle_action_its_own_summary_and_status() -> None:
    paths = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    expected = {
        "retry": ("202", "Provision a failed or stuck organisation again"),
        "suspend": ("200", "Suspend: the tenant's database login is revoked"),
        "resume": ("200", "Resume a suspended organisation"),
        "deprovision": ("202", "Export, then delete (the schema is purged after the retention period)"),
    }
    for action, (status, summary) in expected.items():
        operation = paths[f"/api/v1/organizations/{{organization_id}}/{action}/"]["post"]
        assert operation["summary"] == summary, action
        assert {c for c in operation["responses"] if c.startswith("2")} == {status}, action


def test_an_unexpected_failure_is_a_500_json_body_without_the_traceback(
    api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("tenants.selectors.organization_list", broken)
    response = api.get(URL)
    data = _error(response, 500, "server_error")
    assert "secret internals" not in response.content.decode() and "logged" in data["message"]
