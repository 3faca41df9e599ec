"""Payments (refunds through a form) and credit notes, read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from billing import services
from billing.admin.common import NEXT_FIELD, PAYMENT_MONEY_FIELDS, ReturnToPageMixin, add_money_displays, money_or_field
from billing.forms import RefundForm
from billing.models import CreditNote, Payment
from billing.money import format_money, to_minor
from ghostcrm.audit.services import Actor
from ghostcrm.core.admin_base import AuditedModelAdmin, ReadOnlyAdminMixin
from ghostcrm.core.errors import ApplicationError


@admin.register(Payment)
class PaymentAdmin(ReturnToPageMixin, AuditedModelAdmin):
    list_display = (
        "created_at",
        "invoice",
        "amount_display",
        "status",
        "method",
        "refunded_display",
        "provider_reference",
    )
    list_filter = ("status", "method", ("currency", admin.AllValuesFieldListFilter), "created_at")
    search_fields = ("invoice__number", "provider_reference", "invoice__customer__name")
    list_select_related = ("invoice",)
    exclude = PAYMENT_MONEY_FIELDS
    readonly_fields = [money_or_field(f.name, PAYMENT_MONEY_FIELDS) for f in Payment._meta.fields]
    actions = ["refund"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # record payments with the invoice's "mark paid" action or through Stripe

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # refund instead: the invoice's paid amount is built from its payments

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.refund_payment")

    @admin.display(description="amount")
    def amount_display(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="refunded")
    def refunded_display(self, obj: Payment) -> str:
        return format_money(obj.amount_refunded, obj.currency)

    @admin.action(description="Refund…", permissions=["refund"])
    def refund(self, request: HttpRequest, queryset: QuerySet[Payment]) -> HttpResponse | None:
        if queryset.count() != 1:
            messages.error(request, "Select exactly one payment to refund.")
            return None
        payment = queryset.get()
        form = RefundForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            amount_text = form.cleaned_data["amount"].strip()
            try:
                amount = to_minor(amount_text, payment.currency) if amount_text else None
                refund = services.payment_refund(
                    payment_id=payment.pk,
                    amount=amount,
                    reason=form.cleaned_data["reason"],
                    actor=Actor.for_user(request.user),
                    request=request,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Refunded {format_money(refund.amount, refund.currency)}.")
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Refund {payment}",
            "payment": payment,
            "refundable": format_money(payment.amount - payment.amount_refunded, payment.currency),
            "form": form,
            "next": request.POST.get(NEXT_FIELD, ""),
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "billing/admin/refund.html", context)


add_money_displays(PaymentAdmin, Payment, PAYMENT_MONEY_FIELDS)


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    list_display = ("number", "invoice", "amount_display", "reason", "status", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("number", "invoice__number")
    list_select_related = ("invoice",)

    @admin.display(description="amount")
    def amount_display(self, obj: CreditNote) -> str:
        return format_money(obj.amount, obj.currency)
