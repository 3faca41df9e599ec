"""`manage.py migrate` brings both databases up from empty, and `--check` tells when either is behind."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.apps import apps
from django.conf import settings
from django.db import router
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]


def _pg_url(dbname: str) -> str:
    params = settings.DATABASES[settings.TENANT_DB_ALIAS]
    user = params["USER"] or "postgres"
    return f"postgres://{user}@{params['HOST']}:{params['PORT'] or 5432}/{dbname}"


@pytest.fixture
def empty_databases(tmp_path: Path) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    names = [f"ghostcrm_migrate_main_{suffix}", f"ghostcrm_migrate_tenants_{suffix}"]
    params = settings.DATABASES[settings.TENANT_DB_ALIAS]
    admin = {"host": params["HOST"], "port": params["PORT"] or 5432, "user": params["USER"] or None}
    with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield {
            "postgres": _pg_url(names[0]),
            "sqlite": f"sqlite:///{tmp_path / 'main.sqlite3'}",
            "tenants": _pg_url(names[1]),
        }
    finally:
        with psycopg.connect(**admin, dbname="postgres", autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def manage(*args: str, main_url: str, tenants_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ghostcrm.settings",
        "GHOSTCRM_ENV": "development",
        "MAIN_DATABASE_URL": main_url,
        "TENANT_DATABASE_URL": tenants_url,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def tables(url: str) -> set[str]:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    with psycopg.connect(url.replace("postgres://", "postgresql://")) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize("engine", ["postgres", "sqlite"])
def test_migrate_creates_every_table_in_both_databases(empty_databases: dict[str, str], engine: str) -> None:
    main, tenants = empty_databases[engine], empty_databases["tenants"]
    behind = manage("migrate", "--check", main_url=main, tenants_url=tenants)
    assert behind.returncode == 1, behind.stderr
    assert "default" in behind.stderr and "tenants" in behind.stderr

    result = manage("migrate", main_url=main, tenants_url=tenants)
    assert result.returncode == 0, result.stderr

    main_tables, tenant_tables = tables(main), tables(tenants)
    # Every managed model's table, in its own database only (plus Django's migration ledger in each).
    expected = {"default": set(), settings.TENANT_DB_ALIAS: set()}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.managed and not model._meta.proxy:
            expected[router.db_for_write(model)].add(model._meta.db_table)
    assert {"accounts_user", "tenants_organization", "audit_auditevent"} <= expected["default"]
    assert {"tenants_tenant", "tenants_domain"} <= expected[settings.TENANT_DB_ALIAS]
    assert main_tables - {"django_migrations", "sqlite_sequence"} == expected["default"]
    assert tenant_tables - {"django_migrations"} == expected[settings.TENANT_DB_ALIAS]

    current = manage("migrate", "--check", main_url=main, tenants_url=tenants)
    assert current.returncode == 0, current.stderr


def test_check_names_the_database_that_is_behind(empty_databases: dict[str, str]) -> None:
    main, tenants = empty_databases["sqlite"], empty_databases["tenants"]
    assert manage("migrate", "--database", "default", main_url=main, tenants_url=tenants).returncode == 0
    result = manage("migrate", "--check", main_url=main, tenants_url=tenants)
    assert result.returncode == 1
    assert "Unapplied migrations on: tenants." in result.stderr
