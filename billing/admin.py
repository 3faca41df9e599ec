"""Billing in the admin: plans, customers, subscriptions, invoices, payments, events and the revenue dashboard.

State changes go through ``billing.services`` (actions and the change-plan and refund pages are thin
callers); service errors are shown as admin messages or form errors, and nothing is half-written.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing import selectors, services, views
from billing.models import (
    CreditNote,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    Plan,
    PlanTier,
    Product,
    RevenueDashboard,
    Subscription,
    TaxRate,
    UsageReading,
    WebhookEvent,
)
from billing.money import format_money, from_minor, normalize_currency, to_minor
from billing.webhooks import webhook_event_process
from ghostcrm.audit.services import Actor
from ghostcrm.core.admin_base import AuditedModelAdmin, ReadOnlyAdminMixin
from ghostcrm.core.errors import ApplicationError, ValidationError
from ghostcrm.organizations.models import Organization


def _run(request: HttpRequest, label: str, call: Any) -> bool:
    """Call a service for one object; its error becomes a message naming the object."""
    try:
        call()
    except ApplicationError as exc:
        messages.error(request, f"{label}: {exc.message}")
        return False
    return True


class MoneyInput(forms.CharField):
    """An amount in major units (12.50), checked against the currency's decimals when the form is cleaned."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", "In the plan's currency, e.g. 12.50 (EUR) or 1200 (JPY).")
        super().__init__(max_length=24, **kwargs)


# --- Catalogue --------------------------------------------------------------------------------------


@admin.register(Product)
class ProductAdmin(AuditedModelAdmin):
    list_display = ("name", "active", "provider_id", "created_at")
    list_filter = ("active",)
    search_fields = ("name",)


def _plan_in_use(plan: Plan) -> bool:
    return bool(plan.pk) and Subscription.objects.filter(plan_id=plan.pk).exists()


IN_USE = (
    "subscriptions use this plan: its price cannot change (the MRR ledger and issued invoices rely on it). "
    "Create a new plan and move the subscriptions with 'Change plan or seats'."
)


class PlanTierForm(forms.ModelForm):
    """A tier with its prices typed in major units of the plan's currency, like the plan's own price."""

    unit_price = MoneyInput(label="unit price", required=False)
    flat_fee = MoneyInput(label="flat fee", required=False)

    class Meta:
        model = PlanTier
        fields = ("up_to",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            currency = self.instance.plan.currency
            self.initial["unit_price"] = str(from_minor(self.instance.unit_amount, currency))
            self.initial["flat_fee"] = str(from_minor(self.instance.flat_amount, currency))


class PlanTierFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        plan: Plan = self.instance
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if plan.currency:
            for form in kept:
                for name, attribute in (("unit_price", "unit_amount"), ("flat_fee", "flat_amount")):
                    try:
                        value = to_minor((form.cleaned_data.get(name) or "0").strip(), plan.currency)
                    except ApplicationError as exc:
                        form.add_error(name, exc.message)
                    else:
                        setattr(form.instance, attribute, value)
        if plan.pk and _plan_in_use(plan):
            typed = {(f.cleaned_data.get("up_to"), f.instance.unit_amount, f.instance.flat_amount) for f in kept}
            stored = set(PlanTier.objects.filter(plan_id=plan.pk).values_list("up_to", "unit_amount", "flat_amount"))
            if typed != stored:
                raise forms.ValidationError(f"Tiers: {IN_USE}")
        if plan.scheme == Plan.Scheme.TIERED:
            unbounded = [f for f in kept if f.cleaned_data.get("up_to") is None]
            if len(unbounded) != 1:
                raise forms.ValidationError(
                    "A tiered plan needs tiers, exactly one of them without 'up to' (the last, unbounded tier)."
                )
        elif kept:
            raise forms.ValidationError("Only tiered plans have tiers; delete them or choose the tiered scheme.")


class PlanTierInline(admin.TabularInline):
    model = PlanTier
    form = PlanTierForm
    formset = PlanTierFormSet
    extra = 0
    fields = ("up_to", "unit_price", "flat_fee")
    verbose_name_plural = "tiers (prices in the plan's currency, e.g. 8.00; the last tier has no 'up to')"


class PlanForm(forms.ModelForm):
    price = MoneyInput(label="price", required=False)

    class Meta:
        model = Plan
        fields = (
            "code",
            "name",
            "product",
            "active",
            "provider_id",
            "currency",
            "interval",
            "scheme",
            "tiers_mode",
            "trial_days",
            "seat_limit",
            "contact_limit",
            "storage_limit_mb",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["price"] = str(from_minor(self.instance.unit_amount, self.instance.currency))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        currency, price = data.get("currency"), (data.get("price") or "0").strip()
        if currency:
            try:
                self.instance.unit_amount = to_minor(price, currency)
            except ApplicationError as exc:
                self.add_error("price", exc.message)
        if self.instance.pk and _plan_in_use(self.instance):
            # Like a Stripe Price: what a plan costs is fixed once subscribed to (name and limits may change).
            stored = Plan.objects.get(pk=self.instance.pk)
            typed = {name: data.get(name) for name in ("currency", "interval", "scheme", "tiers_mode")}
            if any(getattr(stored, name) != value for name, value in typed.items()) or (
                stored.unit_amount != self.instance.unit_amount
            ):
                raise forms.ValidationError(f"Price: {IN_USE}")
        return data


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


class TaxRateForm(forms.ModelForm):
    class Meta:
        model = TaxRate
        fields = ("name", "percentage", "country", "active", "provider_id")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        rate = self.instance
        if rate.pk and "percentage" in self.changed_data and InvoiceLine.objects.filter(tax_rate_id=rate.pk).exists():
            # Issued invoices print the rate by reference: changing it would rewrite them.
            self.add_error(
                "percentage",
                "Invoices already carry this rate, so its percentage cannot change. "
                "Deactivate it and create a new rate for the customers concerned.",
            )
        return data


@admin.register(TaxRate)
class TaxRateAdmin(AuditedModelAdmin):
    form = TaxRateForm
    list_display = ("name", "percentage", "country", "active")
    list_filter = ("active", "country")


@admin.register(Customer)
class CustomerAdmin(AuditedModelAdmin):
    list_display = ("__str__", "organization", "email", "balance_display", "suspended_for_nonpayment")
    list_filter = ("suspended_for_nonpayment",)
    search_fields = ("name", "email", "organization__name", "organization__slug")
    list_select_related = ("organization",)
    readonly_fields = ("organization", "balance", "balance_currency", "suspended_for_nonpayment", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers are created with their first subscription or invoice

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the billing history hangs on it

    @admin.display(description="balance")
    def balance_display(self, obj: Customer) -> str:
        return format_money(obj.balance, obj.balance_currency) if obj.balance_currency else "0"


# --- Subscriptions ----------------------------------------------------------------------------------


class SubscriptionStartForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.order_by("name"))
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(active=True))
    seats = forms.IntegerField(min_value=1, initial=1)
    trial_days = forms.IntegerField(min_value=0, required=False, help_text="Empty: the plan's trial.")
    billing_email = forms.EmailField(required=False, help_text="Empty: the organisation's admin e-mail.")


PREVIEW_VALID_FOR = dt.timedelta(hours=1)


def _proration_moment(raw: str | None) -> dt.datetime:
    """The moment a confirmed change prorates at: the preview's, when it is recent; else now."""
    now = timezone.now()
    if not raw:
        return now
    try:
        at = dt.datetime.fromisoformat(raw)
        if at.tzinfo is None:
            raise ValueError
    except ValueError:
        raise ValidationError("The preview's time is not valid; preview the change again.") from None
    if not now - PREVIEW_VALID_FOR <= at <= now:
        raise ValidationError("The preview is more than an hour old (or in the future); preview the change again.")
    return at


class ChangePlanForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(active=True))
    seats = forms.IntegerField(min_value=1)
    proration_behavior = forms.ChoiceField(choices=Subscription.ProrationBehavior.choices)


@admin.register(Subscription)
class SubscriptionAdmin(AuditedModelAdmin):
    list_display = (
        "customer",
        "plan",
        "status",
        "seats",
        "current_period_end",
        "cancel_at_period_end",
        "mrr_display",
    )
    list_filter = ("status", "plan", "cancel_at_period_end")
    search_fields = ("customer__name", "customer__email", "customer__organization__slug", "=id")
    list_select_related = ("customer", "plan")
    actions = ["change_plan", "cancel_at_end", "renew_now"]
    readonly_fields = ["change_plan_link", *[f.name for f in Subscription._meta.fields], "upcoming_invoice"]

    def get_urls(self) -> list[Any]:
        own = [
            path("start/", self.admin_site.admin_view(self.start_view), name="billing_subscription_start"),
            path(
                "<uuid:subscription_id>/change-plan/",
                self.admin_site.admin_view(self.change_plan_view),
                name="billing_subscription_change_plan",
            ),
        ]
        return own + super().get_urls()

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return self.start_view(request)  # a subscription starts through the service, never a bare row

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cancel instead: deleting would drop its MRR history

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        # The MRR column prices tiered plans from their tiers: one query for all rows, not one per row.
        return super().get_queryset(request).prefetch_related("plan__tiers")

    @admin.display(description="MRR")
    def mrr_display(self, obj: Subscription) -> str:
        return format_money(selectors.subscription_mrr(obj), obj.plan.currency)

    @admin.display(description="plan and seats")
    def change_plan_link(self, obj: Subscription) -> str:
        url = reverse("admin:billing_subscription_change_plan", args=[obj.pk])
        return format_html('{} x {} <a class="button" href="{}">Change plan or seats…</a>', obj.plan, obj.seats, url)

    @admin.display(description="upcoming invoice")
    def upcoming_invoice(self, obj: Subscription) -> str:
        if obj.status in (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE) or obj.cancel_at_period_end:
            return "none (the subscription ends)"
        preview = selectors.upcoming_invoice(obj)
        return (
            f"{format_money(preview.total, preview.currency)} on {preview.period_start:%Y-%m-%d} "
            f"({len(preview.lines)} line(s))"
        )

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise DjangoPermissionDenied
        form = SubscriptionStartForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                subscription = services.subscription_create(
                    organization_id=data["organization"].pk,
                    plan_code=data["plan"].code,
                    seats=data["seats"],
                    trial_days=data["trial_days"],
                    billing_email=data["billing_email"] or None,
                    actor=Actor.for_user(request.user),
                    request=request,
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Subscription started: {subscription}.")
                return HttpResponseRedirect(reverse("admin:billing_subscription_change", args=[subscription.pk]))
        context = {**self.admin_site.each_context(request), "title": "Start a subscription", "form": form,
                   "opts": self.model._meta}  # fmt: skip
        return TemplateResponse(request, "billing/admin/subscription_start.html", context)

    def change_plan_view(self, request: HttpRequest, subscription_id: Any) -> HttpResponse:
        """Step 1: choose plan, seats and proration; step 2: the invoice preview; step 3: confirm."""
        if not self.has_change_permission(request):
            raise DjangoPermissionDenied
        subscription = get_object_or_404(Subscription.objects.select_related("plan", "customer"), pk=subscription_id)
        initial = {
            "plan": subscription.plan_id,
            "seats": subscription.seats,
            "proration_behavior": Subscription.ProrationBehavior.CREATE_PRORATIONS,
        }
        form = ChangePlanForm(request.POST or None, initial=initial)
        preview, proration_date = None, None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            arguments = {
                "plan_code": data["plan"].code,
                "seats": data["seats"],
                "proration_behavior": data["proration_behavior"],
            }
            try:
                # Like Stripe's proration_date: the confirmation prorates at the second the preview was made,
                # so the invoice is the one the admin saw, not one a few seconds later.
                if "confirm" in request.POST:
                    at = _proration_moment(request.POST.get("proration_date"))
                    result = services.subscription_change(
                        subscription_id=subscription.pk,
                        actor=Actor.for_user(request.user),
                        request=request,
                        at=at,
                        **arguments,
                    )
                    done = f"Plan changed to {result.subscription.plan.code} with {result.subscription.seats} seats"
                    if result.invoice is not None:
                        done += f"; invoice {result.invoice} finalised"
                    messages.success(request, done + ".")
                    return HttpResponseRedirect(reverse("admin:billing_subscription_change", args=[subscription.pk]))
                at = timezone.now()
                preview = selectors.subscription_change_preview(subscription_id=subscription.pk, at=at, **arguments)
                proration_date = at.isoformat()
            except ApplicationError as exc:
                form.add_error(None, exc.message)
        preview_rows = None
        if preview is not None:
            preview_rows = [
                {"line": line, "amount": format_money(line.amount, preview.currency),
                 "tax": format_money(line.tax_amount, preview.currency)}
                for line in preview.lines
            ]  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "title": f"Change plan: {subscription}",
            "subscription": subscription,
            "form": form,
            "preview": preview,
            "proration_date": proration_date,
            "preview_rows": preview_rows,
            "totals": None
            if preview is None
            else {
                "subtotal": format_money(preview.subtotal, preview.currency),
                "tax": format_money(preview.tax, preview.currency),
                "total": format_money(preview.total, preview.currency),
            },
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "billing/admin/change_plan.html", context)

    @admin.action(description="Change plan or seats (with an invoice preview)…", permissions=["change"])
    def change_plan(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> HttpResponse | None:
        if queryset.count() != 1:
            messages.error(request, "Select exactly one subscription to change its plan.")
            return None
        subscription = queryset.get()
        return HttpResponseRedirect(reverse("admin:billing_subscription_change_plan", args=[subscription.pk]))

    def _confirm(
        self, request: HttpRequest, queryset: QuerySet[Subscription], action: str, consequence: str
    ) -> TemplateResponse | None:
        """The confirmation page of an action that cannot be taken back from the admin, or None once confirmed."""
        if "confirm" in request.POST:
            return None
        rows = []
        now = timezone.now()
        for subscription in queryset.select_related("customer", "plan").prefetch_related("plan__tiers"):
            note = ""
            if subscription.status == Subscription.Status.CANCELED:
                note = "skipped: it is canceled"
            elif action == "cancel_at_end" and subscription.cancel_at_period_end:
                note = "skipped: it already ends with its period"
            elif action == "renew_now" and subscription.current_period_end > now:
                note = "nothing due: its period has not ended"
            cells = [
                str(subscription.customer),
                str(subscription.plan),
                subscription.get_status_display(),
                f"{subscription.current_period_end:%Y-%m-%d %H:%M} UTC",
                format_money(selectors.subscription_mrr(subscription), subscription.plan.currency),
            ]
            rows.append((subscription, cells, note))
        label = {"cancel_at_end": "Cancel at period end", "renew_now": "Renew elapsed periods now"}[action]
        return _confirmation(
            self,
            request,
            action=action,
            title=f"{label}: are you sure?",
            consequence=consequence,
            headers=["customer", "plan", "status", "period end", "MRR"],
            rows=rows,
        )

    @admin.action(description="Cancel at period end…", permissions=["change"])
    def cancel_at_end(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> TemplateResponse | None:
        consequence = (
            "Each subscription ends at the end of its current period: no further invoice, its MRR counts as churn "
            "then, and the organisation is no longer billed. The admin has no undo; start a new subscription "
            "after it ends if the customer stays."
        )
        if (page := self._confirm(request, queryset, "cancel_at_end", consequence)) is not None:
            return page
        done = 0
        for subscription in queryset:
            done += _run(
                request,
                str(subscription),
                lambda s=subscription: services.subscription_cancel(
                    subscription_id=s.pk, actor=Actor.for_user(request.user), request=request
                ),
            )
        if done:
            messages.success(request, f"{done} subscription(s) will end at the end of their period.")
        return None

    @admin.action(description="Renew elapsed periods now…", permissions=["change"])
    def renew_now(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> TemplateResponse | None:
        consequence = (
            "Every period that has ended is rolled forward now: each new period's invoice is created, numbered and "
            "e-mailed (finalised invoices cannot be deleted, only voided), and subscriptions set to cancel end."
        )
        if (page := self._confirm(request, queryset, "renew_now", consequence)) is not None:
            return page
        invoices = []
        for subscription in queryset:
            _run(
                request,
                str(subscription),
                lambda s=subscription: invoices.append(
                    services.subscription_renew(
                        subscription_id=s.pk, actor=Actor.for_user(request.user), request=request
                    )
                ),
            )
        made = [str(i) for i in invoices if i is not None]
        messages.info(request, f"Renewed: {', '.join(made)}." if made else "Nothing was due for renewal.")
        return None


# --- Invoices, payments -----------------------------------------------------------------------------


INVOICE_MONEY_FIELDS = (
    "subtotal",
    "tax",
    "total",
    "starting_balance",
    "amount_due",
    "amount_paid",
    "amount_credited",
)
PAYMENT_MONEY_FIELDS = ("amount", "amount_refunded")


def _money_or_field(name: str, money_fields: tuple[str, ...]) -> str:
    return f"{name}_money" if name in money_fields else name


def _add_money_displays(admin_class: type, model: type, money_fields: tuple[str, ...]) -> None:
    """Give ``admin_class`` a read-only ``<field>_money`` column per minor-unit field, in the row's currency."""
    for name in money_fields:
        field = model._meta.get_field(name)  # type: ignore[attr-defined]

        def display(self: Any, obj: Any, _name: str = name) -> str:
            return format_money(getattr(obj, _name), obj.currency)

        display.short_description = field.verbose_name  # type: ignore[attr-defined]
        setattr(admin_class, f"{name}_money", display)


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


class OneOffInvoiceForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.order_by("name"), label="Customer")
    currency = forms.CharField(
        max_length=3,
        required=False,
        help_text="ISO code, e.g. EUR. Empty: the currency of the customer's current subscription.",
    )
    tax_rate = forms.ModelChoiceField(
        queryset=TaxRate.objects.filter(active=True),
        required=False,
        empty_label="the customer's own rate",
    )
    memo = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        organization = data.get("organization")
        typed = (data.get("currency") or "").strip()
        if typed:
            try:
                data["currency"] = normalize_currency(typed)
            except ApplicationError as exc:
                self.add_error("currency", exc.message)
        elif organization is not None:
            subscription = (
                Subscription.objects.filter(customer__organization=organization, status__in=Subscription.LIVE_STATUSES)
                .select_related("plan")
                .first()
            )
            if subscription is None:
                self.add_error(
                    "currency", f"{organization} has no current subscription to take the currency from; type one."
                )
            else:
                data["currency"] = subscription.plan.currency
        return data


class OneOffLineForm(forms.Form):
    description = forms.CharField(max_length=500)
    amount = MoneyInput(label="unit amount", help_text="")
    quantity = forms.IntegerField(min_value=1, initial=1)


class OneOffLineFormSet(forms.BaseFormSet):
    def lines(self, currency: str) -> list[services.LineInput] | None:
        """The typed lines, each amount checked against ``currency`` (errors go on the line); None when invalid."""
        lines = []
        for form in self.forms:
            data = form.cleaned_data
            if not data:  # an empty extra row
                continue
            try:
                to_minor(data["amount"].strip(), currency)
            except ApplicationError as exc:
                form.add_error("amount", exc.message)
                continue
            lines.append(
                services.LineInput(
                    description=data["description"], amount=data["amount"].strip(), quantity=data["quantity"]
                )
            )
        if any(form.errors for form in self.forms):
            return None
        if not lines:
            self._non_form_errors = self.error_class(["Add at least one line."])  # type: ignore[assignment]
            return None
        return lines


def _typed_rows(data: Any) -> list[dict[str, str]]:
    """The non-empty line rows of a posted one-off invoice form, in order."""
    total = str(data.get("lines-TOTAL_FORMS", "0"))
    rows = []
    for i in range(min(int(total) if total.isdigit() else 0, 100)):
        row = {name: data.get(f"lines-{i}-{name}", "") for name in ("description", "amount", "quantity")}
        if row["description"].strip() or row["amount"].strip():
            rows.append(row)
    return rows


OneOffLines = forms.formset_factory(OneOffLineForm, formset=OneOffLineFormSet, extra=3)


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


class VoidReasonForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False, help_text="Recorded in the audit log.")


def _invoice_total(invoice: Invoice) -> int:
    """What the invoice comes to: a draft's totals are only computed when it is finalised, so add its lines."""
    if invoice.status != Invoice.Status.DRAFT:
        return invoice.total
    return sum(line.amount + line.tax_amount for line in invoice.lines.all())


def _confirmation(
    admin_view: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    *,
    action: str,
    title: str,
    consequence: str,
    headers: list[str],
    rows: list[tuple[Any, list[str], str]],
    form: forms.Form | None = None,
) -> TemplateResponse:
    """A page like Django's delete confirmation: what is selected, what will happen, Confirm or Cancel.

    ``rows`` are (object, cells, note): a note says why the action will not apply to that object."""
    context = {
        **admin_view.admin_site.each_context(request),
        "title": title,
        "action": action,
        "consequence": consequence,
        "headers": headers,
        "rows": [{"pk": obj.pk, "cells": cells, "note": note} for obj, cells, note in rows],
        "applicable": sum(1 for _, _, note in rows if not note),
        "form": form,
        "opts": admin_view.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "billing/admin/action_confirm.html", context)


@admin.register(Invoice)
class InvoiceAdmin(AuditedModelAdmin):
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
    exclude = INVOICE_MONEY_FIELDS
    readonly_fields = [_money_or_field(f.name, INVOICE_MONEY_FIELDS) for f in Invoice._meta.fields] + ["print_link"]
    actions = ["finalize", "void", "mark_paid", "mark_uncollectible", "credit_note"]

    change_list_template = "billing/admin/invoice_change_list.html"

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
            lines = cast(OneOffLineFormSet, OneOffLines(initial=_typed_rows(request.POST), prefix="lines"))
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
                    total = format_money(_invoice_total(invoice), invoice.currency)
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
        done = sum(_run(request, str(invoice), lambda i=invoice: call(i)) for invoice in queryset)
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
                format_money(_invoice_total(invoice), invoice.currency),
                format_money(invoice.amount_remaining, invoice.currency)
                if invoice.status == Invoice.Status.OPEN else "-",
            ]  # fmt: skip
            rows.append((invoice, cells, note))
        return _confirmation(
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
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "billing/admin/credit_note.html", context)


class CreditNoteForm(forms.Form):
    amount = forms.CharField(max_length=24, help_text="In the invoice's currency, e.g. 12.50 (EUR) or 1200 (JPY).")
    reason = forms.CharField(max_length=200)


class RefundForm(forms.Form):
    amount = forms.CharField(max_length=24, required=False, help_text="Empty: everything not yet refunded.")
    reason = forms.CharField(max_length=200)


@admin.register(Payment)
class PaymentAdmin(AuditedModelAdmin):
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
    readonly_fields = [_money_or_field(f.name, PAYMENT_MONEY_FIELDS) for f in Payment._meta.fields]
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
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "billing/admin/refund.html", context)


_add_money_displays(InvoiceAdmin, Invoice, INVOICE_MONEY_FIELDS)
_add_money_displays(PaymentAdmin, Payment, PAYMENT_MONEY_FIELDS)


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    list_display = ("number", "invoice", "amount_display", "reason", "status", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("number", "invoice__number")
    list_select_related = ("invoice",)

    @admin.display(description="amount")
    def amount_display(self, obj: CreditNote) -> str:
        return format_money(obj.amount, obj.currency)


@admin.register(UsageReading)
class UsageReadingAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    list_display = ("organization", "taken_at", "seats", "contacts")
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
            try:
                results.append(
                    webhook_event_process(
                        event_id=event.pk, force=True, actor=Actor.for_user(request.user), request=request
                    ).status
                )
            except Exception as exc:  # recorded on the event by the service; shown here
                messages.error(request, f"{event.event_id}: {exc}")
        messages.info(request, f"Replayed {len(results)} event(s): {', '.join(results) or 'none'}.")


@admin.register(RevenueDashboard)
class RevenueDashboardAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    """Opens the dashboard from the admin index; read-only, for anyone who may view subscriptions."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("billing.view_subscription")

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise DjangoPermissionDenied
        return views.revenue_dashboard(request, **{**self.admin_site.each_context(request), "opts": self.model._meta})
