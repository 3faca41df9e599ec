"""Real servers for the fleet tests: a database of our own on the machine's PostgreSQL, a closed port, and
throwaway logins without the privileges a tenant server's login needs (all named with this run's suffix)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from ghostcrm.audit.services import Actor
from tenants.fleet.connection import parse_server_url
from tenants.fleet.models import TenantServer

CLOSED_PORT = 8199  # in this helper's port range; nothing listens on it
PASSWORD = "fleet-secret-Zq7-password"


def _admin_params() -> dict[str, Any]:
    params = settings.DATABASES[settings.TENANT_DB_ALIAS]
    return {"host": params["HOST"] or "127.0.0.1", "port": int(params["PORT"] or 5432), "user": params["USER"]}


def _suffix() -> str:
    # The run's own suffix keeps these names apart from parallel runs on the same server.
    return os.environ.get("GHOSTCRM_TEST_DB_SUFFIX", "") or "_local"


@pytest.fixture(scope="session")
def probe_database() -> Iterator[str]:
    """A database of this run on the machine's PostgreSQL, for servers that answer."""
    name = f"fleet_probe{_suffix()}"
    with psycopg.connect(**_admin_params(), dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(**_admin_params(), dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def server_url(dbname: str, *, user: str | None = None, password: str = PASSWORD, port: int | None = None) -> str:
    params = _admin_params()
    return f"postgres://{user or params['user']}:{password}@{params['host']}:{port or params['port']}/{dbname}"


@pytest.fixture
def good_url(probe_database: str) -> str:
    return server_url(probe_database)


@pytest.fixture
def closed_url(probe_database: str) -> str:
    return server_url(probe_database, port=CLOSED_PORT)


@pytest.fixture
def weak_login(probe_database: str) -> Iterator[Callable[..., str]]:
    """``make(createrole=False)``: a LOGIN role (no superuser) and its URL; dropped afterwards."""
    made: list[str] = []

    def make(*, createrole: bool = False) -> str:
        role = f"fleet{_suffix()}_weak{len(made)}"
        with psycopg.connect(**_admin_params(), dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            options = sql.SQL("LOGIN CREATEROLE" if createrole else "LOGIN NOCREATEROLE")
            conn.execute(sql.SQL("CREATE ROLE {} ").format(sql.Identifier(role)) + options)
        made.append(role)
        return server_url(probe_database, user=role)

    yield make
    with psycopg.connect(**_admin_params(), dbname="postgres", autocommit=True) as conn:
        for role in made:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def register() -> Callable[..., TenantServer]:
    """A registry row written directly (no checks): for servers that are down by the time they are listed."""

    def make(name: str, url: str, **fields: Any) -> TenantServer:
        address = parse_server_url(url)
        return TenantServer.objects.create(name=name, url=address.url, password=address.password, **fields)

    return make


@pytest.fixture
def actor() -> Actor:
    return Actor.system("tests")
