"""Fixtures for the template engine: scratch schemas, template directories, a helper connection."""

from __future__ import annotations

import io
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def pg() -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the tenant test database, for assertions on real state."""
    params = connections[settings.TENANT_DB_ALIAS].settings_dict
    conn = psycopg.connect(
        host=params["HOST"],
        port=params["PORT"] or 5432,
        user=params["USER"] or None,
        password=params["PASSWORD"] or None,
        dbname=params["NAME"],
        autocommit=True,
    )
    yield conn
    conn.close()


def new_schema_name() -> str:
    return f"eng_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def schema_name() -> str:
    return new_schema_name()


def copy_fixture(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


@pytest.fixture
def basic_dir(tmp_path: Path) -> Path:
    return copy_fixture("basic", tmp_path)


@dataclass
class CommandRun:
    code: int
    out: str
    err: str


def tenant_sql(*args: str) -> CommandRun:
    """Run `manage.py tenant_sql ...` in-process; the exit status the shell would see, and the output."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("tenant_sql", *args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code = exc.returncode
        err.write(str(exc))
    return CommandRun(code=code, out=out.getvalue(), err=err.getvalue())


def tables(pg: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = pg.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema]).fetchall()
    return {r[0] for r in rows}


def ledger(pg: psycopg.Connection[Any], schema: str) -> list[dict[str, Any]]:
    cur = pg.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(
        "SELECT * FROM public.tenant_sql_ledger WHERE schema_name = %s ORDER BY version, id", [schema]
    ).fetchall()


def register_tenant(schema: str) -> Any:
    from tenants.models import Tenant

    return Tenant.objects.using(settings.TENANT_DB_ALIAS).create(schema_name=schema, organization_id=uuid.uuid4())
