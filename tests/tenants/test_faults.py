"""Faults: a worker killed mid-job then finished by the reconciler; concurrent requests for one client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connections

from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.models import SystemSetting
from ghostcrm.organizations.models import Organization
from tenants import provisioning, services
from tenants.models import Operation
from tests.support import tenant_conninfo
from tests.tenants.helpers import ACTOR, assert_fully_provisioned, schemas_like, tenant_query, wait_for

Status = Organization.Status
TENANT_DB = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)


def database_url(alias: str) -> str:
    params = connections[alias].settings_dict
    auth = params["USER"] or "postgres"
    if params["PASSWORD"]:
        auth += f":{params['PASSWORD']}"
    return f"postgres://{auth}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"


def start_worker(hold: str, folder: Path) -> subprocess.Popen[bytes]:
    """A real worker process (RQ's burst mode, single process) on this test's databases, pausing at ``hold``
    ("started:templates", "finished:schema") through a step hook (``tests/tenants/hold_worker.py``)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ghostcrm.settings_test",
        "MAIN_DATABASE_URL": database_url("default"),
        "TENANT_DATABASE_URL": database_url(settings.TENANT_DB_ALIAS),
        "REDIS_URL": settings.RQ_QUEUES["provisioning"]["URL"],
    }
    command = [sys.executable, "-m", "tests.tenants.hold_worker", hold, str(folder)]
    return subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_worker_at(hold: str, folder: Path) -> None:
    """Start a worker, wait until it reaches ``hold``, and kill it there with SIGKILL."""
    worker = start_worker(hold, folder)
    try:
        pid = int(wait_for(lambda: (folder / "reached").exists() and (folder / "reached").read_text(),
                           what="the worker to reach the hold point"))  # fmt: skip
        assert pid == worker.pid
        os.kill(pid, signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@TENANT_DB
def test_a_step_left_running_by_a_killed_worker_is_closed_as_abandoned_by_the_reconciler(
    tmp_path: Path, run_worker: Callable[[], int], request_organization: Callable[..., Organization]
) -> None:
    organization = request_organization()
    kill_worker_at("started:templates", tmp_path)
    running = Operation.objects.get(organization=organization, step="templates")
    assert running.outcome == "running"
    assert running.finished_at is None
    wait_for(
        lambda: not tenant_query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s",
                                 [provisioning.ADVISORY_NAMESPACE]),
        what="the killed worker's lock to be released",
    )  # fmt: skip
    SystemSetting.objects.create(key="provisioning.stuck_after_minutes", value="0")
    assert provisioning.organizations_reconcile()["requeued"] == 1
    running.refresh_from_db()
    assert running.outcome == "abandoned"
    assert running.finished_at is not None
    assert AuditEvent.objects.filter(action="organization.operations_abandoned", organization_id=organization.pk)
    run_worker()
    assert_fully_provisioned(organization)
    assert not Operation.objects.filter(organization=organization, outcome="running").exists()


@TENANT_DB
def test_worker_killed_mid_job_is_finished_by_the_reconciler_without_a_half_schema(
    tmp_path: Path, run_worker: Callable[[], int], request_organization: Callable[..., Organization]
) -> None:
    organization = request_organization()
    kill_worker_at("finished:schema", tmp_path)

    # Killed after the schema step: the schema exists, no template is applied, the organisation is stuck.
    organization.refresh_from_db()
    assert organization.status == Status.PROVISIONING
    assert schemas_like(organization.schema_name) == [organization.schema_name]
    assert not tenant_query("SELECT 1 FROM public.tenant_sql_ledger WHERE schema_name = %s", [organization.schema_name])
    # The dead worker's database session (and its advisory lock) goes away with it.
    wait_for(
        lambda: not tenant_query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s",
                                 [provisioning.ADVISORY_NAMESPACE]),
        what="the killed worker's lock to be released",
    )  # fmt: skip

    assert provisioning.organizations_reconcile()["requeued"] == 0  # not stuck yet by the 15-minute default
    SystemSetting.objects.create(key="provisioning.stuck_after_minutes", value="0")
    assert provisioning.organizations_reconcile()["requeued"] == 1
    run_worker()
    assert_fully_provisioned(organization)
    reconcile = Operation.objects.get(organization=organization, step="reconcile")
    assert reconcile.job_id
    assert "re-enqueued" in reconcile.message
    assert Operation.objects.filter(organization=organization, step="schema", outcome="success").count() == 2


@TENANT_DB
def test_a_busy_organisation_is_left_to_the_worker_holding_its_lock(
    request_organization: Callable[..., Organization], run_worker: Callable[[], int]
) -> None:
    organization = request_organization()
    with psycopg.connect(**tenant_conninfo()) as other:  # another worker's session holding the lock
        key = provisioning.lock_key(organization.pk)
        other.execute("SELECT pg_advisory_lock(%s, %s)", [provisioning.ADVISORY_NAMESPACE, key])
        assert provisioning.organization_provision(organization_id=str(organization.pk)) == "busy"
        organization.refresh_from_db()
        assert organization.status == Status.PENDING
        assert not schemas_like(organization.schema_name)
    run_worker()
    assert_fully_provisioned(organization)


@TENANT_DB
def test_concurrent_requests_for_one_client_make_one_organisation_and_one_schema(
    run_worker: Callable[[], int],
) -> None:
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def request(key: str | None) -> None:
        try:
            barrier.wait(timeout=30)
            org = services.organization_request(
                name="Globex", admin_email="it@globex.test", actor=ACTOR, idempotency_key=key
            )
            results.append(org.pk)
        except Exception as exc:
            results.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=request, args=(key,)) for key in (None, None, "k-1", "k-1")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4 and all(not isinstance(r, Exception) for r in results), results
    assert len(set(results)) == 1
    assert Organization.objects.count() == 1
    run_worker()
    organization = Organization.objects.get()
    assert_fully_provisioned(organization)
    assert schemas_like("globex") == ["globex"]


@TENANT_DB
def test_lost_redis_is_harmless_the_run_worker_cron_reconciles_and_provisions(
    redis_conn: Any, request_organization: Callable[..., Organization]
) -> None:
    organization = request_organization()
    redis_conn.flushdb()  # Redis lost its queue: the organisation row is the source of truth
    SystemSetting.objects.create(key="provisioning.stuck_after_minutes", value="0")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ghostcrm.settings_test",
        "MAIN_DATABASE_URL": database_url("default"),
        "TENANT_DATABASE_URL": database_url(settings.TENANT_DB_ALIAS),
        "REDIS_URL": settings.RQ_QUEUES["provisioning"]["URL"],
    }
    worker = subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "run_worker", "provisioning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: Organization.objects.filter(pk=organization.pk, status=Status.ACTIVE).exists(),
            timeout=120,
            what="the cron reconciler and the worker to provision the organisation",
        )
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert_fully_provisioned(organization)
    assert Operation.objects.filter(organization=organization, step="reconcile").exists()
