"""Fixtures for the template engine: scratch schemas, template directories, a helper connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.engine.support import copy_fixture, new_schema_name
from tests.support import tenant_conninfo


@pytest.fixture
def pg() -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the tenant test database, for assertions on real state."""
    conn = psycopg.connect(**tenant_conninfo())
    yield conn
    conn.close()


@pytest.fixture
def schema_name() -> str:
    return new_schema_name()


@pytest.fixture
def basic_dir(tmp_path: Path) -> Path:
    return copy_fixture("basic", tmp_path)
