"""The admin's "key created" page is post/redirect/get: a reload shows nothing secret and creates no second key."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from tenants.keys import KEY_RE
from tenants.models import ServiceKey
from tenants.service_key_pages import SESSION_KEY

pytestmark = pytest.mark.django_db


def test_reloading_the_key_created_page_creates_no_second_key_and_shows_the_secret_once(admin_session: Any) -> None:
    add = reverse("admin:tenants_servicekey_add")
    response = admin_session.post(add, {"name": "signup-site", "scopes": ["organizations:read"]})
    assert response.status_code == 302
    key = ServiceKey.objects.get()
    page = reverse("admin:tenants_servicekey_created", args=[key.pk])
    assert response["Location"] == page
    first = admin_session.get(page)
    raw = first.context["raw_key"]
    assert KEY_RE.match(raw)
    assert raw in first.content.decode()
    assert "no-store" in first["Cache-Control"]
    assert SESSION_KEY not in admin_session.session  # taken from the session when shown
    reload = admin_session.get(page)
    assert reload.status_code == 200
    assert raw not in reload.content.decode()
    assert "already shown once" in reload.content.decode()
    assert ServiceKey.objects.count() == 1


def test_the_page_of_another_key_shows_no_secret(admin_session: Any) -> None:
    add = reverse("admin:tenants_servicekey_add")
    admin_session.post(add, {"name": "one", "scopes": ["organizations:read"]})
    admin_session.post(add, {"name": "two", "scopes": ["organizations:read"]})
    one, two = ServiceKey.objects.order_by("pk")
    page = admin_session.get(reverse("admin:tenants_servicekey_created", args=[one.pk]))
    assert page.context["raw_key"] is None  # the session holds the second key's secret, for the second page only
    assert KEY_RE.match(
        admin_session.get(reverse("admin:tenants_servicekey_created", args=[two.pk])).context["raw_key"]
    )
    assert admin_session.get("/admin/tenants/servicekey/999999/created/").status_code == 404
