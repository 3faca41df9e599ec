"""Products, plans (prices and tiers in major units), tax rates and customers. The rules of what may change
are the services' (``billing.services.catalogue``); the forms show their sentences."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.admin.common import OrganisationColumn
from billing.forms import PlanForm, PlanTierForm, PlanTierFormSet, TaxRateForm
from billing.models import Customer, Plan, PlanTier, Product, TaxRate
from billing.money import format_money
from ghostcrm.core.admin_base import AuditedModelAdmin


@admin.register(Product)
class ProductAdmin(AuditedModelAdmin):
    list_display = ("name", "active", "provider_id", "created_at")
    list_filter = ("active",)
    search_fields = ("name",)


class PlanTierInline(admin.TabularInline):
    model = PlanTier
    form = PlanTierForm
    formset = PlanTierFormSet
    extra = 0
    fields = ("up_to", "unit_price", "flat_fee")
    verbose_name_plural = "tiers (prices in the plan's currency, e.g. 8.00; the last tier has no 'up to')"


@admin.register(Plan)
class PlanAdmin(AuditedModelAdmin):
    form = PlanForm
    inlines = [PlanTierInline]
    list_display = (
        "code",
        "name",
        "price_display",
        "currency",
        "interval",
        "scheme",
        "trial_days",
        "seat_limit",
        "contact_limit",
        "storage_limit_mb",
        "active",
    )
    list_filter = ("active", ("currency", admin.AllValuesFieldListFilter), "interval", "scheme")
    search_fields = ("code", "name")
    fieldsets = (
        (None, {"fields": ("code", "name", "product", "active", "provider_id")}),
        ("Price", {"fields": ("currency", "interval", "scheme", "price", "tiers_mode", "trial_days")}),
        ("Limits read by the CRM", {"fields": ("seat_limit", "contact_limit", "storage_limit_mb")}),
    )


@admin.register(TaxRate)
class TaxRateAdmin(AuditedModelAdmin):
    form = TaxRateForm
    list_display = ("name", "percentage", "country", "active")
    list_filter = ("active", "country")


@admin.register(Customer)
class CustomerAdmin(OrganisationColumn, AuditedModelAdmin):
    list_display = ("__str__", "organisation", "email", "balance_display", "suspended_for_nonpayment")
    list_filter = ("suspended_for_nonpayment",)
    search_fields = ("name", "email", "organization__name", "organization__slug")
    list_select_related = ("organization",)
    exclude = ("organization",)
    readonly_fields = ("organisation", "balance", "balance_currency", "suspended_for_nonpayment", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers are created with their first subscription or invoice

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the billing history hangs on it

    @admin.display(description="balance")
    def balance_display(self, obj: Customer) -> str:
        return format_money(obj.balance, obj.balance_currency) if obj.balance_currency else "0"
