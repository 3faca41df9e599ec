"""The revenue dashboard, opened from the admin index."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpRequest, HttpResponse

from billing import views
from billing.models import RevenueDashboard
from ghostcrm.core.admin_base import AuditedModelAdmin, ReadOnlyAdminMixin


@admin.register(RevenueDashboard)
class RevenueDashboardAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    """Opens the dashboard from the admin index; read-only, for anyone who may view subscriptions."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("billing.view_subscription")

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise DjangoPermissionDenied
        return views.revenue_dashboard(request, **{**self.admin_site.each_context(request), "opts": self.model._meta})
