"""Retention per kind, with the dry run matching the real run; operations archived with a checksum."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing.models import UsageReading, WebhookEvent
from ghostcrm.audit.models import AuditArchive, AuditEvent
from ghostcrm.audit.sealing import audit_seal
from ghostcrm.audit.selectors import audit_chain_verify
from ghostcrm.audit.services import audit_record
from ghostcrm.organizations.models import Organization
from operations.models import RetentionRun
from operations.services import retention
from operations.storage import backups_storage
from tenants.engine.models import TemplateApplication
from tenants.models import IdempotencyRecord, Operation

NOW = timezone.now()
DB = pytest.mark.django_db(databases=["default", "tenants"])


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def make_rows() -> Organization:
    org = Organization.objects.create(name="Old Co", slug="old-co", schema_name="old_co", admin_email="a@old.test")
    for age in (400, 200, 10):  # operations_days = 180: two archived
        Operation.objects.create(organization=org, step="schema", started_at=days_ago(age), message=f"{age} days")
    for key, age in (("old", 2), ("new", 0.5)):  # 24 h
        record = IdempotencyRecord.objects.create(key=key, fingerprint="f", organization=org)
        IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=days_ago(age))
    for number, (status, age) in enumerate((("processed", 40), ("ignored", 40), ("failed", 40), ("processed", 5))):
        event = WebhookEvent.objects.create(
            event_id=f"evt_{number}", type="invoice.paid", created=0, payload="{}", status=status
        )
        WebhookEvent.objects.filter(pk=event.pk).update(received_at=days_ago(age))
    noon = days_ago(40).replace(hour=12, minute=0, second=0, microsecond=0)
    for hours in (0, 3, 6, 30):  # 40 days ago: 4 readings over 2 days (UTC) -> the last of each day kept
        UsageReading.objects.create(
            organization=org, taken_at=noon - dt.timedelta(hours=hours), seats=1, contacts=hours
        )
    UsageReading.objects.create(organization=org, taken_at=days_ago(1), seats=1, contacts=0)
    UsageReading.objects.create(organization=org, taken_at=days_ago(1) - dt.timedelta(hours=1), seats=1, contacts=0)
    ledger = TemplateApplication.objects.using("tenants")
    common = {"description": "x", "filename": "001_x.pgsql", "checksum": "c", "applied_by": "t"}
    ledger.create(schema_name="old_co", version=1, success=False, applied_at=days_ago(100), **common)  # old
    ledger.create(schema_name="old_co", version=2, success=False, applied_at=days_ago(1), **common)  # superseded
    ledger.create(schema_name="old_co", version=2, success=True, applied_at=days_ago(1), **common)
    ledger.create(schema_name="old_co", version=3, success=False, applied_at=days_ago(1), **common)  # kept
    return org


EXPECTED = {
    "ledger_failures": 2,
    "operations": 2,
    "idempotency_records": 1,
    "webhook_events": 2,
    "usage_readings": 2,
    "rq_results": 0,
    "audit": 0,
}


@DB
def test_dry_run_counts_what_the_real_run_removes(redis_conn: Any) -> None:
    make_rows()
    dry = retention.retention_run(dry_run=True, now=NOW).run
    assert dry.counts == EXPECTED
    assert Operation.objects.count() == 3
    assert UsageReading.objects.count() == 6

    real = retention.retention_run(dry_run=False, now=NOW).run
    assert real.counts == dry.counts
    assert list(Operation.objects.values_list("message", flat=True)) == ["10 days"]
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    assert sorted(WebhookEvent.objects.values_list("event_id", flat=True)) == ["evt_2", "evt_3"]
    old_days = UsageReading.objects.filter(taken_at__lt=days_ago(30))
    assert sorted(old_days.values_list("contacts", flat=True)) == [0, 30]  # the last of each day
    assert UsageReading.objects.filter(taken_at__gte=days_ago(30)).count() == 2  # recent ones untouched
    remaining = TemplateApplication.objects.using("tenants").filter(schema_name="old_co", success=False)
    assert list(remaining.values_list("version", flat=True)) == [3]
    # A second run finds nothing: the dry run had named exactly what went.
    assert set(retention.retention_run(dry_run=True, now=NOW).run.counts.values()) == {0}
    events = AuditEvent.objects.filter(action__in=["retention.run", "retention.dry_run"])
    assert events.count() == 3
    assert events.filter(action="retention.run").get().after["counts"] == EXPECTED


@DB
def test_operations_archive_is_gzip_json_lines_with_a_matching_checksum(redis_conn: Any) -> None:
    make_rows()
    run = retention.retention_run(dry_run=False, now=NOW).run
    [archive] = run.archives
    storage = backups_storage()
    data = storage.open(archive["file"], "rb").read()
    assert hashlib.sha256(data).hexdigest() == archive["sha256"]
    assert storage.open(archive["file"] + ".sha256", "rb").read().decode().split()[0] == archive["sha256"]
    rows = [json.loads(line) for line in gzip.decompress(data).decode().splitlines()]
    assert [r["message"] for r in rows] == ["400 days", "200 days"]


@DB
def test_retention_command_json_and_policy(redis_conn: Any, capsys: Any) -> None:
    make_rows()
    call_command("retention", "run", "--dry-run", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] is True
    assert report["counts"] == EXPECTED
    call_command("retention", "run")
    out = capsys.readouterr().out
    assert "operations: removed 2" in out
    assert "removed 9 row(s) in all" in out
    call_command("retention", "policy")
    assert "usage_readings" in capsys.readouterr().out
    assert RetentionRun.objects.count() == 2


@DB
def test_audit_events_are_archived_behind_a_checkpoint_not_dropped(redis_conn: Any) -> None:
    for n in range(4):  # retention.audit_days = 365
        event = audit_record(action="tests.old", message=f"old {n}")
        with connection.cursor() as cursor:  # the ORM refuses to change an event: dated back in SQL, before sealing
            cursor.execute("UPDATE audit_auditevent SET occurred_at = %s WHERE id = %s", [days_ago(400), event.pk])
    audit_record(action="tests.new", message="recent")
    audit_seal()

    dry = retention.retention_run(dry_run=True, now=NOW).run
    assert dry.counts["audit"] == 4
    assert AuditEvent.objects.filter(action="tests.old").count() == 4

    real = retention.retention_run(dry_run=False, now=NOW).run
    assert real.counts["audit"] == 4
    assert not AuditEvent.objects.filter(action="tests.old").exists()
    [archive] = [a for a in real.archives if a["rule"] == "audit"]
    checkpoint = AuditArchive.objects.get()
    assert (archive["file"], archive["sha256"]) == (checkpoint.file_name, checkpoint.file_sha256)
    assert backups_storage().exists(checkpoint.file_name)
    audit_seal()
    report = audit_chain_verify()
    assert report.ok, report.reason
    assert report.first_sequence == 5  # the live log starts after the archived events
