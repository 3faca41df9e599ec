"""The API as a real server process: connections it leaves open, and its OpenAPI contract under schemathesis."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from ghostcrm.organizations.models import Organization
from tests.api.devserver import ROOT, dev_server
from tests.api.test_edges import closed_port

pytestmark = [pytest.mark.server_db, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("billing_plans")]
SCHEMATHESIS_EXAMPLES = 25
CONFIG = Path(__file__).with_name("schemathesis.toml")


def _open_connections() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def test_50_sequential_requests_to_runserver_leave_at_most_a_few_connections(make_key: Any) -> None:
    """Each request on its own HTTP keep-alive connection, left open as a client's pool leaves it: runserver
    serves each in a thread that lives as long as the socket, and with persistent database connections each
    such thread kept one (76 idle ones after a burst of 200, then "too many clients")."""
    _, raw = make_key()
    port = 8111
    clients = []
    # CONN_MAX_AGE=60 in the environment, as a production .env might say: runserver ignores it.
    with dev_server(port, CONN_MAX_AGE="60"):
        try:
            for _ in range(50):
                client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                clients.append(client)
                client.request("GET", "/api/v1/organizations/", headers={"Authorization": f"Bearer {raw}"})
                response = client.getresponse()
                response.read()
                assert response.status == 200
            assert _open_connections() <= 3
        finally:
            for client in clients:
                client.close()


def _call(port: int, method: str, path: str, raw: str, body: dict[str, str] | None = None,
          **headers: str) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        payload = json.dumps(body) if body is not None else None
        client.request(method, path, body=payload, headers={"Authorization": f"Bearer {raw}",
                                                            "Content-Type": "application/json", **headers})  # fmt: skip
        response = client.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"null")
    finally:
        client.close()


def test_a_server_whose_redis_is_a_closed_port_answers_and_loses_no_request(make_key: Any) -> None:
    _, raw = make_key()
    port = 8113
    with dev_server(port, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        status, _, page = _call(port, "GET", "/api/v1/organizations/", raw)
        assert (status, page["count"]) == (200, 0)
        body = {"client_name": "ACME Corp", "admin_email": "admin@acme.test", "plan": "starter"}
        key = {"Idempotency-Key": "order-1"}
        status, headers, data = _call(port, "POST", "/api/v1/organizations/", raw, body, **key)
        assert status == 503
        assert headers["Retry-After"] == "30"
        assert data["code"] == "queue_unavailable"
        assert data["organization"]["status"] == "pending"
        status, _, replay = _call(port, "POST", "/api/v1/organizations/", raw, body, **key)
        assert status == 503
        assert replay["organization"]["id"] == data["organization"]["id"]
    assert Organization.objects.get().status == "pending"  # the reconciler enqueues it once Redis is back


def test_schemathesis_finds_no_failure_and_no_5xx(make_key: Any, tmp_path: Path) -> None:
    _, raw = make_key()
    environment = {"API_KEY_RATE_LIMIT": "100000/min", "API_AUTH_FAILURE_LIMIT": "100000"}
    with dev_server(8112, **environment) as base:
        result = subprocess.run(
            [str(Path(sys.executable).with_name("st")), "--config-file", str(CONFIG), "run", f"{base}/api/schema/",
             "--checks", "all",
             "--header", f"Authorization: Bearer {raw}", "--max-examples", str(SCHEMATHESIS_EXAMPLES),
             "--seed", "1", "--workers", "1", "--request-timeout", "20", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    output = result.stdout + result.stderr
    (ROOT / "var" / "schemathesis.log").write_text(output)
    assert result.returncode == 0, output[-6000:]
