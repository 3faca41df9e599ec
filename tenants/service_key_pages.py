"""The admin's "service key created" page, as post/redirect/get.

The add form's POST creates the key and redirects here; the full key travels in the session, is shown on the
first GET and removed from the session at once. A reload (or a second tab) finds nothing to show and creates
nothing: the key exists once, and its secret is never displayed again.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from tenants.models import ServiceKey

SESSION_KEY = "_gc_service_key_created"
URL_NAME = "tenants_servicekey_created"


def created_key_redirect(request: HttpRequest, key: ServiceKey, raw_key: str) -> HttpResponseRedirect:
    """After the key was created: keep the full key for one display, and redirect to the page that shows it."""
    request.session[SESSION_KEY] = {"id": key.pk, "raw": raw_key}
    return HttpResponseRedirect(reverse(f"admin:{URL_NAME}", args=[key.pk]))


def _take_raw_key(request: HttpRequest, key: ServiceKey) -> str | None:
    stored = request.session.get(SESSION_KEY)
    if not isinstance(stored, dict) or stored.get("id") != key.pk:
        return None
    del request.session[SESSION_KEY]
    return str(stored.get("raw") or "") or None


def created_key_view(model_admin: admin.ModelAdmin[Any], request: HttpRequest, object_id: int) -> HttpResponse:
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    key = get_object_or_404(ServiceKey, pk=object_id)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Service key created",
        "key": key,
        "raw_key": _take_raw_key(request, key),
        "opts": ServiceKey._meta,
    }
    # admin_view() adds Cache-Control: no-store, so the secret does not come back from a browser cache either.
    return TemplateResponse(request, "tenants/admin/service_key_created.html", context)


def created_key_urls(model_admin: admin.ModelAdmin[Any]) -> list[URLPattern]:
    view = model_admin.admin_site.admin_view(partial(created_key_view, model_admin))
    return [path("<int:object_id>/created/", view, name=URL_NAME)]
