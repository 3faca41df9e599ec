"""The ``backups`` storage (Django ``STORAGES["backups"]``): a local folder, or an S3-compatible bucket."""

from __future__ import annotations

from django.core.files.storage import Storage, storages


def backups_storage() -> Storage:
    return storages["backups"]
