"""Hostile input and outages at the API's edge: a clear 4xx or 503 with the JSON error shape, never a 500."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from rest_framework.test import APIClient

from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.api import MAX_JSON_DEPTH, json_depth
from ghostcrm.organizations.models import Organization

pytestmark = [pytest.mark.django_db]
URL = "/api/v1/organizations/"


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    data = response.json()
    assert data["code"] == code, data
    assert data["message"]
    return data


def test_a_5000_level_nested_body_is_a_400_not_a_recursion_error(api: APIClient) -> None:
    body = "[" * 5000 + "]" * 5000
    data = _error(api.post(URL, body, content_type="application/json"), 400, "parse_error")
    assert "nests deeper" in data["message"]
    nested_object = '{"a":' * 5000 + "1" + "}" * 5000
    _error(api.post(f"{URL}{'0' * 8}-0000-0000-0000-{'0' * 12}/retry/", nested_object,
                    content_type="application/json"), 400, "parse_error")  # fmt: skip
    assert not Organization.objects.exists()


def test_nesting_below_the_recursion_limit_but_past_the_api_limit_is_refused_too(api: APIClient) -> None:
    body = json.dumps({"client_name": "ACME", "admin_email": "a@acme.test", "plan": ""})
    deep = body[:-1] + ', "x": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}"
    _error(api.post(URL, deep, content_type="application/json"), 400, "parse_error")
    assert json_depth({"a": [[1]], "b": 2}) == 3
    assert json_depth(5) == 0


def test_a_5_mb_body_is_a_413_with_a_json_body(api: APIClient) -> None:
    body = json.dumps({"client_name": "x" * 5_000_000, "admin_email": "a@acme.test"})
    data = _error(api.post(URL, body, content_type="application/json"), 413, "body_too_large")
    assert data["limit"] == 1_048_576
    assert not Organization.objects.exists()


def test_a_body_past_djangos_own_limit_is_a_413_too(api: APIClient, settings: Any) -> None:
    settings.API_MAX_BODY_BYTES = 10_000_000  # let it past the edge: Django's own limit refuses it
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"client_name": "x" * 5000, "admin_email": "a@acme.test"})
    _error(api.post(URL, body, content_type="application/json"), 413, "body_too_large")


@pytest.mark.parametrize(
    "path",
    [f"{URL}abc%00def/", f"{URL}abc%00def/retry/", "/api/v1/operations/1%00/", f"{URL}%0a/"],
)
def test_a_nul_byte_in_a_path_id_is_a_404_and_reaches_no_audit(api: APIClient, path: str) -> None:
    before = AuditEvent.objects.count()
    _error(api.get(path) if "retry" not in path else api.post(path, {}, format="json"), 404, "not_found")
    assert AuditEvent.objects.count() == before


def test_a_nul_byte_in_a_header_is_a_400_and_reaches_no_audit(api: APIClient, admin_session: Any) -> None:
    before = AuditEvent.objects.count()
    _error(api.get(URL, HTTP_USER_AGENT="curl\x00/8"), 400, "invalid_header")
    assert AuditEvent.objects.count() == before
    assert admin_session.get("/admin/", HTTP_USER_AGENT="x\x00y").status_code == 400


def test_a_nul_byte_outside_the_api_is_a_404_too(admin_session: Any) -> None:
    assert admin_session.get("/admin/tenants/organization/abc%00def/change/").status_code == 404


@pytest.mark.server_db
@pytest.mark.django_db(transaction=True)
def test_a_database_refusing_connections_is_a_503_naming_it(
    make_key: Any, super_admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, raw = make_key()
    admin = Client(raise_request_exception=False)
    admin.force_login(super_admin)
    connection = connections["default"]
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "PORT", closed_port())
    try:
        api = APIClient(raise_request_exception=False)
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        response = api.get(URL)
        data = _error(response, 503, "database_unavailable")
        assert response["Retry-After"] == "5"
        assert data["database"] == "default"
        assert "main database" in data["message"]
        page = admin.get("/admin/")
        assert page.status_code == 503
        assert page["Retry-After"] == "5"
        assert "main database" in page.content.decode()
    finally:
        connection.close()
        monkeypatch.undo()
    assert Client().get(URL).status_code == 401  # back once the database answers again
