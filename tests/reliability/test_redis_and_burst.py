"""Redis down (the API answers 503 ``queue_unavailable`` with ``Retry-After``, never 500, and nothing is lost),
Redis flushed with jobs queued, and bursts of API requests against gunicorn with 2 workers."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from ghostcrm.organizations.models import Organization
from tenants.keys import service_key_create
from tests.processes import MANAGE, RedisServer, app_env, free_port, gunicorn, start_worker, stop, wait_for
from tests.reliability.conftest import ACTOR, TENANT_DB, assert_all_consistent, seconds_since

Status = Organization.Status
WEB_PORTS = range(8162, 8170)
SCOPES = ["organizations:read", "organizations:write"]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    seconds: float


def call(base: str, key: str, method: str, path: str, body: dict[str, Any] | None = None, **headers: str) -> Answer:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)  # noqa: S310 - our own server
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    for name, value in headers.items():
        request.add_header(name.replace("_", "-"), value)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            status, raw, head = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, head = exc.code, exc.read(), dict(exc.headers)
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        parsed = {"raw": raw[:200].decode(errors="replace")}
    return Answer(status, head, parsed if isinstance(parsed, dict) else {"list": parsed}, time.monotonic() - started)


def request_client(base: str, key: str, n: int) -> Answer:
    body = {"client_name": f"Burst Client {n:03d}", "admin_email": f"admin@burst-{n:03d}.test"}
    return call(base, key, "POST", "/api/v1/organizations/", body, Idempotency_Key=f"burst-{n:03d}")


def reconcile(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, MANAGE, "tenants", "reconcile"], env=env, check=True, capture_output=True)


def wait_all_settled(expected: int, *, timeout: float) -> None:
    wait_for(
        lambda: Organization.objects.filter(status__in=[Status.ACTIVE, Status.FAILED]).count() >= expected,
        timeout=timeout,
        what=f"{expected} organisations to be provisioned",
        interval=0.5,
    )


@pytest.fixture
def private_redis(tmp_path: Path) -> Any:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@TENANT_DB
def test_redis_down_answers_503_and_loses_nothing(private_redis: RedisServer, record: Any) -> None:
    _, key = service_key_create(name="outage", scopes=SCOPES, actor=ACTOR)
    env = app_env(REDIS_URL=private_redis.url, API_KEY_RATE_LIMIT="10000/min")
    with gunicorn(free_port(WEB_PORTS), env=env) as base:
        assert call(base, key, "GET", "/api/v1/organizations/").status == 200
        private_redis.kill()
        answers = {n: request_client(base, key, n) for n in range(5)}
        listing = call(base, key, "GET", "/api/v1/organizations/")
        statuses = sorted({a.status for a in [*answers.values(), listing]})
        for answer in [*answers.values(), listing]:
            assert answer.status in (200, 202, 503), (answer.status, answer.body)
            if answer.status == 503:
                assert answer.body.get("code") == "queue_unavailable", answer.body
                assert int(answer.headers.get("Retry-After", "0")) > 0, answer.headers
        # What was accepted while Redis was down waits as pending; the rest is retried by the client.
        assert set(Organization.objects.values_list("status", flat=True)) <= {Status.PENDING}
        private_redis.start()
        for n, answer in answers.items():
            if answer.status == 503:
                answers[n] = request_client(base, key, n)  # the client's retry, same Idempotency-Key
        assert {a.status for a in answers.values()} == {202}, {n: a.body for n, a in answers.items()}
        reconcile(env)
        worker = start_worker("provisioning", env=env, name="redis-down-worker")
        try:
            wait_all_settled(5, timeout=120)
        finally:
            stop(worker)
    assert Organization.objects.count() == 5
    assert assert_all_consistent() == 5
    record("Redis down: API requests while it is down, then retried", f"answers {statuses}; 5 of 5 active, none lost")


@TENANT_DB
def test_redis_flushed_with_jobs_queued_loses_nothing(private_redis: RedisServer, record: Any) -> None:
    _, key = service_key_create(name="flush", scopes=SCOPES, actor=ACTOR)
    env = app_env(REDIS_URL=private_redis.url, API_KEY_RATE_LIMIT="10000/min")
    with gunicorn(free_port(WEB_PORTS), env=env) as base:
        assert {request_client(base, key, n).status for n in range(3)} == {202}
    queued = Redis.from_url(private_redis.url).llen("rq:queue:provisioning")
    assert queued == 3  # no worker yet: the three jobs wait in Redis
    Redis.from_url(private_redis.url).flushdb()  # the jobs are gone; the rows are the source of truth
    started = time.monotonic()
    reconcile(env)
    worker = start_worker("provisioning", env=env, name="redis-flush-worker")
    try:
        wait_all_settled(3, timeout=120)
    finally:
        stop(worker)
    assert Organization.objects.count() == 3
    assert assert_all_consistent() == 3
    record(f"Redis flushed with {queued} jobs queued", f"reconciled; 3 of 3 active {seconds_since(started)} after")


def burst(count: int, distinct: int, record: Any) -> None:
    """``count`` POSTs for ``distinct`` clients (the rest repeat a client with its Idempotency-Key) from 16
    threads against gunicorn with 2 workers, two RQ workers provisioning meanwhile."""
    _, key = service_key_create(name="burst", scopes=SCOPES, actor=ACTOR)
    env = app_env(API_KEY_RATE_LIMIT="100000/min")
    workers = [start_worker("provisioning", env=env, name=f"burst-worker-{i}") for i in range(2)]
    try:
        with gunicorn(free_port(WEB_PORTS), workers=2, env=env) as base:
            numbers = [n % distinct for n in range(count)]
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=16) as pool:
                answers = list(pool.map(lambda n: request_client(base, key, n), numbers))
            burst_seconds = time.monotonic() - started
            wait_all_settled(distinct, timeout=60 + distinct * 3)
            settled = time.monotonic() - started
    finally:
        for worker in workers:
            stop(worker)
    statuses = {a.status for a in answers}
    assert statuses == {202}, sorted((a.status, str(a.body)[:100]) for a in answers if a.status != 202)[:5]
    ids = {a.body["id"] for a in answers}
    assert len(ids) == distinct
    assert Organization.objects.count() == distinct
    assert assert_all_consistent() == distinct
    p95 = statistics.quantiles([a.seconds for a in answers], n=20)[-1]
    record(
        f"burst of {count} API requests ({distinct} clients), gunicorn 2 workers",
        f"0 x 5xx, {distinct} organisations, 0 duplicates; {count / burst_seconds:.0f} req/s, p95 {p95 * 1000:.0f} ms; "
        f"all active {settled:.0f} s after the first request",
    )


@TENANT_DB
def test_a_burst_of_40_requests_all_active_no_duplicates_no_5xx(record: Any) -> None:
    burst(40, 30, record)


@TENANT_DB
@pytest.mark.heavy
def test_a_burst_of_200_requests_all_active_no_duplicates_no_5xx(record: Any) -> None:
    burst(200, 160, record)
