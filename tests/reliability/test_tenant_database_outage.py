"""The tenant PostgreSQL down when a job starts, and restarted in the middle of a job. The tenant database of
these tests is one of the session's extra PostgreSQL servers (``extra_pg_servers``), so it can be stopped."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ghostcrm.organizations.models import Organization
from tenants import services
from tenants.models import Operation
from tests.processes import MANAGE, app_env, start_holding_worker, start_worker, stop, wait_for
from tests.reliability.conftest import ACTOR, TENANT_DB, assert_all_consistent, seconds_since

Status = Organization.Status
DBNAME = "ghostcrm_tenants_outage"


@pytest.fixture
def outage_server(extra_pg_servers: list[Any]) -> Iterator[tuple[Any, dict[str, str]]]:
    """The first extra server with a migrated tenant database; yields it and the app environment using it."""
    server = extra_pg_servers[0]
    if not server.answers():
        server.resume()
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
    env = app_env(TENANT_DATABASE_URL=server.url(DBNAME))
    subprocess.run([sys.executable, MANAGE, "migrate", "--no-input"], env=env, check=True, capture_output=True)
    yield server, env
    if not server.answers():
        server.resume()
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DBNAME)))


def conninfo(server: Any) -> dict[str, Any]:
    return {"host": server.host, "port": server.port, "user": "postgres", "dbname": DBNAME, "autocommit": True}


def status_of(organization: Organization) -> str:
    organization.refresh_from_db()
    return organization.status


@TENANT_DB
def test_tenant_database_down_when_the_job_starts_then_back(
    outage_server: tuple[Any, dict[str, str]], settings: Any, record: Any
) -> None:
    server, env = outage_server
    settings.PROVISIONING_RETRY_INTERVALS = [2, 2, 2, 2, 2]  # ten seconds of retries: room to start the server
    server.halt()
    organization = services.organization_request(name="Outage At Start", admin_email="a@outage.test", actor=ACTOR)
    worker = start_worker("provisioning", env=env, name="outage-start-worker")
    try:
        # The failed start is recorded as a transient failure (with the reason), not left silent.
        wait_for(
            lambda: Organization.objects.filter(pk=organization.pk).exclude(last_error="").exists(),
            what="the transient failure to be recorded on the organisation",
        )
        assert status_of(organization) in (Status.PENDING, Status.PROVISIONING)
        down_for = time.monotonic()
        server.resume()
        wait_for(lambda: status_of(organization) in (Status.ACTIVE, Status.FAILED), timeout=60, what="the job to end")
        assert organization.status == Status.ACTIVE, organization.last_error
    finally:
        stop(worker)
    assert_all_consistent(conninfo=conninfo(server))
    record("tenant PostgreSQL down at job start, back before the last retry", f"active {seconds_since(down_for)} after")


@TENANT_DB
def test_tenant_database_down_for_every_retry_fails_with_the_reason(
    outage_server: tuple[Any, dict[str, str]], settings: Any, record: Any
) -> None:
    server, env = outage_server
    settings.PROVISIONING_RETRY_INTERVALS = [1, 1]
    server.halt()
    organization = services.organization_request(name="Outage For Good", admin_email="a@gone.test", actor=ACTOR)
    worker = start_worker("provisioning", env=env, name="outage-forever-worker")
    try:
        wait_for(lambda: status_of(organization) == Status.FAILED, timeout=60, what="the last retry to fail it")
    finally:
        stop(worker)
    assert organization.last_error
    server.resume()
    assert_all_consistent(conninfo=conninfo(server))
    record("tenant PostgreSQL down for every retry", f"failed with the reason: {organization.last_error[:60]}...")


@TENANT_DB
def test_tenant_database_restarted_in_the_middle_of_a_job(
    outage_server: tuple[Any, dict[str, str]], tmp_path: Path, record: Any
) -> None:
    server, env = outage_server
    hold = tmp_path / "hold"
    hold.mkdir()
    organization = services.organization_request(name="Restart Midway", admin_email="a@restart.test", actor=ACTOR)
    worker = start_holding_worker("finished:schema", hold, env=env, name="outage-restart-worker")
    try:
        wait_for(lambda: (hold / "reached").exists(), what="the worker to finish the schema step")
        restarted = time.monotonic()
        server.halt()  # immediate: every session is cut, as in a crash
        server.resume()
        (hold / "release").write_text("go")
        # The retries reconnect: the restart costs a retry, not the organisation.
        wait_for(lambda: status_of(organization) in (Status.ACTIVE, Status.FAILED), timeout=60, what="the job to end")
        assert organization.status == Status.ACTIVE, organization.last_error
    finally:
        stop(worker)
    assert Operation.objects.filter(organization=organization, outcome=Operation.Outcome.FAILURE).exists()
    assert_all_consistent(conninfo=conninfo(server))
    record("tenant PostgreSQL restarted in the middle of a job", f"active {seconds_since(restarted)} after the restart")
