"""The base class of every admin in the project: each add, change, delete and action goes to the audit log."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import model_format_dict
from django.db import models
from django.http import HttpRequest
from django.utils.html import format_html

from ghostcrm.audit.services import audit_record, model_snapshot

# How many selected ids an `admin.action` event lists ("select all" can select a whole table).
ACTION_IDS_RECORDED = 1000


class AuditedModelAdmin(admin.ModelAdmin):
    """Add, change and delete are recorded as ``admin.add`` / ``admin.change`` / ``admin.delete`` with
    before/after snapshots. Every admin action that runs to completion (returns ``None``, Django's "done,
    back to the list") is recorded as ``admin.action``: who ran which action on which rows. The services an
    action calls record what they changed; this event ties it to the admin user, also where a service records
    itself as the system (a webhook replay). A confirmation or form page an action shows first is not recorded.

    An admin whose ``save_model`` / ``delete_model`` call an audited service sets ``service_audited = True``:
    the service's event (with the admin user as actor) is then the one event per add, change or delete.
    """

    service_audited = False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # The admin site's actions (delete_selected) as well as this admin's own.
        audited: dict[str, Any] = {}
        for name, entry in super().get_actions(request).items():
            if entry is not None:
                func, _, description = entry
                label = str(description) % model_format_dict(self.opts)
                audited[name] = (_audited_action(func, name, label), name, description)
        return audited

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            # The state before the admin's change, for the audit event's `before`.
            before = getattr(request, "_audit_before", {})
            before.setdefault((type(obj), obj.pk), model_snapshot(obj))
            request._audit_before = before  # type: ignore[attr-defined]
        return obj

    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        if self.service_audited:
            return entry
        audit_record(action="admin.add", target=obj, after=model_snapshot(obj), request=request)
        return entry

    def log_change(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        if self.service_audited:
            return entry
        before = getattr(request, "_audit_before", {}).get((type(obj), obj.pk))
        audit_record(action="admin.change", target=obj, before=before, after=model_snapshot(obj), request=request)
        return entry

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Inline rows added, changed or deleted on the parent's page: one event each, like a page of their own."""
        model = formset.model
        pks = [f.instance.pk for f in formset.initial_forms if f.instance.pk is not None]
        # Read from the database: the form has already written the submitted values onto the instances.
        before = {obj.pk: model_snapshot(obj) for obj in model._default_manager.filter(pk__in=pks)} if pks else {}
        deleted_pks = {id(f.instance): f.instance.pk for f in formset.deleted_forms}
        super().save_formset(request, form, formset, change)
        for obj in formset.new_objects:
            audit_record(action="admin.add", target=obj, after=model_snapshot(obj), request=request)
        for obj, _fields in formset.changed_objects:
            after = model_snapshot(obj)
            if after != before.get(obj.pk):  # a form can differ from its initial text yet store the same value
                audit_record(action="admin.change", target=obj, before=before.get(obj.pk), after=after, request=request)
        for obj in formset.deleted_objects:
            pk = deleted_pks.get(id(obj), obj.pk)  # deleting cleared the instance's pk
            audit_record(
                action="admin.delete",
                target=obj,
                target_id=str(pk),
                before=before.get(pk),
                request=request,
            )

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        objects = list(queryset)
        result = super().log_deletions(request, objects)  # type: ignore[arg-type]
        for obj in objects if not self.service_audited else ():
            audit_record(action="admin.delete", target=obj, before=model_snapshot(obj), request=request)
        return result


def truncated(text: str, limit: int) -> str:
    """A list column's text cut to ``limit`` characters, the whole text as its tooltip (narrow screens)."""
    if len(text) <= limit:
        return text
    return format_html('<span class="gc-truncated" title="{}">{}…</span>', text, text[:limit].rstrip())


def adopt_saved(obj: models.Model, saved: models.Model) -> None:
    """Make the admin's instance the row a service saved (its id, normalised values), for the admin's redirect."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding, obj._state.db = False, saved._state.db


def _audited_action(func: Callable[..., Any], name: str, description: str) -> Callable[..., Any]:
    @functools.wraps(func)  # keeps `allowed_permissions` and the description Django reads from the function
    def audited(model_admin: admin.ModelAdmin, request: HttpRequest, queryset: Any) -> Any:
        # Read before the action runs: a bulk delete leaves nothing to list afterwards.
        count = queryset.count()
        selected = [str(pk) for pk in queryset.values_list("pk", flat=True)[:ACTION_IDS_RECORDED]]
        response = func(model_admin, request, queryset)
        if response is None:
            opts = queryset.model._meta
            audit_record(
                action="admin.action",
                target_type=opts.label_lower,
                target_id=selected[0] if count == 1 else "",
                message=f"{description} ({count} {opts.verbose_name if count == 1 else opts.verbose_name_plural})",
                after={"action": name, "count": count, "ids": selected},
                request=request,
            )
        return response

    return audited


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
