"""Suspend / resume at the PostgreSQL level, deprovision with export, retention purge, export and restore."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.errors import Conflict
from ghostcrm.core.models import SystemSetting
from ghostcrm.organizations.models import Organization
from tenants import provisioning, services
from tenants.engine.selectors import schemas_validate
from tenants.engine.services import tenant_roles
from tenants.models import Domain, Tenant
from tests.support import tenant_conninfo
from tests.tenants.helpers import ACTOR, tenant_query

Status = Organization.Status
TENANT_DB = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)


def connect_as_app(organization: Organization) -> psycopg.Connection:
    roles = tenant_roles(organization.schema_name)
    organization.refresh_from_db()
    return psycopg.connect(**tenant_conninfo(user=roles.app, password=organization.app_role_password))


@pytest.fixture
def active(run_worker: Callable[[], int], request_organization: Callable[..., Organization]) -> Organization:
    organization = request_organization()
    run_worker()
    organization.refresh_from_db()
    assert organization.status == Status.ACTIVE, organization.last_error
    return organization


@TENANT_DB
def test_suspend_blocks_the_tenant_login_and_ends_its_sessions_resume_restores_it(active: Organization) -> None:
    session = connect_as_app(active)
    assert session.execute("SELECT count(*) FROM crm_users").fetchone() == (1,)  # its search_path is its schema

    services.organization_suspend(organization_id=active.pk, actor=ACTOR, reason="unpaid invoice")
    active.refresh_from_db()
    assert active.status == Status.SUSPENDED
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        connect_as_app(active)
    with pytest.raises(psycopg.OperationalError):  # the open session was terminated
        session.execute("SELECT 1")
    # No data was touched.
    assert tenant_query(f'SELECT email FROM "{active.schema_name}".crm_users') == [(active.admin_email,)]
    # Suspending twice is a conflict that changes nothing.
    with pytest.raises(Conflict, match="already suspended"):
        services.organization_suspend(organization_id=active.pk, actor=ACTOR, reason="again")
    assert AuditEvent.objects.filter(action="organization.suspend", organization_id=active.pk).count() == 1

    services.organization_resume(organization_id=active.pk, actor=ACTOR, reason="paid")
    active.refresh_from_db()
    assert active.status == Status.ACTIVE
    with connect_as_app(active) as again:
        assert again.execute("SELECT count(*) FROM crm_users").fetchone() == (1,)
    steps = list(
        active.operations.filter(step__in=["suspend", "resume"]).values_list("step", "from_status", "to_status")
    )
    assert sorted(steps) == [("resume", "suspended", "active"), ("suspend", "active", "suspended")]


def set_login(organization: Organization, *, can_login: bool) -> None:
    """Change the tenant login role by hand, as a DBA (or a failed after-commit change) would leave it."""
    role = tenant_roles(organization.schema_name).app
    tenant_query(f'ALTER ROLE "{role}" {"LOGIN" if can_login else "NOLOGIN"}')


def can_login(organization: Organization) -> bool:
    role = tenant_roles(organization.schema_name).app
    return bool(tenant_query("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [role])[0][0])


@TENANT_DB
def test_the_reconciler_repairs_a_login_that_disagrees_with_the_status_and_audits_it(active: Organization) -> None:
    assert provisioning.logins_reconcile() == {"logins_repaired": 0, "login_repair_failures": 0, "logins_missing": 0}
    set_login(active, can_login=False)  # active, yet its CRM cannot log in
    result = provisioning.organizations_reconcile()
    assert result["logins_repaired"] == 1
    assert can_login(active)
    repair = active.operations.get(step="login_repair")
    assert repair.outcome == "success"
    assert "LOGIN restored" in repair.message
    assert AuditEvent.objects.filter(action="organization.login_repair", organization_id=active.pk).count() == 1

    services.organization_suspend(organization_id=active.pk, actor=ACTOR, reason="unpaid")
    set_login(active, can_login=True)  # suspended, yet its CRM can log in
    assert provisioning.logins_reconcile()["logins_repaired"] == 1
    assert not can_login(active)
    assert provisioning.logins_reconcile()["logins_repaired"] == 0  # repaired once, then in agreement


@TENANT_DB
def test_suspend_of_a_pending_organisation_conflicts(request_organization: Callable[..., Organization]) -> None:
    organization = request_organization()
    with pytest.raises(Conflict):
        services.organization_suspend(organization_id=organization.pk, actor=ACTOR, reason="x")
    organization.refresh_from_db()
    assert organization.status == Status.PENDING


@TENANT_DB
def test_deprovision_exports_then_deletes_and_the_retention_purge_drops_schema_roles_and_registry(
    active: Organization, run_worker: Callable[[], int]
) -> None:
    services.organization_deprovision(organization_id=active.pk, actor=ACTOR, reason="contract ended")
    active.refresh_from_db()
    assert active.status == Status.DEPROVISIONING
    run_worker()
    active.refresh_from_db()
    assert active.status == Status.DELETED
    export = Path(active.export_path)
    assert export.is_file()
    text = export.read_text()
    assert f"CREATE SCHEMA {active.schema_name};" in text
    assert 'INSERT INTO public."tenant_sql_ledger"' in text
    assert active.deleted_at is not None
    assert active.purge_after is not None
    assert abs((active.purge_after - active.deleted_at) - dt.timedelta(days=30)) < dt.timedelta(seconds=1)
    # Deleted but within retention: the schema is still there, its login is not.
    assert tenant_query("SELECT 1 FROM pg_namespace WHERE nspname = %s", [active.schema_name])
    with pytest.raises(psycopg.OperationalError):
        connect_as_app(active)
    assert provisioning.organizations_reconcile()["purged"] == 0

    Organization.objects.filter(pk=active.pk).update(purge_after=timezone.now() - dt.timedelta(seconds=1))
    result = provisioning.organizations_reconcile()
    assert result["purged"] == 1
    active.refresh_from_db()
    assert active.status == Status.PURGED
    roles = tenant_roles(active.schema_name)
    assert not tenant_query("SELECT 1 FROM pg_namespace WHERE nspname = %s", [active.schema_name])
    assert not tenant_query("SELECT 1 FROM pg_roles WHERE rolname = ANY(%s)", [[roles.owner, roles.app]])
    assert not Tenant.objects.using("tenants").filter(organization_id=active.pk).exists()
    assert not Domain.objects.using("tenants").exists()
    assert export.is_file()  # the export is kept
    assert AuditEvent.objects.filter(action="organization.purge", organization_id=active.pk).exists()


@TENANT_DB
def test_retention_period_comes_from_system_settings(active: Organization, run_worker: Callable[[], int]) -> None:
    SystemSetting.objects.create(key="provisioning.retention_days", value="0")
    services.organization_deprovision(organization_id=active.pk, actor=ACTOR, reason="gone")
    run_worker()
    assert provisioning.organizations_reconcile()["purged"] == 1
    active.refresh_from_db()
    assert active.status == Status.PURGED


@TENANT_DB
def test_export_and_restore_commands_round_trip_a_schema(
    active: Organization, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = active.schema_name
    tenant_query(f"INSERT INTO \"{schema}\".crm_users (email, full_name, role) VALUES ('b@acme.test', 'B', 'member')")
    target = tmp_path / "acme.sql"
    call_command("tenants", "export", active.slug, "--output", str(target))
    assert target.is_file()
    assert "exported to" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already exists"):
        call_command("tenants", "restore", str(target))

    tenant_query(f'DROP SCHEMA "{schema}" CASCADE')
    call_command("tenants", "restore", str(target))
    users = tenant_query(f'SELECT email, role FROM "{schema}".crm_users ORDER BY email')
    assert users == [("admin@acme.test", "admin"), ("b@acme.test", "member")]
    ledger = tenant_query("SELECT count(*) FROM public.tenant_sql_ledger WHERE schema_name = %s AND success", [schema])
    assert ledger[0][0] >= 1
    with connect_as_app(active) as session:  # the active organisation's CRM can log in to the restored schema
        assert session.execute("SELECT count(*) FROM crm_users").fetchone() == (2,)
    assert AuditEvent.objects.filter(action="tenant_sql.schema_restore", target_id=schema).exists()


@TENANT_DB
def test_restore_refuses_a_file_that_is_not_an_export(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.sql"
    bogus.write_text("SELECT 1;\n")
    with pytest.raises(CommandError, match="not a one-schema export"):
        call_command("tenants", "restore", str(bogus))
    with pytest.raises(CommandError, match="is not a file"):
        call_command("tenants", "restore", str(tmp_path / "missing.sql"))


def schema_fingerprint(schema: str) -> dict[str, object]:
    """Objects, ownership, grants, row security, policies, definitions and every table's rows of one schema."""
    queries = {
        "relations": """SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner), c.relrowsecurity,
                               c.relforcerowsecurity, coalesce(c.relacl::text, '')
                        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = %(s)s ORDER BY 1""",
        "columns": """SELECT table_name, column_name, data_type, coalesce(column_default, ''), is_nullable
                      FROM information_schema.columns WHERE table_schema = %(s)s ORDER BY 1, 2""",
        # Parentheses dropped: a restored CHECK reads "a AND b AND c" where the original read "(a AND b) AND c".
        "constraints": """SELECT cl.relname, co.conname, regexp_replace(pg_get_constraintdef(co.oid), '[()]', '', 'g')
                          FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
                          JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = %(s)s ORDER BY 1, 2""",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %(s)s ORDER BY 1",
        "policies": """SELECT tablename, policyname, permissive, roles::text, cmd, coalesce(qual, ''),
                              coalesce(with_check, '') FROM pg_policies WHERE schemaname = %(s)s ORDER BY 1, 2""",
        "triggers": """SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = %(s)s AND NOT t.tgisinternal ORDER BY 1, 2""",
        "functions": """SELECT p.proname, pg_get_function_identity_arguments(p.oid), md5(pg_get_functiondef(p.oid)),
                               pg_get_userbyid(p.proowner), coalesce(p.proacl::text, '')
                        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                        WHERE n.nspname = %(s)s ORDER BY 1, 2""",
        "views": "SELECT viewname, md5(definition) FROM pg_views WHERE schemaname = %(s)s ORDER BY 1",
        "sequences": "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = %(s)s ORDER BY 1",
        "schema": """SELECT pg_get_userbyid(nspowner), coalesce(nspacl::text, '') FROM pg_namespace
                     WHERE nspname = %(s)s""",
    }
    fingerprint: dict[str, object] = {name: tenant_query(query, {"s": schema}) for name, query in queries.items()}  # type: ignore[arg-type]
    tables = [row[0] for row in tenant_query(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", [schema])]  # fmt: skip
    fingerprint["rows"] = {
        table: tenant_query(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
            f'FROM "{schema}"."{table}" t'
        )[0]
        for table in tables
    }
    return fingerprint


@TENANT_DB
def test_a_deprovisioning_export_restores_the_purged_schema_exactly(
    active: Organization, run_worker: Callable[[], int]
) -> None:
    """The export a deprovision keeps is complete: after the purge, restoring it gives back the same schema."""

    schema = active.schema_name
    tenant_query(f"INSERT INTO \"{schema}\".crm_users (email, full_name, role) VALUES ('b@acme.test', 'B', 'member')")
    tenant_query(f"""INSERT INTO "{schema}".companies (owner_id, name, domain)
                     SELECT id, 'Initech', 'initech.test' FROM "{schema}".crm_users WHERE email = 'b@acme.test'""")
    before = schema_fingerprint(schema)
    assert before["rows"]["companies"][0] == 1  # type: ignore[index]
    ledger = "SELECT version, checksum, filename FROM public.tenant_sql_ledger WHERE schema_name = %s ORDER BY 1"
    ledger_before = tenant_query(ledger, [schema])

    SystemSetting.objects.create(key="provisioning.retention_days", value="0")
    services.organization_deprovision(organization_id=active.pk, actor=ACTOR, reason="moving out")
    run_worker()
    assert provisioning.organizations_reconcile()["purged"] == 1
    active.refresh_from_db()
    assert active.status == Status.PURGED
    assert not tenant_query("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
    assert not tenant_query(ledger, [schema])

    assert provisioning.schema_restore(path=Path(active.export_path), actor=ACTOR) == schema
    assert schema_fingerprint(schema) == before
    assert tenant_query(ledger, [schema]) == ledger_before
    assert schemas_validate(schemas=[schema]) == []  # no drift: the templates need not run again
    roles = tenant_roles(schema)
    # A purged organisation's CRM may not log in to the restored copy.
    assert tenant_query("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [roles.app]) == [(False,)]


@TENANT_DB
def test_the_crm_support_page_reads_the_clients_users_and_counts_through_the_mirrors(
    active: Organization, admin_session: Any
) -> None:
    users = f'"{active.schema_name}".crm_users'
    tenant_query(f"INSERT INTO {users} (email, full_name, role) VALUES ('b@acme.test', 'Bea', 'member')")
    change = admin_session.get(reverse("admin:organizations_organization_change", args=[active.pk])).content.decode()
    url = reverse("admin:tenants_organization_crm", kwargs={"organization_id": active.pk})
    assert f'href="{url}"' in change
    page = admin_session.get(url).content.decode()
    assert "Users (2)" in page
    assert active.admin_email in page
    assert "Bea" in page
    assert "Tenant CRM admin" in page
    assert "0 companies, 0 contacts, 0 deals." in page
