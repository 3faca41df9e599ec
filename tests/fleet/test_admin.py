"""The server registry's admin pages and the dashboard panel, against real PostgreSQL servers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from ghostcrm.audit.models import AuditEvent
from tenants.fleet.connection import parse_server_url, server_probe
from tenants.fleet.models import PRIMARY_SERVER_NAME, TenantServer
from tests.fleet.conftest import CLOSED_PORT, PASSWORD

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:fleet_tenantserver_changelist"


def _form(name: str, url: str, **extra: str) -> dict[str, str]:
    return {"name": name, "url": url, "new_password": "", "capacity": "10", "notes": "", **extra}


def test_list_and_change_pages_render_without_the_password(
    admin_session: Client, good_url: str, register: Callable[..., TenantServer]
) -> None:
    server = register("second", good_url)
    page = admin_session.get(reverse(CHANGELIST)).content.decode()
    assert "second" in page
    assert PASSWORD not in page
    change = admin_session.get(reverse("admin:fleet_tenantserver_change", args=[server.pk]))
    assert change.status_code == 200
    body = change.content.decode()
    assert server.url in body
    assert PASSWORD not in body
    assert 'type="password"' in body


def test_add_through_the_admin_runs_the_checks(admin_session: Client, good_url: str, closed_url: str) -> None:
    refused = admin_session.post(reverse("admin:fleet_tenantserver_add"), _form("down", closed_url))
    assert refused.status_code == 200
    assert f"127.0.0.1:{CLOSED_PORT}" in refused.content.decode()
    assert "does not answer" in refused.content.decode()
    assert not TenantServer.objects.exists()

    added = admin_session.post(reverse("admin:fleet_tenantserver_add"), _form("second", good_url))
    assert added.status_code == 302, added.content.decode()[:2000]
    server = TenantServer.objects.get(name="second")
    assert server.password == PASSWORD
    assert PASSWORD not in server.url
    assert server.capacity == 10
    assert AuditEvent.objects.filter(action="fleet.server.add", target_id=str(server.pk)).exists()


def test_a_blank_password_keeps_the_stored_one(
    admin_session: Client, good_url: str, register: Callable[..., TenantServer]
) -> None:
    server = register("second", good_url)
    response = admin_session.post(
        reverse("admin:fleet_tenantserver_change", args=[server.pk]), _form("second", server.url, notes="moved")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    server.refresh_from_db()
    assert (server.password, server.notes) == (PASSWORD, "moved")


def test_check_now_reports_each_server(
    admin_session: Client, good_url: str, closed_url: str, register: Callable[..., TenantServer]
) -> None:
    up, down = register("second", good_url), register("down", closed_url)
    response = admin_session.post(
        reverse(CHANGELIST), {"action": "check_selected", "_selected_action": [up.pk, down.pk]}
    )
    said = [str(message) for message in get_messages(response.wsgi_request)]
    assert any(m.startswith("second: answers, PostgreSQL") for m in said)
    assert any(m.startswith(f"down: The server at 127.0.0.1:{CLOSED_PORT}") for m in said)


def test_drain_asks_for_confirmation_then_records_the_change(
    admin_session: Client, good_url: str, register: Callable[..., TenantServer]
) -> None:
    server = register("second", good_url)
    ask = admin_session.post(reverse(CHANGELIST), {"action": "drain_selected", "_selected_action": [server.pk]})
    assert ask.status_code == 200
    assert "You are about to <strong>drain</strong>" in ask.content.decode()
    server.refresh_from_db()
    assert server.state == "open"

    admin_session.post(
        reverse(CHANGELIST),
        {"action": "drain_selected", "_selected_action": [server.pk], "confirm": "yes", "reason": "new disks"},
    )
    server.refresh_from_db()
    assert server.state == "draining"
    event = AuditEvent.objects.get(action="fleet.server.drain", target_id=str(server.pk))
    assert event.message == "new disks"
    assert event.actor_label == "root@ghostcrm.test"


def test_the_primary_server_url_is_not_editable(
    admin_session: Client, good_url: str, register: Callable[..., TenantServer]
) -> None:
    primary = register(PRIMARY_SERVER_NAME, good_url)
    body = admin_session.get(reverse("admin:fleet_tenantserver_change", args=[primary.pk])).content.decode()
    assert 'name="url"' not in body
    assert 'name="new_password"' not in body


def test_the_dashboard_shows_a_panel_per_server(
    admin_session: Client, good_url: str, closed_url: str, register: Callable[..., TenantServer]
) -> None:
    version = server_probe(parse_server_url(good_url)).version
    register(PRIMARY_SERVER_NAME, good_url, capacity=50)
    register("down", closed_url)
    page = admin_session.get(reverse("admin:tenants_provisioning_dashboard")).content.decode()
    assert 'id="gc-servers"' in page
    primary_row = page.split('class="gc-server-primary"')[1].split("</tr>")[0]
    assert "0 / 50" in primary_row
    assert "<td>yes</td>" in primary_row
    assert version in primary_row
    down_row = page.split('class="gc-server-down"')[1].split("</tr>")[0]
    assert "no: The server at 127.0.0.1:8199" in down_row
