"""Admin (backups with a confirmed restore, drills), the restore API, `tenants restore`, jobs and schedules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from ghostcrm.organizations.models import Organization
from operations import jobs
from operations.models import Backup, DrillRun, Outcome, RetentionRun
from operations.services import backups
from tenants.keys import service_key_create
from tests.operations.conftest import ACTOR, TENANT_DB


@TENANT_DB
def test_admin_lists_backups_and_drills_and_restores_after_confirmation(
    admin_session: Client, provision: Callable[..., Organization]
) -> None:
    acme = provision()
    backup = backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    jobs.backup_drill_job()
    page = admin_session.get("/admin/operations/backup/")
    assert page.status_code == 200
    assert b"acme-corp" in page.content
    drills = admin_session.get("/admin/operations/drillrun/")
    assert drills.status_code == 200
    assert b"success" in drills.content.lower()

    action = {"action": "restore_action", "_selected_action": [backup.pk]}
    confirm = admin_session.post("/admin/operations/backup/", action)
    assert confirm.status_code == 200
    assert b"Restore backup #" in confirm.content
    assert not Organization.objects.filter(slug="acme-support").exists()
    done = admin_session.post("/admin/operations/backup/", {**action, "confirm": "yes", "as_slug": "acme-support"})
    assert done.status_code == 302
    assert Organization.objects.get(slug="acme-support").status == Organization.Status.ACTIVE


@TENANT_DB
def test_restore_api_needs_the_lifecycle_scope_and_restores_a_copy(provision: Callable[..., Organization]) -> None:
    acme = provision()
    backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    _, reader = service_key_create(name="reader", scopes=["organizations:read"], actor=ACTOR)
    _, operator = service_key_create(name="operator", scopes=["organizations:lifecycle"], actor=ACTOR)
    client = Client()

    listed = client.get("/api/v1/backups/?slug=acme-corp", headers={"Authorization": f"Bearer {reader}"})
    assert listed.status_code == 200
    assert [b["slug"] for b in listed.json()] == ["acme-corp"]
    body = {"slug": "acme-corp", "as_slug": "acme-api-copy"}
    refused = client.post(
        "/api/v1/backups/restore/", body, headers={"Authorization": f"Bearer {reader}"}, content_type="application/json"
    )
    assert refused.status_code == 403
    made = client.post(
        "/api/v1/backups/restore/",
        body,
        headers={"Authorization": f"Bearer {operator}"},
        content_type="application/json",
    )
    assert made.status_code == 201, made.json()
    assert made.json()["slug"] == "acme-api-copy"
    assert made.json()["undeleted"] is False
    again = client.post(
        "/api/v1/backups/restore/",
        body,
        headers={"Authorization": f"Bearer {operator}"},
        content_type="application/json",
    )
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"


@TENANT_DB
def test_tenants_restore_command_and_backups_drill_command(provision: Callable[..., Organization], capsys: Any) -> None:
    acme = provision()
    call_command("backups", "run", acme.slug)
    backup = Backup.objects.get()
    call_command("tenants", "restore", acme.slug, "--backup", str(backup.pk), "--as", "acme-cli", "--to", "primary")
    assert "acme-cli restored as a new client" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no tenant server 'mars'"):
        call_command("tenants", "restore", acme.slug, "--as", "acme-cli2", "--to", "mars")
    call_command("backups", "drill", "--sample", "2")
    assert "1 checked, 0 failed (success)" in capsys.readouterr().out
    assert DrillRun.objects.get().outcome == Outcome.SUCCESS


@pytest.mark.django_db(databases=["default", "tenants"])
def test_operations_jobs_are_scheduled(redis_conn: Any) -> None:
    scheduled = {entry["func"]: entry for entry in settings.PERIODIC_JOBS}
    for name in ("tenant_backups_job", "main_backup_job", "backups_prune_job", "backup_drill_job", "retention_job"):
        assert f"operations.jobs.{name}" in scheduled
    assert scheduled["operations.jobs.tenant_backups_job"]["cron"] == "0 3 * * *"
    assert scheduled["operations.jobs.backup_drill_job"]["cron"] == "0 6 * * 0"  # weekly
    assert jobs.retention_job()["dry_run"] is False
    assert RetentionRun.objects.count() == 1


@TENANT_DB
def test_a_failed_drill_shows_on_the_provisioning_dashboard(
    admin_session: Client, provision: Callable[..., Organization]
) -> None:
    acme = provision()
    backup = backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    page = admin_session.get("/admin/organizations/organization/dashboard/")
    assert b"gc-operations" in page.content
    assert b"gc-drill-failed" not in page.content
    backup.manifest = {**backup.manifest, "fingerprint": "0" * 64}
    backup.save()
    jobs.backup_drill_job()
    page = admin_session.get("/admin/organizations/organization/dashboard/")
    assert b"gc-drill-failed" in page.content
    assert b"The last restore drill" in page.content
