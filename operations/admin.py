"""Admin: backups (with a confirmed restore action) and restore drills, read-only records."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import ApplicationError
from operations.models import Backup, DrillRun, RetentionRun
from operations.services import restore


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RestoreForm(forms.Form):
    as_slug = forms.SlugField(
        required=False, label="Restore as (new slug)", help_text="Empty: restore over the deleted client (undelete)."
    )
    suspended = forms.BooleanField(required=False, label="Undelete as suspended")


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdmin):
    list_display = (
        "id", "kind", "organization_slug", "server", "outcome", "size_bytes", "key_id", "started_at", "duration_ms",
        "pruned_at",
    )  # fmt: skip
    list_filter = ("kind", "outcome", "server", "engine")
    search_fields = ("organization_slug", "storage_name", "sha256")
    date_hierarchy = "started_at"
    actions = ["restore_action"]

    @admin.action(description="Restore the selected backup…", permissions=["view"])
    def restore_action(self, request: HttpRequest, queryset: QuerySet[Backup]) -> HttpResponse | None:
        if not request.user.is_superuser:
            self.message_user(request, "Only a super admin restores backups.", messages.ERROR)
            return None
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one backup to restore.", messages.ERROR)
            return None
        backup = queryset.get()
        form = RestoreForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            try:
                result = restore.organization_restore(
                    slug=backup.organization_slug,
                    backup_id=backup.pk,
                    as_slug=form.cleaned_data["as_slug"],
                    suspended=form.cleaned_data["suspended"],
                    actor=Actor.for_user(request.user),
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return None
            how = "undeleted" if result.undeleted else "restored as a new client"
            self.message_user(request, f"{result.organization.slug} {how} from backup #{backup.pk}.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Restore backup #{backup.pk} of {backup.organization_slug}",
            "backup": backup,
            "form": form,
            "opts": self.model._meta,
            "action_name": "restore_action",
        }
        return TemplateResponse(request, "admin/operations/backup/restore_confirm.html", context)


@admin.register(DrillRun)
class DrillRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "outcome", "sample", "checked", "failed", "started_at", "duration_ms")
    list_filter = ("outcome",)


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "dry_run", "outcome", "counts", "started_at", "finished_at")
    list_filter = ("dry_run", "outcome")
