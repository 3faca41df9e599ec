"""Faults and load as tests (issue 10, section 8). Each scenario ends with every organisation consistent: active
with a full schema, or failed with a reason. Each records one line (scenario, result, figure) that
``make reliability`` prints as a table at the end of the run.

Scenarios marked ``heavy`` (the 200-request burst) are deselected from ``make test`` unless ``GHOSTCRM_HEAVY=1``
(``make reliability`` sets it); the rest are the CI subset and run in ``make test``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import django_rq
import psycopg
import pytest
from django.conf import settings

from ghostcrm.audit.services import Actor
from ghostcrm.core.models import SystemSetting
from ghostcrm.organizations.models import Organization
from tenants.models import Operation
from tests.processes import ROOT
from tests.support import tenant_conninfo

RESULTS = ROOT / "var" / "reliability" / "results.jsonl"
TENANT_DB = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)
Status = Organization.Status
ACTOR = Actor.system("reliability-test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    RESULTS.unlink(missing_ok=True)  # this run's table only (a hook every conftest gets, unlike sessionstart)
    here = Path(__file__).parent
    mine = [item for item in items if Path(str(item.path)).is_relative_to(here)]
    for item in mine:
        item.add_marker(pytest.mark.reliability)
    if os.environ.get("GHOSTCRM_HEAVY") == "1":
        return
    heavy = [item for item in mine if item.get_closest_marker("heavy")]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if item not in heavy]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS.exists():
        return
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    if not rows:
        return
    terminalreporter.section("reliability")
    terminalreporter.write_line("| scenario | result | figure |")
    terminalreporter.write_line("| --- | --- | --- |")
    for row in rows:
        terminalreporter.write_line(f"| {row['scenario']} | {row['result']} | {row['figure']} |")


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[Callable[[str, str], None]]:
    """``record(scenario, figure)``: a table line, whose result is the test's outcome."""
    lines: list[tuple[str, str]] = []

    def add(scenario: str, figure: str) -> None:
        lines.append((scenario, figure))

    yield add
    report = getattr(request.node, "rep_call", None)
    result = "pass" if report is not None and report.passed else "FAIL"
    if not lines:  # failed before it could say what it measured: the table says why
        crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
        why = " ".join(str(getattr(crash, "message", "-")).split())
        lines.append((request.node.name.removeprefix("test_").replace("_", " "), why[:140].replace("|", "/")))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        for scenario, figure in lines:
            out.write(json.dumps({"scenario": scenario, "result": result, "figure": figure}) + "\n")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


@pytest.fixture(autouse=True)
def _reliability_settings(settings: Any, redis_conn: Any, transactional_db: Any) -> None:
    """Retries a second apart (RQ's scheduler in the worker runs them); the reconciler takes any stuck one."""
    settings.PROVISIONING_RETRY_INTERVALS = [1, 1, 1, 1, 1]
    SystemSetting.objects.update_or_create(key="provisioning.stuck_after_minutes", defaults={"value": "0"})
    assert django_rq.get_connection("provisioning").ping()


def template_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.pgsql"))


def schema_report(organization: Organization, conninfo: dict[str, Any], templates: Path) -> list[str]:
    """What is wrong with one organisation's state (empty when consistent)."""
    organization.refresh_from_db()
    name = f"{organization.name} ({organization.status})"
    if organization.status == Status.FAILED:
        return [] if organization.last_error.strip() else [f"{name}: failed without a reason"]
    if organization.status != Status.ACTIVE:
        return [f"{name}: neither active nor failed"]
    with psycopg.connect(**conninfo) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = %s", [organization.schema_name]
        ).fetchall()
        ledger = conn.execute(
            "SELECT filename FROM public.tenant_sql_ledger WHERE schema_name = %s AND success ORDER BY version",
            [organization.schema_name],
        ).fetchall()
        admins = (
            conn.execute(
                f'SELECT email FROM "{organization.schema_name}".crm_users WHERE role = %s', ["admin"]
            ).fetchall()
            if schemas
            else []
        )
    problems = []
    if len(schemas) != 1:
        problems.append(f"{name}: schema {organization.schema_name} missing")
    if [row[0] for row in ledger] != template_files(templates):
        problems.append(f"{name}: templates applied {[row[0] for row in ledger]}")
    if [row[0] for row in admins] != [organization.admin_email]:
        problems.append(f"{name}: CRM admin users {admins}")
    return problems


def assert_all_consistent(
    *, conninfo: dict[str, Any] | None = None, templates: Path | None = None, no_running_operations: bool = True
) -> int:
    """Every organisation is active with a full schema, or failed with a reason; no operation is left running.
    Returns how many are active."""
    info = conninfo or tenant_conninfo()
    folder = templates or Path(settings.TENANT_TEMPLATES_DIR)
    problems = [p for org in Organization.objects.order_by("name") for p in schema_report(org, info, folder)]
    if no_running_operations:
        running = Operation.objects.filter(outcome=Operation.Outcome.RUNNING)
        problems += [f"operation {op.step} of {op.organization.name} left running" for op in running]
    assert not problems, "\n".join(problems)
    return Organization.objects.filter(status=Status.ACTIVE).count()


def seconds_since(start: float) -> str:
    return f"{time.monotonic() - start:.1f} s"
