"""Usage readings and provider webhook events (replayed on demand), read-only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.admin.common import OrganisationColumn
from billing.models import UsageReading, WebhookEvent
from billing.webhooks import webhook_event_process
from ghostcrm.audit.services import Actor
from ghostcrm.core.admin_base import AuditedModelAdmin, ReadOnlyAdminMixin


@admin.register(UsageReading)
class UsageReadingAdmin(OrganisationColumn, ReadOnlyAdminMixin, AuditedModelAdmin):
    list_display = ("organisation", "taken_at", "seats", "contacts")
    fields = readonly_fields = ("organisation", "taken_at", "seats", "contacts")
    list_filter = ("taken_at",)
    search_fields = ("organization__name", "organization__slug")
    list_select_related = ("organization",)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    list_display = ("event_id", "type", "status", "attempts", "received_at", "processed_at")
    list_filter = ("status", "type", "livemode")
    search_fields = ("event_id", "object_id")
    actions = ["replay"]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.change_subscription")

    @admin.action(description="Replay (idempotent)", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        results = []
        for event in queryset.order_by("created", "id"):
            replayed = webhook_event_process(
                event_id=event.pk,
                force=True,
                actor=Actor.for_user(request.user),
                request=request,
                raise_unexpected=False,
            )
            results.append(replayed.status)
            if replayed.status == WebhookEvent.Status.FAILED:
                messages.error(request, f"{event.event_id}: {replayed.error}")
        messages.info(request, f"Replayed {len(results)} event(s): {', '.join(results) or 'none'}.")
