"""Helpers shared by the engine's test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import io
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from tenants.models import Tenant

FIXTURES = Path(__file__).parent / "fixtures"


def new_schema_name() -> str:
    return f"eng_{uuid.uuid4().hex[:10]}"


def copy_fixture(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


def write_templates(directory: Path, files: dict[str, str]) -> Path:
    """A template folder holding ``files`` (name -> text)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


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
    return Tenant.objects.using(settings.TENANT_DB_ALIAS).create(schema_name=schema, organization_id=uuid.uuid4())
