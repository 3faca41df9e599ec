"""Archival: old events leave the log for a file behind a signed checkpoint; both still verify."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from ghostcrm.audit.archives import audit_archive, audit_archive_verify
from ghostcrm.audit.models import AuditArchive, AuditEvent
from ghostcrm.audit.sealing import audit_seal
from ghostcrm.audit.selectors import audit_chain_verify
from ghostcrm.audit.services import audit_record
from ghostcrm.core.errors import Conflict, NotFound, ValidationError

pytestmark = pytest.mark.django_db


def execute(statement: str, params: list[object]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def history(old: int, new: int) -> None:
    """``old`` events written 40 days ago, then ``new`` recent ones, all sealed."""
    for n in range(old):
        event = audit_record(action="tests.old", message=f"old {n}")
        # Dated back before sealing: the date is part of the link, as when the events really were old.
        execute(
            "UPDATE audit_auditevent SET occurred_at = %s WHERE id = %s",
            [timezone.now() - dt.timedelta(days=40), event.pk],
        )
    for n in range(new):
        audit_record(action="tests.new", message=f"new {n}")
    audit_seal()


def test_archive_moves_old_events_behind_a_checkpoint(backups_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history(old=5, new=3)
    dry = audit_archive(older_than_days=30, dry_run=True)
    assert (dry.events, dry.first_sequence, dry.last_sequence, dry.dry_run) == (5, 1, 5, True)
    assert AuditEvent.objects.count() == 8
    assert not AuditArchive.objects.exists()

    result = audit_archive(older_than_days=30, dry_run=False)
    assert (result.events, result.first_sequence, result.last_sequence) == (dry.events, 1, 5)
    checkpoint = AuditArchive.objects.get()
    assert (checkpoint.last_sequence, checkpoint.file_name) == (5, result.file_name)
    file = backups_dir / result.file_name
    with gzip.open(file, "rt") as lines:
        archived = [json.loads(line) for line in lines]
    assert [line["message"] for line in archived] == [f"old {n}" for n in range(5)]
    assert archived[-1]["hash"] == checkpoint.last_hash
    # Left in the log: the recent events and the archive run's own event.
    assert sorted(AuditEvent.objects.values_list("action", flat=True)) == ["audit.archive"] + ["tests.new"] * 3

    audit_seal()
    report = audit_chain_verify()
    assert report.ok
    assert report.first_sequence == 6
    assert report.checked == 4
    assert audit_archive_verify(file=result.file_name).checked == 5
    assert audit_archive_verify(file=str(file)).checked == 5  # a local copy, as an auditor would have
    call_command("audit_verify", "--archive", result.file_name)
    assert "intact: 5 events verified" in capsys.readouterr().out
    assert audit_archive(older_than_days=30, dry_run=False).events == 0  # nothing old is left


def test_archive_stops_at_the_first_recent_event() -> None:
    history(old=3, new=0)
    audit_archive(older_than_days=30, dry_run=False)
    history(old=2, new=1)  # sealed after the archive run's own (recent) event, #4
    assert audit_archive(older_than_days=30, dry_run=True).events == 0  # #4 is recent: the old #5, #6 wait
    execute("UPDATE audit_auditevent SET occurred_at = %s WHERE sequence = 4", [timezone.now() - dt.timedelta(days=40)])
    with pytest.raises(Conflict, match="altered"):  # dating a sealed event back breaks its link
        audit_archive(older_than_days=30, dry_run=False)


def test_a_second_archive_continues_from_the_first() -> None:
    history(old=3, new=0)
    first = audit_archive(older_than_days=30, dry_run=False)
    run_event = AuditEvent.objects.get(action="audit.archive")
    execute(  # still unsealed: dated back as if the first run had happened long ago
        "UPDATE audit_auditevent SET occurred_at = %s WHERE id = %s",
        [timezone.now() - dt.timedelta(days=35), run_event.pk],
    )
    history(old=2, new=1)
    second = audit_archive(older_than_days=30, dry_run=False)
    assert (first.first_sequence, first.last_sequence, second.first_sequence, second.last_sequence) == (1, 3, 4, 6)
    assert [a.first_sequence for a in AuditArchive.objects.order_by("last_sequence")] == [1, 4]
    audit_seal()
    report = audit_chain_verify()
    assert report.ok
    assert report.first_sequence == 7
    assert audit_archive_verify(file=first.file_name).ok
    assert audit_archive_verify(file=second.file_name).ok


def test_a_tampered_archive_is_reported(backups_dir: Path) -> None:
    history(old=4, new=1)
    result = audit_archive(older_than_days=30, dry_run=False)
    file = backups_dir / result.file_name
    with gzip.open(file, "rt") as lines:
        archived = [json.loads(line) for line in lines]
    archived[1]["message"] = "nothing to see"
    with gzip.open(file, "wt") as out:
        out.writelines(json.dumps(line) + "\n" for line in archived)
    report = audit_archive_verify(file=result.file_name)
    assert not report.ok
    assert "does not match its checkpoint's SHA-256" in report.reason
    with pytest.raises(SystemExit) as exit_info:
        call_command("audit_verify", "--archive", result.file_name)
    assert exit_info.value.code == 1


def test_an_archive_rewritten_with_its_checksum_updated_is_still_caught(backups_dir: Path) -> None:
    """Someone with the database and the storage, but not the key: the SHA-256 can be forged, the links cannot."""
    history(old=4, new=1)
    result = audit_archive(older_than_days=30, dry_run=False)
    file = backups_dir / result.file_name
    with gzip.open(file, "rt") as lines:
        archived = [json.loads(line) for line in lines]
    archived[1]["message"] = "nothing to see"
    with gzip.open(file, "wt") as out:
        out.writelines(json.dumps(line) + "\n" for line in archived)
    execute("UPDATE audit_auditarchive SET file_sha256 = %s", [hashlib.sha256(file.read_bytes()).hexdigest()])
    report = audit_archive_verify(file=result.file_name)
    assert not report.ok
    assert "not validly signed" in report.reason


def test_a_missing_checkpoint_is_reported() -> None:
    history(old=3, new=1)
    result = audit_archive(older_than_days=30, dry_run=False)
    execute("DELETE FROM audit_auditarchive", [])
    with pytest.raises(NotFound, match="has no checkpoint"):
        audit_archive_verify(file=result.file_name)
    with pytest.raises(CommandError, match="has no checkpoint"):
        call_command("audit_verify", "--archive", result.file_name)
    report = audit_chain_verify()
    assert report.broken_at == 1
    assert "no archive checkpoint covers it" in report.reason


def test_a_broken_chain_is_not_archived() -> None:
    history(old=3, new=1)
    execute("UPDATE audit_auditevent SET message = 'edited' WHERE sequence = 2", [])
    with pytest.raises(Conflict, match="broken at event #2"):
        audit_archive(older_than_days=30, dry_run=False)
    assert AuditEvent.objects.count() == 4
    assert not AuditArchive.objects.exists()


def test_archive_refuses_less_than_a_day() -> None:
    with pytest.raises(ValidationError):
        audit_archive(older_than_days=0, dry_run=True)
