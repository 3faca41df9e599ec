"""The S3 backend against moto's S3 server on a local port; main-database backups; GFS pruning."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.db import connections
from django.utils import timezone
from moto.server import ThreadedMotoServer

from ghostcrm.core.services import system_setting_set
from ghostcrm.organizations.models import Organization
from operations.models import Backup, Outcome
from operations.services import backups, bundle, pg, restore
from operations.storage import backups_storage
from tests.operations.conftest import ACTOR, TENANT_DB

S3_PORT = 8173
ENDPOINT = f"http://127.0.0.1:{S3_PORT}"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture
def s3_bucket(settings: Any) -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
    server.start()
    try:
        client = boto3.client("s3", endpoint_url=ENDPOINT, **CREDENTIALS)
        client.create_bucket(Bucket="ghostcrm-test-backups")
        settings.STORAGES = {
            **settings.STORAGES,
            "backups": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": "ghostcrm-test-backups",
                    "location": "ops",
                    "endpoint_url": ENDPOINT,
                    "region_name": "us-east-1",
                    "access_key": "testing",
                    "secret_key": "testing",
                    "default_acl": None,
                    "file_overwrite": False,
                },
            },
        }
        yield client
    finally:
        server.stop()


@TENANT_DB
def test_backups_go_to_an_s3_bucket_restore_from_it_and_are_pruned_there(
    s3_bucket: Any, provision: Callable[..., Organization]
) -> None:
    acme = provision()
    backup = backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    assert backup.outcome == Outcome.SUCCESS, backup.error
    [stored] = s3_bucket.list_objects_v2(Bucket="ghostcrm-test-backups")["Contents"]
    assert stored["Key"] == f"ops/{backup.storage_name}"
    assert stored["Size"] == backup.size_bytes
    assert s3_bucket.get_object(Bucket="ghostcrm-test-backups", Key=stored["Key"])["Body"].read(5) == b"GCBK1"

    copy = restore.organization_restore(slug=acme.slug, as_slug="acme-from-s3", actor=ACTOR)
    assert copy.organization.status == Organization.Status.ACTIVE

    Backup.objects.filter(pk=backup.pk).update(started_at=timezone.now() - dt.timedelta(days=400))
    newer = backups.tenant_backup(organization_id=acme.pk, actor=ACTOR)
    system_setting_set(key="backups.keep_monthly", value="0", actor=ACTOR)
    result = backups.backups_prune(actor=ACTOR)
    assert result["pruned"] == [backup.pk]
    keys = [o["Key"] for o in s3_bucket.list_objects_v2(Bucket="ghostcrm-test-backups")["Contents"]]
    assert keys == [f"ops/{newer.storage_name}"]


def stamp(days: float) -> dt.datetime:
    return dt.datetime(2026, 6, 30, 3, 0, tzinfo=dt.UTC) - dt.timedelta(days=days)


def test_gfs_keeps_the_newest_per_day_week_and_month() -> None:
    now = stamp(0) + dt.timedelta(hours=1)  # Tuesday 30 June 2026
    stamps = [stamp(d / 2) for d in range(0, 240)]  # two backups a day for 120 days, newest first
    kept = sorted(backups.gfs_keep(stamps, now=now, daily=7, weekly=4, monthly=3))
    dates = [stamps[i].date() for i in kept]
    assert len(dates) == len(set(dates))  # never two of one day, always the later one of a day
    assert all(stamps[i - 1].date() != stamps[i].date() for i in kept if i)  # the newest of its day
    assert dates[:7] == [stamp(d).date() for d in range(7)]  # 24-30 June
    # Weeks: this one (29-30 June, kept as days), then the newest of the 3 weeks before (Sundays 28, 21, 14 June);
    # months: June (kept), the newest of May and of April.
    assert dates[7:] == [dt.date(2026, 6, 21), dt.date(2026, 6, 14), dt.date(2026, 5, 31), dt.date(2026, 4, 30)]
    assert backups.gfs_keep(stamps, now=now, daily=0, weekly=0, monthly=0) == {0}  # the newest always
    assert backups.gfs_keep([], now=now, daily=7, weekly=4, monthly=3) == set()


@pytest.mark.django_db(transaction=True)  # as the job and the command run it: outside a transaction
def test_main_database_backup_is_encrypted_and_restorable(tmp_path: Path) -> None:
    backup = backups.main_backup(actor=ACTOR)
    assert backup.outcome == Outcome.SUCCESS, backup.error
    assert backups_storage().open(backup.storage_name, "rb").read(5) == b"GCBK1"
    with bundle.workdir() as folder:
        manifest, payload = bundle.fetch(name=backup.storage_name, workdir=Path(folder), expected_sha256=backup.sha256)
        assert manifest["engine"] == connections["default"].vendor
        if manifest["engine"] == "sqlite":
            with sqlite3.connect(payload) as copy:
                assert copy.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 10
        else:
            listing = subprocess.run(
                [pg.tool("pg_restore"), "--list", str(payload)], capture_output=True, text=True, check=True
            )
            assert "TABLE public operations_backup" in listing.stdout


def test_sql_server_backup_statement() -> None:
    to_url = backups.mssql_backup_statement(
        database="ghostcrm_main", target="https://acct.blob.core.windows.net/backups/", stamp="20261204T030000Z"
    )
    assert to_url == (
        "BACKUP DATABASE [ghostcrm_main] TO URL = N'https://acct.blob.core.windows.net/backups/"
        "ghostcrm_main-20261204T030000Z.bak' WITH COMPRESSION, CHECKSUM, COPY_ONLY, FORMAT, INIT, STATS = 10"
    )
    to_disk = backups.mssql_backup_statement(database="odd]name", target=r"D:\Backups", stamp="x")
    assert to_disk.startswith(r"BACKUP DATABASE [odd]]name] TO DISK = N'D:\Backups\odd]name-x.bak'")
