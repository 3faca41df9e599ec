"""The billing admin's forms. They parse what an operator types (amounts in major units, checked against the
currency) and pass the catalogue's and invoices' rules on from ``billing.services``, whose sentences they show."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms

from billing import services
from billing.models import Plan, PlanTier, Subscription, TaxRate
from billing.money import from_minor, to_minor
from billing.pricing import Tier
from billing.services import catalogue
from ghostcrm.core.errors import ApplicationError, ValidationError
from ghostcrm.organizations.models import Organization


class MoneyInput(forms.CharField):
    """An amount in major units (12.50), checked against the currency's decimals when the form is cleaned."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", "In the plan's currency, e.g. 12.50 (EUR) or 1200 (JPY).")
        super().__init__(max_length=24, **kwargs)


# --- Catalogue --------------------------------------------------------------------------------------


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
        tiers = [Tier(f.cleaned_data.get("up_to"), f.instance.unit_amount, f.instance.flat_amount) for f in kept]
        try:
            catalogue.plan_tiers_check(plan=plan, tiers=tiers)
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None


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
        if not self.errors:
            # The typed price on the instance (as saving would put it), for the service to compare with the stored.
            for name in ("currency", "interval", "scheme", "tiers_mode"):
                setattr(self.instance, name, data.get(name))
            try:
                catalogue.plan_price_check(plan=self.instance)
            except ApplicationError as exc:
                self.add_error(None, exc.message)
        return data


class TaxRateForm(forms.ModelForm):
    class Meta:
        model = TaxRate
        fields = ("name", "percentage", "country", "active", "provider_id")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "percentage" in self.changed_data and data.get("percentage") is not None:
            try:
                catalogue.tax_rate_check(rate=self.instance, percentage=data["percentage"])
            except ApplicationError as exc:
                self.add_error("percentage", exc.message)
        return data


# --- Subscriptions ----------------------------------------------------------------------------------


class SubscriptionStartForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.order_by("name"), label="organisation")
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(active=True))
    seats = forms.IntegerField(min_value=1, initial=1)
    trial_days = forms.IntegerField(min_value=0, required=False, help_text="Empty: the plan's trial.")
    billing_email = forms.EmailField(required=False, help_text="Empty: the organisation's admin e-mail.")


class ChangePlanForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(active=True))
    seats = forms.IntegerField(min_value=1)
    proration_behavior = forms.ChoiceField(choices=Subscription.ProrationBehavior.choices)


def proration_date_parse(raw: str | None) -> dt.datetime | None:
    """The preview's moment posted back with a confirmation (ISO 8601 with a zone); None when absent."""
    if not raw:
        return None
    try:
        return dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError("The preview's time is not valid; preview the change again.") from None


# --- Invoices, payments -----------------------------------------------------------------------------


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
        if organization is not None:
            try:
                data["currency"] = services.invoice_currency(
                    organization_id=organization.pk, currency=data.get("currency")
                )
            except ApplicationError as exc:
                self.add_error("currency", exc.message)
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


def typed_rows(data: Any) -> list[dict[str, str]]:
    """The non-empty line rows of a posted one-off invoice form, in order."""
    total = str(data.get("lines-TOTAL_FORMS", "0"))
    rows = []
    for i in range(min(int(total) if total.isdigit() else 0, 100)):
        row = {name: data.get(f"lines-{i}-{name}", "") for name in ("description", "amount", "quantity")}
        if row["description"].strip() or row["amount"].strip():
            rows.append(row)
    return rows


OneOffLines = forms.formset_factory(OneOffLineForm, formset=OneOffLineFormSet, extra=3)


class VoidReasonForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False, help_text="Recorded in the audit log.")


class CreditNoteForm(forms.Form):
    amount = forms.CharField(max_length=24, help_text="In the invoice's currency, e.g. 12.50 (EUR) or 1200 (JPY).")
    reason = forms.CharField(max_length=200)


class RefundForm(forms.Form):
    amount = forms.CharField(max_length=24, required=False, help_text="Empty: everything not yet refunded.")
    reason = forms.CharField(max_length=200)
