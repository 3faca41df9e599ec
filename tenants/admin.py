from __future__ import annotations

from django.contrib import admin

from ghostcrm.core.admin_base import AuditedModelAdmin
from tenants.models import Organization


@admin.register(Organization)
class OrganizationAdmin(AuditedModelAdmin):
    list_display = ("name", "slug", "status", "plan_code", "admin_email", "created_at")
    list_filter = ("status", "plan_code")
    search_fields = ("name", "slug", "admin_email", "=id")
    readonly_fields = (
        "id",
        "schema_name",
        "status",
        "last_error",
        "created_at",
        "updated_at",
        "status_changed_at",
        "activated_at",
    )
