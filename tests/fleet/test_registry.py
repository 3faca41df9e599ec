"""The server registry through its command and services, against real PostgreSQL servers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from tenants.fleet import selectors, services
from tenants.fleet.connection import (
    ServerCheckFailed,
    ServerUnreachable,
    check_version,
    parse_server_url,
    server_probe,
)
from tenants.fleet.models import PRIMARY_SERVER_NAME, TenantServer
from tenants.fleet.receivers import register_primary_server
from tests.fleet.conftest import CLOSED_PORT, PASSWORD, server_url
from tests.integrations.conftest import make_organization

pytestmark = pytest.mark.django_db


def _raw_row(name: str) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT url, password FROM fleet_tenantserver WHERE name = %s", [name])
        row = cursor.fetchone()
    assert row is not None
    return row[0], row[1]


def test_add_registers_a_real_server_with_its_password_encrypted(
    good_url: str, probe_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("tenant_servers", "add", "second", "--url", good_url, "--capacity", "5", "--notes", "rack 2")

    server = TenantServer.objects.get(name="second")
    assert (server.capacity, server.notes, server.state) == (5, "rack 2", "open")
    assert server.password == PASSWORD  # decrypted through the field
    url, raw_password = _raw_row("second")
    assert PASSWORD not in url
    assert PASSWORD not in raw_password
    assert url.endswith(f"/{probe_database}")
    assert "@" in url
    out, err = capsys.readouterr()
    assert "Server second registered" in out
    assert PASSWORD not in out
    wal_level = server_probe(parse_server_url(server.url, password=server.password)).wal_level
    assert ("wal_level" in err) == (wal_level != "logical")
    event = AuditEvent.objects.get(action="fleet.server.add", target_id=str(server.pk))
    assert event.after is not None
    assert PASSWORD not in json.dumps(event.after)


def test_add_refuses_an_unreachable_server_and_saves_nothing(closed_url: str) -> None:
    with pytest.raises(CommandError) as error:
        call_command("tenant_servers", "add", "down", "--url", closed_url)
    assert error.value.returncode == 1
    assert f"127.0.0.1:{CLOSED_PORT}" in str(error.value)
    assert "does not answer" in str(error.value)
    assert PASSWORD not in str(error.value)
    assert not TenantServer.objects.filter(name="down").exists()


def test_add_refuses_a_login_that_may_not_create_roles(weak_login: Callable[..., str]) -> None:
    url = weak_login()
    with pytest.raises(CommandError, match="may not create roles") as error:
        call_command("tenant_servers", "add", "weak", "--url", url)
    assert error.value.returncode == 1
    assert not TenantServer.objects.exists()


def test_add_refuses_a_login_that_may_not_create_schemas(weak_login: Callable[..., str]) -> None:
    url = weak_login(createrole=True)  # CREATE on a database is not granted to PUBLIC
    with pytest.raises(CommandError, match="may not create schemas in database"):
        call_command("tenant_servers", "add", "weak", "--url", url)
    assert not TenantServer.objects.exists()


def test_the_version_check_refuses_postgresql_13_and_accepts_14() -> None:
    with pytest.raises(ServerCheckFailed, match="runs PostgreSQL 13; tenant servers need PostgreSQL 14"):
        check_version(130012, where="db9:5432")
    check_version(140000, where="db9:5432")
    check_version(170002, where="db9:5432")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad_Name", "--url", "postgres://u@h:5432/d"], "lowercase letters, digits and hyphens"),
        (["ok", "--url", "mysql://u@h/d"], "starts with postgres://"),
        (["ok", "--url", "postgres://h:5432/d"], "names a login, a host and a database"),
        (["ok", "--url", "postgres://u@h:99999/d"], "invalid port"),
    ],
)
def test_add_refuses_bad_input_with_exit_status_2(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message) as error:
        call_command("tenant_servers", "add", *args)
    assert error.value.returncode == 2
    assert not TenantServer.objects.exists()


def test_add_refuses_a_name_in_use(good_url: str, register: Callable[..., TenantServer]) -> None:
    register("second", good_url)
    with pytest.raises(CommandError, match="registered already") as error:
        call_command("tenant_servers", "add", "second", "--url", good_url)
    assert error.value.returncode == 2


def test_list_reports_the_unreachable_server_and_carries_on(
    good_url: str, closed_url: str, register: Callable[..., TenantServer], capsys: pytest.CaptureFixture[str]
) -> None:
    register(PRIMARY_SERVER_NAME, good_url)
    register("down", closed_url, capacity=7, state=TenantServer.State.CLOSED)
    make_organization()
    make_organization()

    with pytest.raises(SystemExit) as exit_info:
        call_command("tenant_servers", "list", "--json")
    assert exit_info.value.code == 1
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    up, down = rows[PRIMARY_SERVER_NAME], rows["down"]
    assert up["reachable"] is True
    assert up["clients"] == 2
    assert up["version_num"] >= 140000
    assert up["size_bytes"] > 0
    assert 1 <= up["connections_in_use"] <= up["max_connections"]
    assert down["reachable"] is False
    assert f"127.0.0.1:{CLOSED_PORT}" in down["error"]
    assert (down["clients"], down["capacity"], down["state"], down["size_bytes"]) == (0, 7, "closed", None)
    assert PASSWORD not in json.dumps(rows)

    with pytest.raises(SystemExit):
        call_command("tenant_servers", "list")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("down")
    assert "UNREACHABLE" in lines[0]
    assert lines[1].startswith(PRIMARY_SERVER_NAME)
    assert "clients 2/1000" in lines[1]
    assert "connections" in lines[1]


def test_list_exits_0_when_every_server_answers(
    good_url: str, register: Callable[..., TenantServer], capsys: pytest.CaptureFixture[str]
) -> None:
    register("second", good_url)
    call_command("tenant_servers", "list")
    assert "second" in capsys.readouterr().out


def test_state_changes_are_audited_and_idempotent(
    good_url: str, register: Callable[..., TenantServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = register("second", good_url)
    call_command("tenant_servers", "drain", "second", "--reason", "hardware swap")
    call_command("tenant_servers", "drain", "second")
    call_command("tenant_servers", "close", "second")
    call_command("tenant_servers", "open", "second")

    out = capsys.readouterr().out
    assert "Server second is now draining." in out
    assert "Server second was already draining." in out
    events = AuditEvent.objects.filter(target_id=str(server.pk)).order_by("sequence")
    assert [(e.action, e.before, e.after) for e in events] == [
        ("fleet.server.drain", {"state": "open"}, {"state": "draining"}),
        ("fleet.server.close", {"state": "draining"}, {"state": "closed"}),
        ("fleet.server.open", {"state": "closed"}, {"state": "open"}),
    ]
    assert events[0].message == "hardware swap"
    assert events[0].actor_label.startswith("cli:tenant_servers drain")
    server.refresh_from_db()
    assert server.state == "open"
    assert server.state_changed_at is not None


def test_a_state_change_of_an_unknown_server_is_bad_input() -> None:
    with pytest.raises(CommandError, match="No tenant database server is named nope") as error:
        call_command("tenant_servers", "close", "nope")
    assert error.value.returncode == 2


def test_a_changed_url_is_checked_before_it_is_saved(
    good_url: str, closed_url: str, register: Callable[..., TenantServer], actor: Actor
) -> None:
    server = register("second", good_url)
    with pytest.raises(ServerUnreachable):
        services.server_change(server_id=server.pk, url=closed_url, capacity=3, notes="", actor=actor)
    server.refresh_from_db()
    assert server.url == parse_server_url(good_url).url
    assert server.capacity != 3

    services.server_change(server_id=server.pk, url=server.url, capacity=3, notes="n", actor=actor)
    server.refresh_from_db()
    assert (server.capacity, server.notes, server.password) == (3, "n", PASSWORD)


@pytest.mark.django_db(databases=["default", "tenants"])
def test_migrate_registers_the_primary_server_idempotently(settings: Any) -> None:
    call_command("migrate", verbosity=0, interactive=False)
    primary = TenantServer.objects.get(name=PRIMARY_SERVER_NAME)
    assert primary.url == parse_server_url(settings.TENANT_DATABASE_URL).url
    assert AuditEvent.objects.filter(action="fleet.server.add", target_id=str(primary.pk)).count() == 1

    call_command("migrate", verbosity=0, interactive=False)
    assert TenantServer.objects.count() == 1
    assert AuditEvent.objects.filter(target_id=str(primary.pk)).count() == 1

    moved = "postgres://ghost:pw-Flt-9@db-new.example:6432/ghostcrm_tenants"
    with override_settings(TENANT_DATABASE_URL=moved):  # migrate's receiver, without migrating a fake server
        sentence = register_primary_server(aliases=["default", "tenants"])
    assert sentence.startswith("Tenant database server primary registered")
    primary.refresh_from_db()
    assert primary.url == "postgres://ghost@db-new.example:6432/ghostcrm_tenants"
    assert primary.password == "pw-Flt-9"
    assert AuditEvent.objects.filter(action="fleet.server.change", target_id=str(primary.pk)).count() == 1


@pytest.mark.django_db(databases=["default", "tenants"])
def test_migrate_of_one_database_registers_nothing() -> None:
    call_command("migrate", database="default", verbosity=0, interactive=False)
    assert not TenantServer.objects.exists()


def test_statuses_of_no_servers_is_empty() -> None:
    assert selectors.server_statuses() == []


def test_a_stored_url_that_no_longer_parses_is_reported_not_raised() -> None:
    TenantServer.objects.create(name="broken", url="mysql://x@y/z")
    [status] = selectors.server_statuses()
    assert status.reachable is False
    assert "postgres://" in status.error


def test_url_password_is_taken_apart(probe_database: str) -> None:
    address = parse_server_url(server_url(probe_database, password="p%40ss"))
    assert address.password == "p@ss"
    assert "p%40ss" not in address.url
    assert address.port > 0
