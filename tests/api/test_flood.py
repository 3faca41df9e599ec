"""Unauthenticated floods: a budget of refused keys per client address, checked before any database access,
and one audit event per key prefix, address and minute, with the count."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from ghostcrm.audit.models import AuditEvent
from tenants.api import limits
from tenants.api.limits import api_refusals_flush, failure_limit
from tests.api.test_outages import redis_down  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db
URL = "/api/v1/organizations/"
MOMENT = 1_796_378_405.0  # 10:00:05 on a day: the tests' requests stay inside one minute


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The limits' clock, stopped at MOMENT; tests move it by changing ``clock[0]``."""
    now = [MOMENT]
    monkeypatch.setattr(limits, "_now", lambda: now[0])
    return now


def _client(token: str, address: str = "203.0.113.7") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _denied() -> Any:
    return AuditEvent.objects.filter(action="api.request", outcome="denied")


@pytest.mark.usefixtures("clock")
def test_300_invalid_keys_are_mostly_429_and_leave_one_audit_event(redis_conn: Any) -> None:
    client = _client("gcrm_deadbeef_" + "A" * 43)
    statuses = Counter(client.get(URL).status_code for _ in range(300))
    assert statuses == {401: failure_limit(), 429: 300 - failure_limit()}
    throttled = client.get(URL)
    assert throttled.json()["code"] == "throttled"
    assert 1 <= int(throttled["Retry-After"]) <= 60
    assert not _denied().exists()  # written once the minute is over
    assert api_refusals_flush(now=MOMENT + 60) == 1
    event = _denied().get()
    assert event.after["count"] == 301
    assert event.after["by_reason"] == {"invalid_key": failure_limit(), "throttled": 301 - failure_limit()}
    assert event.after["key_prefix"] == "deadbeef"
    assert event.ip_address == "203.0.113.7"
    assert "301 API request(s) refused from 203.0.113.7" in event.message
    assert api_refusals_flush(now=MOMENT + 60) == 0  # each minute is written once


@pytest.mark.usefixtures("clock")
def test_a_throttled_request_touches_no_database_and_other_addresses_are_not_affected(redis_conn: Any) -> None:
    client = _client("not-a-key")
    for _ in range(failure_limit()):
        assert client.get(URL).status_code == 401
    with CaptureQueriesContext(connections["default"]) as queries:
        assert client.get(URL).status_code == 429
    assert queries.captured_queries == []
    assert _client("not-a-key", address="198.51.100.9").get(URL).status_code == 401


def test_refusals_of_later_minutes_write_the_earlier_ones(redis_conn: Any, clock: list[float]) -> None:
    _client("gcrm_deadbeef_" + "A" * 43).get(URL)
    _client("gcrm_cafebabe_" + "A" * 43).get(URL)
    _client("nonsense").get(URL)
    clock[0] += 60
    assert not _denied().exists()
    _client("nonsense").get(URL)  # the first refusal of the next minute writes the previous one
    assert sorted(e.after["key_prefix"] for e in _denied()) == ["", "cafebabe", "deadbeef"]
    assert all(e.after["count"] == 1 for e in _denied())


@pytest.mark.usefixtures("redis_down", "clock")
def test_with_redis_down_the_budget_is_per_process_and_audit_rows_stay_few() -> None:
    client = _client("gcrm_deadbeef_" + "A" * 43, address="192.0.2.44")
    statuses = Counter(client.get(URL).status_code for _ in range(60))
    assert statuses == {401: failure_limit(), 429: 60 - failure_limit()}
    assert _denied().count() <= 2  # one per reason seen first in this process and minute
