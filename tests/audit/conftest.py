from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings


@pytest.fixture(autouse=True)
def backups_dir(tmp_path: Path) -> Iterator[Path]:
    """The backups storage (checkpoints, archives) in a folder of the test's own."""
    folder = tmp_path / "backups"
    storages = {**settings.STORAGES, "backups": {**settings.STORAGES["backups"], "OPTIONS": {"location": str(folder)}}}
    with override_settings(STORAGES=storages):
        yield folder
