"""What the OpenAPI schema declares is what the API does (the rest is checked by schemathesis in
tests/api/test_live_api.py): the paginated list, the request bodies' limits, the status enum, /retry/'s body."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from ghostcrm.organizations.models import Organization

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("billing_plans")]
URL = "/api/v1/organizations/"


@pytest.fixture
def schema() -> dict[str, Any]:
    return Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()


def _component(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_the_list_is_declared_as_the_paginated_object_it_returns(schema: dict[str, Any], api: APIClient) -> None:
    ok = schema["paths"][URL]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    page = _component(schema, ok["$ref"])
    assert page["type"] == "object"
    assert {"count", "next", "previous", "results"} <= set(page["properties"])
    assert page["properties"]["results"]["type"] == "array"
    assert set(api.get(URL).json()) == {"count", "next", "previous", "results"}


def test_the_request_body_declares_lengths_patterns_and_no_extra_fields(schema: dict[str, Any]) -> None:
    body = schema["paths"][URL]["post"]["requestBody"]["content"]["application/json"]["schema"]
    request = _component(schema, body["$ref"])
    assert request["additionalProperties"] is False
    name = request["properties"]["client_name"]
    assert (name["minLength"], name["maxLength"]) == (3, 200)
    assert re.fullmatch(name["pattern"], "ACME Corp")
    assert not re.fullmatch(name["pattern"], "")
    # The active plans, as drf-spectacular's enum post-processing writes them: PlanEnum, or BlankEnum for "".
    plan_choices = [value for branch in request["properties"]["plan"]["oneOf"]
                    for value in _component(schema, branch["$ref"])["enum"]]  # fmt: skip
    assert sorted(plan_choices) == ["", "pro", "starter"]


@pytest.mark.parametrize("name", ["", "x", "9 Lives", "A\x01BC"])
def test_names_outside_the_declared_pattern_are_400(api: APIClient, name: str) -> None:
    response = api.post(URL, {"client_name": name, "admin_email": "a@acme.test"}, format="json")
    assert response.status_code == 400
    assert "client_name" in response.json()["fields"]


@pytest.mark.parametrize("query", ["status=", "status=nope", "limit=1.5", "limit=0", "offset=-1", "limit=abc"])
def test_list_query_parameters_outside_the_schema_are_400(api: APIClient, query: str) -> None:
    response = api.get(f"{URL}?{query}")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"


def test_list_query_parameters_declare_their_bounds(schema: dict[str, Any]) -> None:
    parameters = {p["name"]: p["schema"] for p in schema["paths"][URL]["get"]["parameters"] if p["in"] == "query"}
    assert parameters["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    assert parameters["status"]["enum"] == Organization.Status.values


@pytest.mark.parametrize(
    "body", [[], "text", {"reason": 12}, {"reason": "a\x00b"}, {"why": "typo"}, {"reason": "x" * 1001}]
)
def test_retry_validates_its_declared_body(api: APIClient, body: Any) -> None:
    organization = Organization.objects.create(name="Failed Co", slug="failed-co", schema_name="failed_co",
                                               admin_email="a@failed.test", status="failed")  # fmt: skip
    response = api.post(f"{URL}{organization.pk}/retry/", body, format="json")
    assert response.status_code == 400, response.content
    organization.refresh_from_db()
    assert organization.status == "failed"


def test_retry_accepts_no_body_or_a_reason_and_takes_json_only(api: APIClient, schema: dict[str, Any]) -> None:
    operation = schema["paths"][f"{URL}{{organization_id}}/retry/"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json"}
    organization = Organization.objects.create(name="Failed Co", slug="failed-co", schema_name="failed_co",
                                               admin_email="a@failed.test", status="failed")  # fmt: skip
    multipart = api.post(f"{URL}{organization.pk}/retry/", {"anything": "x"}, format="multipart")
    assert multipart.status_code == 415
    assert api.post(f"{URL}{organization.pk}/retry/").status_code == 202


def test_an_empty_idempotency_key_is_refused(api: APIClient) -> None:
    body = {"client_name": "ACME Corp", "admin_email": "a@acme.test"}
    response = api.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="")
    assert response.status_code == 400
    assert not Organization.objects.exists()


def test_the_reason_schema_takes_empty_and_text_each_by_exactly_one_branch(schema: dict[str, Any]) -> None:
    body = schema["paths"][f"{URL}{{organization_id}}/retry/"]["post"]["requestBody"]["content"]["application/json"]
    reason = _component(schema, body["schema"]["$ref"])["properties"]["reason"]

    def matches(branch: dict[str, Any], text: str) -> bool:
        return len(text) <= branch["maxLength"] and re.fullmatch(branch.get("pattern", ".*"), text) is not None

    for text in ("", "customer asked"):
        assert sum(matches(branch, text) for branch in reason["oneOf"]) == 1, (text, reason)
