"""The base class of every admin in the project: each add, change and delete goes to the audit log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from ghostcrm.audit.services import audit_record
from ghostcrm.core.snapshots import snapshot


class AuditedModelAdmin(admin.ModelAdmin):
    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            # The state before the admin's change, for the audit event's `before`.
            before = getattr(request, "_audit_before", {})
            before.setdefault((type(obj), obj.pk), snapshot(obj))
            request._audit_before = before  # type: ignore[attr-defined]
        return obj

    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        audit_record(action="admin.add", target=obj, after=snapshot(obj), request=request)
        return entry

    def log_change(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        before = getattr(request, "_audit_before", {}).get((type(obj), obj.pk))
        audit_record(action="admin.change", target=obj, before=before, after=snapshot(obj), request=request)
        return entry

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        objects = list(queryset)
        result = super().log_deletions(request, objects)  # type: ignore[arg-type]
        for obj in objects:
            audit_record(action="admin.delete", target=obj, before=snapshot(obj), request=request)
        return result


class ReadOnlyAdminMixin:
    """For history that must not change: viewable, never added, edited or deleted through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def audit_registered_admins(site: admin.AdminSite) -> list[str]:
    """Re-register every ModelAdmin that is not an AuditedModelAdmin (third-party ones) as an audited subclass.

    Runs once all admin modules are loaded, so axes', django-otp's and django-rq's admins record their
    add/change/delete like ours. Returns the labels of the models it re-registered.
    """
    wrapped = []
    for model, model_admin in list(site._registry.items()):
        admin_class = type(model_admin)
        if isinstance(model_admin, AuditedModelAdmin):
            continue
        audited = type(f"Audited{admin_class.__name__}", (AuditedModelAdmin, admin_class), {})
        site.unregister(model)
        site.register(model, audited)
        wrapped.append(model._meta.label)
    return wrapped
