"""/healthz, /readyz (each failing part named), /metrics (access, a provisioning counted), JSON logs."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import django_rq
import pytest
from django.test import Client
from rq import SimpleWorker

from ghostcrm.core.errors import NotFound
from ghostcrm.organizations.models import Organization
from operations import logs, selectors
from operations.services import backups
from tenants.jobs import reconcile_job
from tests.operations.conftest import ACTOR, TENANT_DB

CLOSED_PORT = 8179  # in this suite's port range, nothing listens there


@pytest.mark.django_db(databases=["default", "tenants"])
def test_healthz_answers_without_touching_a_database(client: Client, django_assert_max_num_queries: Any) -> None:
    with django_assert_max_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Request-ID"]


def run_reconciler() -> None:
    queue = django_rq.get_queue("provisioning")
    queue.enqueue(reconcile_job)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@TENANT_DB
def test_readyz_is_ready_then_names_a_stopped_redis_and_a_stopped_tenant_server(
    client: Client, redis_conn: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["reconciler"]
    run_reconciler()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    checks = response.json()["checks"]
    assert set(checks) == {
        "main_database", "tenant_server:primary", "redis", "queues", "reconciler", "backups", "restore_drill",
    }  # fmt: skip

    real = selectors.tenant_servers()
    stopped = {**real["primary"], "PORT": CLOSED_PORT}
    monkeypatch.setattr(selectors, "tenant_servers", lambda: {**real, "eu-2": stopped})
    dead_redis = f"redis://127.0.0.1:{CLOSED_PORT}/0"
    settings.REDIS_URL = dead_redis
    settings.RQ_QUEUES = {name: {**conf, "URL": dead_redis} for name, conf in settings.RQ_QUEUES.items()}
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["tenant_server:eu-2", "redis", "queues", "reconciler"]
    assert body["checks"]["tenant_server:primary"]["ok"] is True
    assert str(CLOSED_PORT) in body["checks"]["tenant_server:eu-2"]["detail"]
    assert "Connection" in body["checks"]["redis"]["detail"]


@TENANT_DB
def test_readyz_reports_a_failed_backup(
    client: Client, redis_conn: Any, provision: Callable[..., Organization], settings: Any
) -> None:
    acme = provision()
    run_reconciler()
    backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    assert client.get("/readyz").status_code == 200
    Organization.objects.filter(pk=acme.pk).update(schema_name="missing_schema")
    with pytest.raises(NotFound, match="does not exist"):
        backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    body = client.get("/readyz").json()
    assert body["failing"] == ["backups"]
    assert "failure" in body["checks"]["backups"]["detail"]


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"{name}{labels} not in the scrape"
    return float(found.group(1))


@TENANT_DB
def test_metrics_count_a_provisioning_and_need_a_token_or_an_allowed_network(
    client: Client, redis_conn: Any, provision: Callable[..., Organization], settings: Any
) -> None:
    before = client.get("/metrics").content.decode()
    assert metric(before, "ghostcrm_provisionings_total", '{outcome="active"}') == 0
    acme = provision()
    backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    client.get("/healthz")
    text = client.get("/metrics").content.decode()
    assert metric(text, "ghostcrm_provisionings_total", '{outcome="active"}') == 1
    assert metric(text, "ghostcrm_provisioning_seconds_count") == 1
    assert metric(text, "ghostcrm_clients", '{status="active"}') == 1
    assert metric(text, "ghostcrm_clients_per_server", '{server="primary"}') == 1
    assert metric(text, "ghostcrm_backup_size_bytes", '{client="acme-corp"}') > 0
    assert metric(text, "ghostcrm_queue_depth", '{queue="provisioning"}') == 0
    assert metric(text, "ghostcrm_http_requests_total", '{method="GET",status="200",view="operations:healthz"}') >= 1

    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]  # the test client (127.0.0.1) is not in it
    assert client.get("/metrics").status_code == 403
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


@pytest.mark.django_db(databases=["default", "tenants"])
def test_json_logs_carry_the_request_id(client: Client, capsys: Any) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("ghostcrm.request")
    logger.addHandler(handler)
    try:
        response = client.get("/healthz", headers={"X-Request-ID": "req-abc-123"})
    finally:
        logger.removeHandler(handler)
    assert response["X-Request-ID"] == "req-abc-123"
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [entry] = [e for e in lines if e["logger"] == "ghostcrm.request"]
    assert entry["request_id"] == "req-abc-123"
    assert entry["message"].startswith("GET /healthz 200")
    assert entry["level"] == "INFO"
    assert entry["time"]
