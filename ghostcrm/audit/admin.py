from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.admin_base import AuditedModelAdmin, ReadOnlyAdminMixin, truncated

TARGET_CHARS = 48  # the target column fits a 1366 px screen; the whole text is its tooltip and on the event's page


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    list_display = (
        "sequence",
        "occurred_at",
        "action",
        "outcome",
        "actor_label",
        "target",
        "ip_address",
    )
    list_filter = ("outcome", "actor_type", "action", "target_type", "occurred_at")
    search_fields = ("action", "actor_label", "target_repr", "target_id", "request_id", "=organization_id")
    date_hierarchy = "occurred_at"
    list_per_page = 100
    show_full_result_count = False  # counting a large log on every page is slow
    readonly_fields = [f.name for f in AuditEvent._meta.fields if f.name not in {"before", "after"}] + [
        "before_pretty",
        "after_pretty",
    ]
    exclude = ("before", "after")

    @admin.display(description="target")
    def target(self, obj: AuditEvent) -> str:
        text = f"{obj.target_type}: {obj.target_repr}" if obj.target_type else obj.target_repr
        return truncated(text, TARGET_CHARS)

    @admin.display(description="before")
    def before_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.before, indent=2, sort_keys=True))

    @admin.display(description="after")
    def after_pretty(self, obj: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.after, indent=2, sort_keys=True))
