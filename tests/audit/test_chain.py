"""The keyed chain: sealing in order, and what `audit_verify` finds when someone with database rights edits it."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from ghostcrm.audit import keys
from ghostcrm.audit.models import AppendOnlyError, AuditChainHead, AuditEvent
from ghostcrm.audit.sealing import (
    AuditChainError,
    audit_checkpoint_latest,
    audit_seal,
    link_hash,
)
from ghostcrm.audit.selectors import audit_chain_verify, audit_unsealed_overdue
from ghostcrm.audit.services import GENESIS_HASH, NUL_REPLACEMENT, Actor, audit_record, model_snapshot

pytestmark = pytest.mark.django_db


def record_three() -> list[AuditEvent]:
    org_id = uuid.uuid4()
    return [
        audit_record(action="organization.create", organization_id=org_id, after={"name": "ACME"}),
        audit_record(action="organization.activate", actor=Actor.api_key(7, "ci-key"), organization_id=org_id),
        audit_record(action="login.failure", outcome=AuditEvent.Outcome.FAILURE, message="bad password"),
    ]


def sealed_three() -> list[AuditEvent]:
    record_three()
    assert audit_seal().sealed == 3
    return list(AuditEvent.objects.order_by("sequence"))


def execute(statement: str, params: list[object]) -> None:
    with connection.cursor() as cursor:  # what someone with rights on the database would do
        cursor.execute(statement, params)


def rewrite_and_recompute(key: keys.AuditKey, *, sequence: int, message: str) -> None:
    """Edit one sealed event, then recompute every later link (and the head) with ``key``."""
    previous = None
    for event in AuditEvent.objects.filter(sequence__gte=sequence).order_by("sequence"):
        if previous is not None:
            event.prev_hash = previous
        if event.sequence == sequence:
            event.message = message
        event.hash = previous = link_hash(event, key)
        execute(
            "UPDATE audit_auditevent SET message = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [event.message, event.prev_hash, event.hash, event.pk],
        )
    execute("UPDATE audit_auditchainhead SET hash = %s WHERE id = 1", [previous])


def test_appending_takes_no_chain_position_sealing_gives_it_in_order() -> None:
    events = record_three()
    assert all(event.sequence is None and event.hash is None for event in events)
    result = audit_seal()
    assert (result.sealed, result.head_sequence) == (3, 3)
    first, second, third = AuditEvent.objects.order_by("sequence")
    assert [first.pk, second.pk, third.pk] == [e.pk for e in events]
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert {e.key_id for e in (first, second, third)} == {"dev"}
    assert second.actor_type == "api_key"
    assert second.actor_label == "ci-key"
    assert audit_seal().sealed == 0
    report = audit_chain_verify()
    assert report.ok
    assert report.checked == 3
    assert report.alarms == ()
    assert report.checkpoint is not None
    assert report.checkpoint.sequence == 3


def test_sealing_publishes_a_signed_checkpoint_outside_the_database(backups_dir: Path) -> None:
    sealed_three()
    files = sorted((backups_dir / "audit" / "checkpoints").iterdir())
    assert [f.name for f in files] == ["checkpoint-000000000000003.json"]
    data = json.loads(files[0].read_text())
    head = AuditChainHead.objects.get(pk=1)
    assert (data["sequence"], data["hash"], data["key_id"]) == (3, head.hash, "dev")
    checkpoint = audit_checkpoint_latest()
    assert checkpoint is not None
    assert checkpoint.signature_valid
    for _ in range(4):  # older checkpoints are pruned, the newest few kept
        audit_record(action="x.y")
        audit_seal()
    names = [f.name for f in sorted((backups_dir / "audit" / "checkpoints").iterdir())]
    assert names == [f"checkpoint-{n:015d}.json" for n in (5, 6, 7)]


def test_a_tampered_row_is_found() -> None:
    events = sealed_three()
    execute("UPDATE audit_auditevent SET actor_label = %s WHERE id = %s", ["someone-else", events[1].pk])
    report = audit_chain_verify()
    assert report.broken_at == 2
    assert "altered" in report.reason


def test_a_deleted_row_is_found() -> None:
    events = sealed_three()
    execute("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])
    report = audit_chain_verify()
    assert report.broken_at == 2
    assert "missing" in report.reason


def test_truncation_with_the_head_rewound_is_found_by_the_checkpoint() -> None:
    """Attack 1 of issue 10: delete the newest rows and rewind the head so the database looks consistent."""
    events = sealed_three()
    execute("DELETE FROM audit_auditevent WHERE id IN (%s, %s)", [events[1].pk, events[2].pk])
    execute("UPDATE audit_auditchainhead SET sequence = 1, hash = %s WHERE id = 1", [events[0].hash])
    report = audit_chain_verify()
    assert report.broken_at == 2
    assert "records event #3, but the log ends at #1" in report.reason
    assert "truncated" in report.reason


def test_a_rewrite_recomputed_without_the_key_is_found() -> None:
    """Attack 2 of issue 10, by someone with the database but not the key: every recomputed link is wrong."""
    sealed_three()
    rewrite_and_recompute(keys.AuditKey("dev", b"a guess at the key"), sequence=2, message="nothing happened")
    report = audit_chain_verify()
    assert report.broken_at == 2
    assert "HMAC mismatch" in report.reason


def test_a_rewrite_recomputed_with_the_key_is_found_by_the_checkpoint() -> None:
    """Even with the key, a rewrite before the published checkpoint changes the hash the checkpoint holds."""
    sealed_three()
    rewrite_and_recompute(keys.signing_key(), sequence=2, message="nothing happened")
    report = audit_chain_verify()
    assert report.broken_at == 3
    assert "differs from the checkpoint" in report.reason


def test_a_forged_or_altered_checkpoint_is_found(backups_dir: Path) -> None:
    sealed_three()
    path = next((backups_dir / "audit" / "checkpoints").iterdir())
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "sequence": 2}))
    report = audit_chain_verify()
    assert report.broken_at == 2
    assert "not validly signed" in report.reason
    path.write_text("{not json")
    report = audit_chain_verify()
    assert not report.ok
    assert "unreadable" in report.reason


def test_a_missing_checkpoint_is_an_alarm(backups_dir: Path) -> None:
    sealed_three()
    for path in (backups_dir / "audit" / "checkpoints").iterdir():
        path.unlink()
    report = audit_chain_verify()
    assert report.ok
    assert report.alarms == ("no checkpoint has been published to the backups storage: truncation cannot be detected",)


def test_events_left_unsealed_too_long_are_an_alarm(capsys: pytest.CaptureFixture[str]) -> None:
    event = audit_record(action="x.y")
    assert audit_unsealed_overdue() == 0
    execute(
        "UPDATE audit_auditevent SET occurred_at = %s WHERE id = %s", [timezone.now() - dt.timedelta(hours=1), event.pk]
    )
    assert audit_unsealed_overdue() == 1
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit_verify", "--no-seal")
    assert exit_info.value.code == 1
    assert "ALARM: 1 event(s) unsealed for longer than 300 s" in capsys.readouterr().err
    # audit_verify seals by default, and still says that the sealer had fallen behind
    with pytest.raises(SystemExit):
        call_command("audit_verify")
    streams = capsys.readouterr()
    assert "Audit chain intact: 1 events verified" in streams.out
    assert "were unsealed for longer than 300 s before this check sealed them" in streams.err
    call_command("audit_verify")
    assert "Audit chain intact: 1 events verified" in capsys.readouterr().out


def test_keys_rotate_and_a_missing_key_is_named() -> None:
    with override_settings(AUDIT_HMAC_KEYS=["k1:" + "a" * 40]):
        record_three()
        audit_seal()
    with override_settings(AUDIT_HMAC_KEYS=["k2:" + "b" * 40, "k1:" + "a" * 40]):
        audit_record(action="after.rotation")
        audit_seal()
        assert list(AuditEvent.objects.order_by("sequence").values_list("key_id", flat=True)) == ["k1"] * 3 + ["k2"]
        assert audit_chain_verify().ok
    with override_settings(AUDIT_HMAC_KEYS=["k2:" + "b" * 40]):
        report = audit_chain_verify()
    assert report.broken_at == 1
    assert "key 'k1', which AUDIT_HMAC_KEYS does not list" in report.reason


def test_no_field_ever_carries_a_nul() -> None:
    nul = "a\x00b"
    event = audit_record(
        action=f"x.{nul}",
        actor=Actor("user", nul, nul),
        target_type=nul,
        target_id=nul,
        target_repr=nul,
        organization_id="abc\x00def",
        before={nul: [nul, {"k": nul}]},
        after={"v": nul},
        message=nul,
        request_id=nul,
        ip_address="1.2.3.4\x00",
        user_agent=nul,
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    texts = [getattr(stored, name) for name in ("action", "actor_id", "actor_label", "target_type", "target_id")]
    texts += [stored.target_repr, stored.message, stored.request_id, stored.user_agent]
    texts += [json.dumps(stored.before), json.dumps(stored.after)]
    assert not any("\x00" in text or "\\u0000" in text for text in texts)
    assert stored.target_id == f"a{NUL_REPLACEMENT}b"
    assert stored.before == {f"a{NUL_REPLACEMENT}b": [f"a{NUL_REPLACEMENT}b", {"k": f"a{NUL_REPLACEMENT}b"}]}
    assert stored.organization_id is None
    assert stored.ip_address is None
    audit_seal()
    assert audit_chain_verify().ok


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
    call_command("audit_verify")  # seals first
    out = capsys.readouterr().out
    assert "Audit chain intact: 3 events verified; matches the checkpoint of #3" in out
    execute("UPDATE audit_auditevent SET message = 'edited' WHERE id = %s", [events[2].pk])
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit_verify")
    assert exit_info.value.code == 1
    assert "BROKEN at event #3" in capsys.readouterr().err


def test_snapshots_redact_secrets(super_admin: object) -> None:
    snapshot = model_snapshot(super_admin)  # type: ignore[arg-type]
    assert snapshot["password"] == "[redacted]"
    assert snapshot["email"] == "root@ghostcrm.test"


def test_an_empty_log_recreates_its_genesis_head() -> None:
    AuditChainHead.objects.all().delete()  # as a flush of the database does
    audit_record(action="x.y")
    audit_seal()
    first = AuditEvent.objects.get()
    assert first.sequence == 1
    assert first.prev_hash == GENESIS_HASH
    assert audit_chain_verify().ok


def test_a_missing_head_with_sealed_events_is_refused() -> None:
    audit_record(action="x.y")
    audit_seal()
    AuditChainHead.objects.all().delete()
    audit_record(action="x.z")  # appending never needs the head
    with pytest.raises(AuditChainError, match="head row is missing"):
        audit_seal()
    report = audit_chain_verify()
    assert report.broken_at == 2
    assert "head row is missing" in report.reason


@pytest.mark.parametrize(
    ("keys_setting", "expected"),
    [
        (["nocolon"], "entry #1 is not 'id:secret'"),
        (["k1:" + "a" * 40, "k1:" + "b" * 40], "names one key id twice"),
        ([], "AUDIT_HMAC_KEYS is empty"),
    ],
)
def test_unusable_keys_fail_the_system_check(keys_setting: list[str], expected: str) -> None:
    with override_settings(AUDIT_HMAC_KEYS=keys_setting), pytest.raises(SystemCheckError, match=expected):
        call_command("check")
