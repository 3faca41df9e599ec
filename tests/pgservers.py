"""The extra PostgreSQL servers of a test session (``scripts/pgservers.py``), as a pytest fixture.

``extra_pg_servers`` starts them on first use (ports from ``GHOSTCRM_TEST_PG_PORTS``, default ``5441,5442``;
every port after the first gets ``wal_level = logical``) and removes them at the end of the session, or at
interpreter exit when the session dies first. Names carry ``GHOSTCRM_TEST_DB_SUFFIX`` so parallel runs on one
machine never share one.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pgservers.py"


def load() -> ModuleType:
    """The ``scripts/pgservers.py`` module (a script, not a package, so CI can run it before the virtualenv)."""
    name = "ghostcrm_pgservers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def configured_ports() -> list[int]:
    return [int(p) for p in os.environ.get("GHOSTCRM_TEST_PG_PORTS", "5441,5442").split(",") if p.strip()]


def name_prefix() -> str:
    return "gc" + (os.environ.get("GHOSTCRM_TEST_DB_SUFFIX", "").replace("_", "") or "test")


@pytest.fixture(scope="session")
def extra_pg_servers() -> Iterator[list[Any]]:
    """Throwaway PostgreSQL servers (``PgServer``: ``host``, ``port``, ``url(dbname)``, ``halt()``, ``resume()``)."""
    pgservers = load()
    ports = configured_ports()
    servers = pgservers.start_servers(ports, logical=ports[1:], prefix=name_prefix(), remove_at_exit=True)
    try:
        yield servers
    finally:
        pgservers.remove_servers(servers)
