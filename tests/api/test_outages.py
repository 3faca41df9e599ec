"""Redis unreachable (its URL pointed at a closed port): the API answers, and a request is never lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from ghostcrm.organizations.models import Organization
from tenants.api.limits import PROCESS_CACHE
from tests.api.test_edges import closed_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("billing_plans")]
URL = "/api/v1/organizations/"
BODY = {"client_name": "ACME Corp", "admin_email": "admin@acme.test", "plan": "starter"}


@pytest.fixture
def redis_down() -> Iterator[None]:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    caches = {"default": {**settings.CACHES["default"], "LOCATION": url}}
    queues = {name: {**config, "URL": url} for name, config in settings.RQ_QUEUES.items()}
    PROCESS_CACHE.clear()  # the per-process fallback counts start empty in each test
    with override_settings(CACHES=caches, RQ_QUEUES=queues):
        yield


def test_reads_answer_with_a_per_process_limit_when_redis_is_down(api: APIClient, redis_down: None) -> None:
    response = api.get(URL)
    assert response.status_code == 200, response.content
    assert response["RateLimit-Limit"] == "120"
    assert api.get(f"{URL}00000000-0000-0000-0000-000000000000/").status_code == 404


def test_a_post_with_redis_down_records_the_organisation_as_pending_and_says_so(
    api: APIClient, redis_down: None
) -> None:
    response = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "30"
    data = response.json()
    assert data["code"] == "queue_unavailable"
    assert "reconciler" in data["message"]
    organization = Organization.objects.get()
    assert data["organization"]["id"] == str(organization.pk)
    assert data["organization"]["status"] == organization.status == "pending"
    assert response["Location"] == data["organization"]["status_url"]
    replay = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert replay.status_code == 503
    assert replay.json()["organization"]["id"] == str(organization.pk)
    assert Organization.objects.count() == 1


def test_once_redis_is_back_the_replay_is_accepted(api: APIClient, redis_conn: Any) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    queues = {name: {**config, "URL": url} for name, config in settings.RQ_QUEUES.items()}
    with override_settings(RQ_QUEUES=queues):
        first = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-43")
    assert first.status_code == 503
    replay = api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-43")
    assert replay.status_code == 202
    assert replay.json()["id"] == first.json()["organization"]["id"]


def test_a_retry_with_redis_down_is_recorded_and_answered_503(api: APIClient, redis_down: None) -> None:
    organization = Organization.objects.create(name="Failed Co", slug="failed-co", schema_name="failed_co",
                                               admin_email="a@failed.test", status="failed")  # fmt: skip
    response = api.post(f"{URL}{organization.pk}/retry/", {}, format="json")
    assert response.status_code == 503, response.content
    assert response.json()["organization"]["status"] == "pending"
    organization.refresh_from_db()
    assert organization.status == "pending"
    suspended = api.post(f"{URL}{organization.pk}/suspend/", {}, format="json")
    assert suspended.status_code == 409  # no job involved: the lifecycle answers as usual
