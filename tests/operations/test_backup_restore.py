"""Backup, encrypt, restore under a new name and compare; restore over a deleted client (undelete); drills."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.errors import Conflict
from ghostcrm.core.fields import EncryptionKeyError, key_fingerprint
from ghostcrm.organizations.models import Organization
from operations.models import Backup, Outcome
from operations.services import backups, bundle, drills, pg, restore
from operations.storage import backups_storage
from tenants import services
from tenants.engine.services import tenant_roles
from tenants.models import Tenant
from tests.operations.conftest import ACTOR, TENANT_DB, tenant_query
from tests.support import tenant_conninfo

Status = Organization.Status


def seed_contacts(organization: Organization, count: int) -> None:
    with psycopg.connect(**tenant_conninfo()) as conn:
        owner = conn.execute(f'SELECT id FROM "{organization.schema_name}".crm_users LIMIT 1').fetchone()
        for number in range(count):
            conn.execute(
                f'INSERT INTO "{organization.schema_name}".contacts (first_name, last_name, owner_id)'
                " VALUES (%s, %s, %s)",
                [f"First{number}", f"Last {number}", owner[0]],
            )


def facts(schema: str) -> dict[str, Any]:
    with psycopg.connect(**tenant_conninfo(autocommit=False)) as conn:
        return pg.schema_facts(conn, schema)


@TENANT_DB
def test_backup_is_encrypted_and_restores_as_a_working_copy_with_its_own_roles(
    provision: Callable[..., Organization],
) -> None:
    acme = provision()
    seed_contacts(acme, 5)
    backup = backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)

    assert backup.outcome == Outcome.SUCCESS, backup.error
    assert backup.size_bytes
    assert len(backup.sha256) == 64
    assert backup.key_id
    assert backup.manifest["row_counts"]["contacts"] == 5
    stored = backups_storage().open(backup.storage_name, "rb").read()
    assert stored.startswith(b"GCBK1")
    assert b"First3" not in stored
    assert b"CREATE TABLE" not in stored

    result = restore.organization_restore(slug=acme.slug, as_slug="acme-copy", actor=ACTOR)
    copy = result.organization
    assert copy.status == Status.ACTIVE
    assert copy.schema_name != acme.schema_name
    assert facts(copy.schema_name)["fingerprint"] == backup.manifest["fingerprint"]
    assert facts(copy.schema_name)["row_counts"] == backup.manifest["row_counts"]
    # Its own roles: the copy's app role logs in and sees its own schema; the original is untouched.
    roles = tenant_roles(copy.schema_name)
    with psycopg.connect(**tenant_conninfo(user=roles.app, password=copy.app_role_password)) as conn:
        assert conn.execute("SELECT count(*) FROM crm_users").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'SELECT count(*) FROM "{acme.schema_name}".contacts')
    owners = tenant_query(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s",
        [copy.schema_name],
    )
    assert owners == [(roles.owner,)]
    # The owner's default privileges (database-wide, left out by pg_dump -n) follow: same grants, new roles.
    default_acl = "SELECT defaclobjtype::text, defaclacl::text FROM pg_default_acl WHERE defaclrole = %s::regrole"
    source_roles = tenant_roles(acme.schema_name)
    expected = [
        (kind, acl.replace(source_roles.app, roles.app).replace(source_roles.owner, roles.owner))
        for kind, acl in tenant_query(default_acl, [source_roles.owner])
    ]
    assert expected
    assert sorted(tenant_query(default_acl, [roles.owner])) == sorted(expected)
    ledger = tenant_query("SELECT count(*) FROM public.tenant_sql_ledger WHERE schema_name = %s", [copy.schema_name])
    assert ledger[0][0] == backup.manifest["ledger_rows"] > 0
    assert Tenant.objects.using("tenants").filter(organization_id=copy.pk).exists()
    assert AuditEvent.objects.filter(action="organization.restore", organization_id=copy.pk).exists()


@TENANT_DB
def test_restore_over_a_deleted_client_undeletes_it(provision: Callable[..., Organization], run_worker: Any) -> None:
    acme = provision()
    seed_contacts(acme, 3)
    backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    seed_contacts(acme, 2)  # after the backup: gone once restored
    with pytest.raises(Conflict, match="new name"):  # a live client is never overwritten
        restore.organization_restore(slug=acme.slug, actor=ACTOR)
    services.organization_deprovision(organization_id=acme.pk, actor=ACTOR, reason="left")
    run_worker()
    acme.refresh_from_db()
    assert acme.status == Status.DELETED

    result = restore.organization_restore(slug=acme.slug, actor=ACTOR)

    acme.refresh_from_db()
    assert result.undeleted
    assert acme.status == Status.ACTIVE
    assert acme.deleted_at is None
    assert acme.purge_after is None
    assert tenant_query(f'SELECT count(*) FROM "{acme.schema_name}".contacts') == [(3,)]
    roles = tenant_roles(acme.schema_name)
    with psycopg.connect(**tenant_conninfo(user=roles.app, password=acme.app_role_password)) as conn:
        assert conn.execute("SELECT count(*) FROM crm_users").fetchone() == (1,)
    step = acme.operations.get(step="undelete")
    assert (step.from_status, step.to_status) == ("deleted", "active")
    assert AuditEvent.objects.filter(action="organization.undelete", organization_id=acme.pk).exists()
    leftovers = tenant_query("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [acme.schema_name + "_pre_%"])
    assert leftovers == []


@TENANT_DB
def test_drill_passes_then_detects_a_flipped_byte(provision: Callable[..., Organization]) -> None:
    acme = provision()
    seed_contacts(acme, 4)
    backup = backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)

    good = drills.drill_run(sample=3, actor=ACTOR)
    assert good.outcome == Outcome.SUCCESS, good.results
    assert good.checked == 1

    path = Path(backups_storage().path(backup.storage_name))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    bad = drills.drill_run(sample=3, actor=ACTOR)
    assert bad.outcome == Outcome.FAILURE
    assert bad.failed == 1
    assert "SHA-256" in bad.results[0]["differences"][0]
    # No scratch schema is left behind either way.
    assert tenant_query("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", ["drill\\_%"]) == []


@TENANT_DB
def test_drill_detects_a_dump_that_no_longer_matches_its_facts(provision: Callable[..., Organization]) -> None:
    acme = provision()
    backup = backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    backup.manifest = {**backup.manifest, "row_counts": {**backup.manifest["row_counts"], "contacts": 7}}
    backup.save()
    drill = drills.drill_run(sample=1, actor=ACTOR)
    assert drill.outcome == Outcome.FAILURE
    assert drill.results[0]["differences"] == ["contacts: 0 rows, 7 at backup time"]


@TENANT_DB
def test_key_rotation_keeps_old_backups_readable(provision: Callable[..., Organization], settings: Any) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old_key]
    acme = provision()
    old = backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    assert old.key_id == key_fingerprint(old_key)

    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    new = backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    assert new.key_id == key_fingerprint(new_key)
    copy = restore.organization_restore(slug=acme.slug, backup_id=old.pk, as_slug="acme-old", actor=ACTOR)
    assert copy.organization.status == Status.ACTIVE

    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key removed too early: named in the error
    drill = drills.drill_run(sample=5, actor=ACTOR)
    assert drill.outcome == Outcome.SUCCESS  # the newest backup per client uses the new key
    with bundle.workdir() as folder, pytest.raises(EncryptionKeyError, match=old.key_id):
        bundle.fetch(name=old.storage_name, workdir=Path(folder))


@TENANT_DB
def test_backups_command_runs_lists_and_reports_json(provision: Callable[..., Organization], capsys: Any) -> None:
    provision()
    provision(name="Beta Ltd", email="admin@beta.test")
    call_command("backups", "run", "--all")
    out = capsys.readouterr().out
    assert "[1/2]" in out
    assert "[2/2]" in out
    assert "2 succeeded, 0 failed" in out
    call_command("backups", "list", "acme-corp", "--json")
    listed = __import__("json").loads(capsys.readouterr().out)
    assert [row["slug"] for row in listed] == ["acme-corp"]
    assert Backup.objects.filter(outcome=Outcome.SUCCESS).count() == 2
