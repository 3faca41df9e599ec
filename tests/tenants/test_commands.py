"""Commands: provision_client (with --wait following a real worker), tenants list/show/actions, run_worker wiring."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import override_settings
from rq import cron

from ghostcrm.accounts.models import Invitation
from ghostcrm.organizations.models import Organization
from tenants import jobs, periodic
from tests.tenants.factories import PlanFactory
from tests.tenants.helpers import assert_fully_provisioned, wait_for

TENANT_DB = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)


def provision_in_thread(*argv: str) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``provision_client --wait`` in a thread (the worker needs the main thread for its signals)."""
    outcome: dict[str, Any] = {"stdout": io.StringIO(), "stderr": io.StringIO(), "exit": 0}

    def run() -> None:
        try:
            call_command("provision_client", *argv, "--wait", "--timeout", "120",
                         stdout=outcome["stdout"], stderr=outcome["stderr"])  # fmt: skip
        except SystemExit as exc:
            outcome["exit"] = exc.code
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@TENANT_DB
def test_provision_client_wait_follows_progress_and_exits_0_when_active(run_worker: Callable[[], int]) -> None:
    PlanFactory(code="pro", unit_amount=9_000)
    thread, outcome = provision_in_thread("--name", "ACME Corp", "--admin-email", "admin@acme.test", "--plan", "pro")
    wait_for(lambda: django_rq.get_queue("provisioning").count, what="the job to be enqueued")
    run_worker()
    thread.join(timeout=120)
    assert outcome["exit"] == 0, outcome["stderr"].getvalue()
    out = outcome["stdout"].getvalue()
    assert "is pending" in out
    assert "templates" in out
    assert "is active" in out
    organization = Organization.objects.get(slug="acme-corp")
    assert organization.plan_code == "pro"
    assert_fully_provisioned(organization)


@TENANT_DB
def test_provision_client_wait_exits_1_with_the_reason_when_provisioning_fails(
    run_worker: Callable[[], int], template_copy: Path
) -> None:
    last = max(int(p.name.split("_", 1)[0]) for p in template_copy.glob("*.pgsql"))
    (template_copy / f"{last + 1:03d}_bad.pgsql").write_text("CREATE TABLE oops (id nosuchtype);\n")
    thread, outcome = provision_in_thread("--name", "ACME Corp", "--admin-email", "admin@acme.test")
    wait_for(lambda: django_rq.get_queue("provisioning").count, what="the job to be enqueued")
    run_worker()
    thread.join(timeout=120)
    assert outcome["exit"] == 1
    assert "failed" in outcome["stderr"].getvalue()
    assert "nosuchtype" in outcome["stderr"].getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--name", "ACME", "--admin-email", "nope"], "not a valid e-mail"),
        (["--name", "Public", "--admin-email", "a@b.test"], "reserved"),
        (["--name", "  ", "--admin-email", "a@b.test"], "name"),
        (
            ["--name", "ACME", "--admin-email", "a@b.test", "--plan", "gold"],
            r"^There is no active billing plan with the code 'gold'; no active plans exist, so leave the plan empty\.$",
        ),
    ],
)
def test_provision_client_refuses_bad_input_before_creating_anything(argv: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("provision_client", *argv)
    assert not Organization.objects.exists()


@pytest.mark.django_db
def test_provision_client_names_the_active_plans_when_the_plan_is_unknown() -> None:
    PlanFactory(code="basic", unit_amount=3_000)
    PlanFactory(code="pro", unit_amount=9_000)
    with pytest.raises(CommandError, match=r"code 'gold'; use one of: basic, pro\.$"):
        call_command("provision_client", "--name", "ACME", "--admin-email", "a@b.test", "--plan", "gold")
    assert not Organization.objects.exists()
    call_command("provision_client", "--name", "ACME", "--admin-email", "a@b.test", "--plan", "basic")
    assert Organization.objects.get().plan_code == "basic"


@pytest.mark.django_db
def test_tenants_list_show_and_actions(capsys: pytest.CaptureFixture[str], redis_conn: Any) -> None:
    call_command("provision_client", "--name", "ACME Corp", "--admin-email", "admin@acme.test")
    call_command("provision_client", "--name", "Globex", "--admin-email", "it@globex.test")
    Organization.objects.filter(slug="globex").update(status="failed", last_error="boom")
    capsys.readouterr()

    call_command("tenants", "list", "--json")
    listed = json.loads(capsys.readouterr().out)
    assert sorted(o["slug"] for o in listed) == ["acme-corp", "globex"]
    call_command("tenants", "list", "--status", "failed", "--json")
    assert [o["slug"] for o in json.loads(capsys.readouterr().out)] == ["globex"]
    call_command("tenants", "list")
    table = capsys.readouterr().out
    assert "acme-corp" in table
    assert "boom" in table
    assert "2 organisation(s)." in table

    call_command("tenants", "show", "globex", "--json")
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "failed"
    assert [op["step"] for op in shown["operations"]] == ["request"]

    call_command("tenants", "retry", "globex", "--reason", "fixed")
    assert "is pending" in capsys.readouterr().out
    with pytest.raises(CommandError, match="cannot become suspended"):
        call_command("tenants", "suspend", "globex")
    with pytest.raises(CommandError, match=r"no organisation 'initech'; give a slug .*, a schema name .* or an id"):
        call_command("tenants", "show", "initech")
    call_command("tenants", "deprovision", "acme-corp", "--reason", "cancelled")
    assert Organization.objects.get(slug="acme-corp").status == "deprovisioning"


@pytest.mark.django_db
def test_every_command_takes_a_slug_a_schema_name_or_an_id(capsys: pytest.CaptureFixture[str], redis_conn: Any) -> None:
    call_command("provision_client", "--name", "ACME Corp", "--admin-email", "admin@acme.test")
    organization = Organization.objects.get()
    capsys.readouterr()
    for identifier in ("acme-corp", "acme_corp", str(organization.pk), f" {organization.pk} "):
        call_command("tenants", "show", identifier, "--json")
        assert json.loads(capsys.readouterr().out)["id"] == str(organization.pk)

    Organization.objects.filter(pk=organization.pk).update(status="active", activated_at=organization.created_at)
    call_command("provision_client", "--follow", "acme_corp")
    assert "ACME Corp is active" in capsys.readouterr().out

    call_command("invite_user", "--email", "second@acme.test", "--role", "tenant_admin", "--organization", "acme-corp")

    assert Invitation.objects.get(email="second@acme.test").organization_id == organization.pk
    with pytest.raises(CommandError, match="give a slug"):
        call_command("invite_user", "--email", "x@acme.test", "--role", "tenant_admin", "--organization", "nope")


@pytest.mark.django_db
def test_periodic_jobs_registry_feeds_rq_cron() -> None:
    resolved = periodic.periodic_jobs()
    assert {"func": jobs.reconcile_job, "queue_name": "provisioning", "interval": 60}.items() <= resolved[0].items()
    extra = [{"func": "tenants.jobs.reconcile_job", "queue": "provisioning", "interval": 60},
             {"func": "tenants.jobs.reconcile_job", "queue": "default", "cron": "0 3 * * *"}]  # fmt: skip
    with override_settings(PERIODIC_JOBS=extra):
        scheduler = cron.CronScheduler(connection=django_rq.get_connection("provisioning"))
        scheduler.load_config_from_file("tenants.periodic")
        assert [(j.queue_name, j.interval, j.cron) for j in scheduler.get_jobs()] == [
            ("provisioning", 60, None),
            ("default", None, "0 3 * * *"),
        ]

    for bad in (
        [{"func": "tenants.jobs.reconcile_job", "queue": "nope", "interval": 60}],
        [{"func": "tenants.jobs.missing", "queue": "default", "interval": 60}],
        [{"func": "tenants.jobs.reconcile_job", "queue": "default"}],
    ):
        with override_settings(PERIODIC_JOBS=bad), pytest.raises(ImproperlyConfigured):
            periodic.periodic_jobs()


@pytest.mark.django_db(databases=["default", "tenants"])
def test_tenant_sql_takes_an_organisations_slug_or_id_for_its_schema(
    capsys: pytest.CaptureFixture[str], redis_conn: Any
) -> None:
    call_command("provision_client", "--name", "ACME Corp", "--admin-email", "admin@acme.test")
    organization = Organization.objects.get()
    capsys.readouterr()
    for identifier in ("acme-corp", str(organization.pk), "acme_corp"):
        call_command("tenant_sql", "plan", "--schema", identifier, "--json")
        assert json.loads(capsys.readouterr().out)["schema"] == "acme_corp"
