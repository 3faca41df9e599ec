"""Shared fixtures. Tests run against real PostgreSQL and Redis (see the README's `make test`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connections
from psycopg import sql

from tests.pgservers import extra_pg_servers  # noqa: F401 - a session fixture, shared by every test folder
from tests.support import tenant_conninfo

SYSTEM_SCHEMAS = ("public", "information_schema")


def drop_test_tenant_objects(dbname: str, *, schemas: bool = True) -> None:
    """Drop every client schema in the test database ``dbname`` and every role carrying this run's prefix."""
    if schemas:
        assert dbname.startswith("test_"), f"refusing to drop schemas in {dbname!r}: not a test database"
    try:
        conn = psycopg.connect(**tenant_conninfo(dbname=dbname))
    except psycopg.OperationalError:
        conn = None
    if conn is not None:
        with conn:
            found = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE left(nspname, 3) <> 'pg_' AND nspname <> ALL(%s)",
                [list(SYSTEM_SCHEMAS)],
            ).fetchall()
            for (schema,) in found if schemas else []:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            roles = conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [settings.TENANT_ROLE_PREFIX + "\\_%"]
            ).fetchall()
            for (role,) in roles:
                conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker is None:
            continue
        databases = marker.kwargs.get("databases") or ()
        if databases == "__all__" or settings.TENANT_DB_ALIAS in databases:
            item.add_marker(pytest.mark.tenant_db)


@pytest.fixture(autouse=True)
def _clean_tenant_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Transactional tests that touch the tenant database leave no schema or role behind."""
    yield
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction") or request.node.get_closest_marker("tenant_db") is None:
        return
    connections[settings.TENANT_DB_ALIAS].close()
    drop_test_tenant_objects(connections[settings.TENANT_DB_ALIAS].settings_dict["NAME"])


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    name = connections[settings.TENANT_DB_ALIAS].settings_dict["NAME"]
    if name.startswith("test_"):  # only when this session set up the tenant test database
        with django_db_blocker.unblock():
            drop_test_tenant_objects(name)
    yield


@pytest.fixture
def redis_conn() -> Iterator[Any]:
    """The Redis database the tests use, emptied before and after."""
    import django_rq

    conn = django_rq.get_connection("default")
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def super_admin(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser(
        email="root@ghostcrm.test", password="correct horse battery staple", first_name="Ada", last_name="Admin"
    )


def login_with_verified_otp(client: Any, user: Any) -> Any:
    """Log ``client`` in as ``user`` with a confirmed TOTP device verified in the session.

    The admin requires a verified second factor (django-otp); tests that need an admin session for another
    user call this instead of ``client.force_login``.
    """
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="test authenticator", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    # As after a real sign-in, the password was just typed: pages that change e-mail, password or MFA open
    # without asking for it again (they do after ACCOUNTS_REAUTH_MAX_AGE).
    session["_gc_reauth_at"] = time.time()
    session.save()
    return client


@pytest.fixture
def admin_session(client: Any, super_admin: Any) -> Any:
    """A test client logged in as a super admin with a verified second factor (MFA is enforced)."""
    return login_with_verified_otp(client, super_admin)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Roles outlive the dropped test databases; remove this run's once the databases are gone."""
    if not settings.configured or "tenants" not in settings.DATABASES:
        return
    drop_test_tenant_objects("postgres", schemas=False)
