"""Invoices: the one-off draft, the state's actions (each through a confirmation page), credit notes."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from billing import selectors, services
from billing.admin.common import (
    INVOICE_MONEY_FIELDS,
    NEXT_FIELD,
    ReturnToPageMixin,
    add_money_displays,
    confirmation,
    money_or_field,
    run_one,
)
from billing.forms import CreditNoteForm, OneOffInvoiceForm, OneOffLineFormSet, OneOffLines, VoidReasonForm, typed_rows
from billing.models import Invoice, InvoiceLine
from billing.money import format_money, to_minor
from ghostcrm.audit.services import Actor
from ghostcrm.core.admin_base import AuditedModelAdmin, ReadOnlyAdminMixin
from ghostcrm.core.errors import ApplicationError


class InvoiceLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = InvoiceLine
    fk_name = "invoice"
    extra = 0
    fields = ("description", "kind", "quantity", "amount_display", "tax_display", "period_start", "period_end")
    readonly_fields = fields

    @admin.display(description="amount")
    def amount_display(self, obj: InvoiceLine) -> str:
        return format_money(obj.amount, obj.currency)

    @admin.display(description="tax")
    def tax_display(self, obj: InvoiceLine) -> str:
        return format_money(obj.tax_amount, obj.currency)


# What each invoice action does, for its confirmation page; the statuses it applies to.
INVOICE_ACTIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "finalize": (
        "Finalise",
        "Each draft gets the next invoice number of the year and a due date; customer credit is applied and the "
        "invoice is e-mailed to the billing contact. A number cannot be taken back: a finalised invoice can "
        "only be voided or credited afterwards.",
        (Invoice.Status.DRAFT,),
    ),
    "void": (
        "Void",
        "The invoices are voided: nothing is owed on them any more, credit they used goes back to the customer, "
        "and their numbers stay used. This cannot be undone; invoice the customer again if it was a mistake.",
        (Invoice.Status.DRAFT, Invoice.Status.OPEN),
    ),
    "mark_paid": (
        "Mark paid",
        "A manual payment of the whole remaining amount is recorded on each invoice (money received outside "
        "Stripe), the customer is e-mailed, and a suspended organisation resumes once nothing is overdue. "
        "Undo only by refunding the payment.",
        (Invoice.Status.OPEN,),
    ),
    "mark_uncollectible": (
        "Mark uncollectible",
        "The invoices are written off as uncollectible: dunning stops for them and no more reminders are sent. "
        "This cannot be undone.",
        (Invoice.Status.OPEN,),
    ),
}


# The buttons of an invoice's page: (label, action) of every action a state may offer.
PAGE_BUTTONS = {
    "finalize": "Finalise…",
    "void": "Void…",
    "mark_paid": "Mark paid…",
    "credit_note": "Issue a credit note…",
    "mark_uncollectible": "Mark uncollectible…",
}


@admin.register(Invoice)
class InvoiceAdmin(ReturnToPageMixin, AuditedModelAdmin):
    list_display = (
        "__str__",
        "customer",
        "status",
        "billing_reason",
        "total_display",
        "remaining_display",
        "due_date",
        "print_link",
    )
    list_filter = ("status", "billing_reason", ("currency", admin.AllValuesFieldListFilter), "due_date")
    search_fields = ("number", "customer__name", "customer__email", "=id")
    list_select_related = ("customer",)
    inlines = [InvoiceLineInline]
    # Amounts are stored in minor units: the page shows them formatted ("62.50 EUR", not "6250").
    exclude = (*INVOICE_MONEY_FIELDS, "finalized_at")
    readonly_fields = [
        "finalised_at" if f.name == "finalized_at" else money_or_field(f.name, INVOICE_MONEY_FIELDS)
        for f in Invoice._meta.fields
    ] + ["print_link"]
    actions = ["finalize", "void", "mark_paid", "mark_uncollectible", "credit_note"]

    change_list_template = "billing/admin/invoice_change_list.html"
    change_form_template = "billing/admin/invoice_change_form.html"

    def has_change_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        # An invoice's page is read-only (no Save): its state changes only through the actions, as buttons there.
        return obj is None and super().has_change_permission(request)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        invoice = self.get_object(request, object_id)
        buttons: list[dict[str, Any]] = []
        if invoice is not None:
            if self.has_finalize_permission(request):
                changelist = reverse("admin:billing_invoice_changelist")
                buttons += [
                    {"url": changelist, "action": action, "pk": invoice.pk, "label": PAGE_BUTTONS[action]}
                    for action in selectors.invoice_actions(invoice)
                ]
            if request.user.has_perm("billing.refund_payment"):
                payments = reverse("admin:billing_payment_changelist")
                buttons += [
                    {"url": payments, "action": "refund", "pk": payment.pk,
                     "label": f"Refund {format_money(payment.amount - payment.amount_refunded, payment.currency)}…"}
                    for payment in selectors.refundable_payments(invoice)
                ]  # fmt: skip
        context = {**(extra_context or {}), "state_actions": buttons, "next_field": NEXT_FIELD}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        # Subscriptions make their own invoices; "Add" is a one-off draft made by the service, never a bare row.
        return self.one_off_view(request)

    def one_off_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise DjangoPermissionDenied
        posted = request.method == "POST"
        if posted and "more_lines" in request.POST:
            # Three more empty rows, keeping what was typed, unvalidated (no JavaScript on this page).
            form = OneOffInvoiceForm(initial=request.POST.dict())
            lines = cast(OneOffLineFormSet, OneOffLines(initial=typed_rows(request.POST), prefix="lines"))
            posted = False
        else:
            form = OneOffInvoiceForm(request.POST if posted else None)
            lines = cast(OneOffLineFormSet, OneOffLines(request.POST if posted else None, prefix="lines"))
        if posted and form.is_valid() & lines.is_valid():
            data = form.cleaned_data
            typed = lines.lines(data["currency"])
            if typed is not None:
                try:
                    invoice = services.invoice_draft_create(
                        organization_id=data["organization"].pk,
                        currency=data["currency"],
                        lines=typed,
                        memo=data["memo"],
                        tax_rate_id=data["tax_rate"].pk if data["tax_rate"] else None,
                        actor=Actor.for_user(request.user),
                        request=request,
                    )
                except ApplicationError as exc:
                    form.add_error(None, exc.message)
                else:
                    total = format_money(selectors.invoice_total(invoice), invoice.currency)
                    messages.success(
                        request,
                        f"Draft invoice for {invoice.customer} created: {total} with tax. "
                        "Check it, then finalise it from the invoice list.",
                    )
                    return HttpResponseRedirect(reverse("admin:billing_invoice_change", args=[invoice.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "New one-off invoice",
            "form": form,
            "lines": lines,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "billing/admin/one_off_invoice.html", context)

    def has_delete_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        # Only a draft (no number yet) may go; an issued invoice is voided instead, so numbers have no gaps.
        if obj is not None and obj.status != Invoice.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # it would offer issued invoices too
        return actions

    def has_finalize_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("billing.finalize_invoice")

    @admin.display(description="finalised at")
    def finalised_at(self, obj: Invoice) -> Any:
        return obj.finalized_at

    @admin.display(description="total")
    def total_display(self, obj: Invoice) -> str:
        return format_money(obj.total, obj.currency)

    @admin.display(description="remaining")
    def remaining_display(self, obj: Invoice) -> str:
        return format_money(obj.amount_remaining, obj.currency) if obj.status == Invoice.Status.OPEN else "-"

    @admin.display(description="print")
    def print_link(self, obj: Invoice) -> str:
        return format_html('<a href="{}" target="_blank">print</a>', reverse("billing:invoice-print", args=[obj.pk]))

    def _each(self, request: HttpRequest, queryset: QuerySet[Invoice], verb: str, call: Any) -> None:
        done = sum(run_one(request, str(invoice), lambda i=invoice: call(i)) for invoice in queryset)
        if done:
            messages.success(request, f"{done} invoice(s) {verb}.")

    def _confirm(
        self, request: HttpRequest, queryset: QuerySet[Invoice], action: str, form: forms.Form | None = None
    ) -> TemplateResponse | None:
        """The confirmation page of an irreversible invoice action, or None once confirmed (and the form valid)."""
        if "confirm" in request.POST and (form is None or form.is_valid()):
            return None
        label, consequence, statuses = INVOICE_ACTIONS[action]
        rows = []
        for invoice in queryset.select_related("customer").prefetch_related("lines").order_by("created_at"):
            note = "" if invoice.status in statuses else f"skipped: it is {invoice.get_status_display().lower()}"
            cells = [
                str(invoice),
                str(invoice.customer),
                invoice.get_status_display(),
                format_money(selectors.invoice_total(invoice), invoice.currency),
                format_money(invoice.amount_remaining, invoice.currency)
                if invoice.status == Invoice.Status.OPEN else "-",
            ]  # fmt: skip
            rows.append((invoice, cells, note))
        return confirmation(
            self,
            request,
            action=action,
            title=f"{label}: are you sure?",
            consequence=consequence,
            headers=["invoice", "customer", "status", "total", "remaining"],
            rows=rows,
            form=form,
        )

    @admin.action(description="Finalise (number, due date, e-mail)…", permissions=["finalize"])
    def finalize(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> TemplateResponse | None:
        if (page := self._confirm(request, queryset, "finalize")) is not None:
            return page
        actor = Actor.for_user(request.user)
        self._each(
            request,
            queryset,
            "finalised",
            lambda i: services.invoice_finalize(invoice_id=i.pk, actor=actor, request=request),
        )
        return None

    @admin.action(description="Void…", permissions=["finalize"])
    def void(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> TemplateResponse | None:
        form = VoidReasonForm(request.POST if "confirm" in request.POST else None)
        if (page := self._confirm(request, queryset, "void", form)) is not None:
            return page
        actor = Actor.for_user(request.user)
        reason = form.cleaned_data["reason"].strip() or "voided in the admin"
        self._each(
            request,
            queryset,
            "voided",
            lambda i: services.invoice_void(invoice_id=i.pk, actor=actor, reason=reason, request=request),
        )
        return None

    @admin.action(description="Mark paid (payment received outside Stripe)…", permissions=["finalize"])
    def mark_paid(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> TemplateResponse | None:
        if (page := self._confirm(request, queryset, "mark_paid")) is not None:
            return page
        actor = Actor.for_user(request.user)
        self._each(
            request,
            queryset,
            "marked paid",
            lambda i: services.invoice_mark_paid(invoice_id=i.pk, actor=actor, request=request),
        )
        return None

    @admin.action(description="Mark uncollectible…", permissions=["finalize"])
    def mark_uncollectible(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> TemplateResponse | None:
        if (page := self._confirm(request, queryset, "mark_uncollectible")) is not None:
            return page
        actor = Actor.for_user(request.user)
        self._each(
            request,
            queryset,
            "marked uncollectible",
            lambda i: services.invoice_mark_uncollectible(invoice_id=i.pk, actor=actor, request=request),
        )
        return None

    @admin.action(description="Issue a credit note…", permissions=["finalize"])
    def credit_note(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        if queryset.count() != 1:
            messages.error(request, "Select exactly one invoice to credit.")
            return None
        invoice = queryset.get()
        form = CreditNoteForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            try:
                amount = to_minor(form.cleaned_data["amount"].strip(), invoice.currency)
                note = services.credit_note_create(
                    invoice_id=invoice.pk,
                    amount=amount,
                    reason=form.cleaned_data["reason"],
                    actor=Actor.for_user(request.user),
                    request=request,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Credit note {note} for {format_money(note.amount, note.currency)} issued.")
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Credit note on invoice {invoice}",
            "invoice": invoice,
            "remaining": format_money(invoice.amount_remaining, invoice.currency),
            "form": form,
            "next": request.POST.get(NEXT_FIELD, ""),
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "billing/admin/credit_note.html", context)


add_money_displays(InvoiceAdmin, Invoice, INVOICE_MONEY_FIELDS)
