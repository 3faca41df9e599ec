"""A worker ``kill -9``'d inside a template's transaction: nothing of that file stays, and the reconciler and a
new worker finish the organisation with one complete schema."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import psycopg

from ghostcrm.organizations.models import Organization
from tenants import provisioning, services
from tests.processes import ROOT, app_env, start_worker, stop, wait_for
from tests.reliability.conftest import ACTOR, TENANT_DB, assert_all_consistent, seconds_since
from tests.support import tenant_conninfo

TEMPLATES = ROOT / "migrations_sql" / "client-provisioning"
GATE = 774_411  # an advisory lock key the test holds to stop the worker inside the first template


def gated_templates(folder: Path) -> Path:
    """A copy of the real templates whose first file ends by waiting on the test's advisory lock: the worker
    is then inside that file's transaction, its DDL done but not committed."""
    folder.mkdir()
    for index, template in enumerate(sorted(TEMPLATES.glob("*.pgsql"))):
        text = template.read_text()
        if index == 0:
            text += f"\nSELECT pg_advisory_xact_lock({GATE});\n"
        (folder / template.name).write_text(text)
    return folder


def settings_module(folder: Path, templates: Path) -> str:
    """A settings module for the worker processes: the test settings with the gated templates."""
    (folder / "reliability_kill_settings.py").write_text(
        "from pathlib import Path\nfrom ghostcrm.settings_test import *  # noqa: F403\n"
        f"TENANT_TEMPLATES_DIR = Path({str(templates)!r})\n"
    )
    return "reliability_kill_settings"


def waiting_on_gate(conn: psycopg.Connection[Any]) -> int | None:
    row = conn.execute(
        "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objid = %s",
        [GATE],
    ).fetchone()
    return row[0] if row else None


@TENANT_DB
def test_worker_killed_inside_a_template_then_reconciled(tmp_path: Path, settings: Any, record: Any) -> None:
    templates = gated_templates(tmp_path / "templates")
    settings.TENANT_TEMPLATES_DIR = templates
    env = app_env(DJANGO_SETTINGS_MODULE=settings_module(tmp_path, templates),
                  PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))  # fmt: skip

    with psycopg.connect(**tenant_conninfo()) as gate:
        gate.execute("SELECT pg_advisory_lock(%s)", [GATE])
        organization = services.organization_request(name="Killed Midway", admin_email="a@killed.test", actor=ACTOR)
        worker = start_worker("provisioning", env=env, name="killed-worker")
        try:
            backend = wait_for(lambda: waiting_on_gate(gate), what="the worker to wait inside the first template")
            # Inside the file's transaction: its tables exist for that session only.
            assert not gate.execute(
                "SELECT 1 FROM pg_tables WHERE schemaname = %s", [organization.schema_name]
            ).fetchall()
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.wait(timeout=30) == -signal.SIGKILL
            killed_at = time.monotonic()
        finally:
            stop(worker)
        # A backend waiting on a lock does not notice its client is gone; once the gate opens it runs on until
        # it next writes to the dead socket, and PostgreSQL then rolls back whatever the file had not committed.
        gate.execute("SELECT pg_advisory_unlock(%s)", [GATE])
        wait_for(
            lambda: not gate.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]).fetchone(),
            what="the killed worker's database session to end",
        )
        # All or nothing: the first file's tables exist exactly when its ledger row does.
        tables = gate.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", [organization.schema_name])
        ledger = gate.execute(
            "SELECT count(*) FROM public.tenant_sql_ledger WHERE schema_name = %s AND success",
            [organization.schema_name],
        )
        table_count, ledger_rows = tables.fetchone()[0], ledger.fetchone()[0]
        assert (table_count > 0) == (ledger_rows == 1), (table_count, ledger_rows)
        assert ledger_rows <= 1

    organization.refresh_from_db()
    assert organization.status == Organization.Status.PROVISIONING
    assert provisioning.organizations_reconcile()["requeued"] == 1
    finisher = start_worker("provisioning", env=env, name="finisher-worker")
    try:
        wait_for(
            lambda: Organization.objects.filter(pk=organization.pk, status=Organization.Status.ACTIVE).exists(),
            timeout=120,
            what="the reconciled organisation to become active",
        )
    finally:
        stop(finisher)
    # The killed run's operation rows are closed (abandoned) by the reconciler, not left running.
    assert_all_consistent(templates=templates)
    interrupted = "rolled back" if ledger_rows == 0 else "committed by the orphaned backend"
    record(
        "worker kill -9 inside a template, then reconciled",
        f"interrupted file {interrupted}; active {seconds_since(killed_at)} after the kill",
    )
