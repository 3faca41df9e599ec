from __future__ import annotations

import uuid

import pytest
from django.core.management import call_command
from django.db import connection

from ghostcrm.audit.models import AppendOnlyError, AuditEvent
from ghostcrm.audit.selectors import audit_chain_verify
from ghostcrm.audit.services import GENESIS_HASH, Actor, audit_record, model_snapshot

pytestmark = pytest.mark.django_db


def record_three() -> list[AuditEvent]:
    org_id = uuid.uuid4()
    return [
        audit_record(action="organization.create", organization_id=org_id, after={"name": "ACME"}),
        audit_record(action="organization.activate", actor=Actor.api_key(7, "ci-key"), organization_id=org_id),
        audit_record(action="login.failure", outcome=AuditEvent.Outcome.FAILURE, message="bad password"),
    ]


def test_events_form_a_chain() -> None:
    first, second, third = record_three()
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert [first.sequence, second.sequence, third.sequence] == [1, 2, 3]
    assert second.actor_type == "api_key" and second.actor_label == "ci-key"
    report = audit_chain_verify()
    assert report.ok and report.checked == 3


def test_a_tampered_row_is_found() -> None:
    events = record_three()
    with connection.cursor() as cursor:  # what an attacker with database access would do
        cursor.execute("UPDATE audit_auditevent SET actor_label = %s WHERE id = %s", ["someone-else", events[1].pk])
    report = audit_chain_verify()
    assert not report.ok
    assert report.broken_at == 2
    assert "altered" in report.reason


def test_a_deleted_row_is_found() -> None:
    events = record_three()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])
    report = audit_chain_verify()
    assert report.broken_at == 2 and "missing" in report.reason


def test_a_removed_tail_is_found() -> None:
    events = record_three()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    report = audit_chain_verify()
    assert report.broken_at == 3 and "removed" in report.reason


def test_the_orm_refuses_to_change_history() -> None:
    event = audit_record(action="x.y")
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="z")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


def test_audit_verify_command(capsys: pytest.CaptureFixture[str]) -> None:
    events = record_three()
    call_command("audit_verify")
    assert "3 events verified" in capsys.readouterr().out
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET message = 'edited' WHERE id = %s", [events[2].pk])
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit_verify")
    assert exit_info.value.code == 1
    assert "BROKEN at event #3" in capsys.readouterr().err


def test_snapshots_redact_secrets(super_admin: object) -> None:
    snapshot = model_snapshot(super_admin)  # type: ignore[arg-type]
    assert snapshot["password"] == "[redacted]"
    assert snapshot["email"] == "root@ghostcrm.test"


def test_an_empty_log_recreates_its_genesis_head() -> None:
    from ghostcrm.audit.models import AuditChainHead

    AuditChainHead.objects.all().delete()  # as a flush of the database does
    first = audit_record(action="x.y")
    assert first.sequence == 1 and first.prev_hash == GENESIS_HASH
    assert audit_chain_verify().ok


def test_a_missing_head_with_events_is_refused() -> None:
    from ghostcrm.audit.models import AuditChainHead
    from ghostcrm.audit.services import AuditChainError

    audit_record(action="x.y")
    AuditChainHead.objects.all().delete()
    with pytest.raises(AuditChainError, match="head row is missing"):
        audit_record(action="x.z")
    report = audit_chain_verify()
    assert report.broken_at == 2 and "head row is missing" in report.reason
