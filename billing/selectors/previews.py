"""Previews: the upcoming invoice, and what a plan or seat change would invoice (Stripe's prorations)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from django.utils import timezone

from billing.models import (
    Customer,
    InvoiceLine,
    Plan,
    Subscription,
)
from billing.pricing import (
    add_months,
    interval_months,
    line_tax,
    prorate,
    proration_fraction,
)
from billing.selectors.plans import (
    billable_seats,
    line_quantity,
    plan_amount,
    plan_get,
    seats_validate,
    subscription_get,
    usage_latest,
)
from ghostcrm.core.errors import Conflict, ValidationError


@dataclass
class PreviewLine:
    description: str
    kind: str
    quantity: int
    amount: int
    tax_amount: int
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    plan_id: int | None = None
    existing_pending: bool = False  # already stored as a pending item


@dataclass
class InvoicePreview:
    currency: str
    lines: list[PreviewLine] = field(default_factory=list)
    invoice_now: bool = False  # True: confirming creates and finalises this invoice at once
    period_start: dt.datetime | None = None
    period_end: dt.datetime | None = None

    @property
    def subtotal(self) -> int:
        return sum(line.amount for line in self.lines)

    @property
    def tax(self) -> int:
        return sum(line.tax_amount for line in self.lines)

    @property
    def total(self) -> int:
        return self.subtotal + self.tax


@dataclass
class ChangePlan:
    """What a plan/seat change does: the new state, the proration lines and the invoice it previews."""

    subscription: Subscription
    new_plan: Plan
    new_seats: int
    behavior: str
    at: dt.datetime
    resets_cycle: bool
    proration_lines: list[PreviewLine]
    new_period_start: dt.datetime
    new_period_end: dt.datetime
    preview: InvoicePreview


def _tax_percentage(customer: Customer):  # type: ignore[no-untyped-def]
    return customer.tax_rate.percentage if customer.tax_rate_id and customer.tax_rate else None


def subscription_line_preview(
    plan: Plan, seats: int, start: dt.datetime, end: dt.datetime, customer: Customer
) -> PreviewLine:
    amount = plan_amount(plan, seats)
    quantity = line_quantity(plan, seats)
    seats_text = f" x {quantity} seat{'s' if quantity != 1 else ''}" if plan.scheme != Plan.Scheme.FLAT else ""
    return PreviewLine(
        description=f"{plan.name}{seats_text} ({start:%d %b %Y} to {end:%d %b %Y})",
        kind=InvoiceLine.Kind.SUBSCRIPTION,
        quantity=quantity,
        amount=amount,
        tax_amount=line_tax(amount, _tax_percentage(customer)),
        period_start=start,
        period_end=end,
        plan_id=plan.pk,
    )


def _pending_lines(subscription: Subscription) -> list[PreviewLine]:
    return [
        PreviewLine(
            description=item.description,
            kind=item.kind,
            quantity=item.quantity,
            amount=item.amount,
            tax_amount=item.tax_amount,
            period_start=item.period_start,
            period_end=item.period_end,
            plan_id=item.plan_id,
            existing_pending=True,
        )
        for item in InvoiceLine.objects.filter(subscription=subscription, invoice__isnull=True).order_by("id")
    ]


def upcoming_invoice(subscription: Subscription) -> InvoicePreview:
    """The renewal invoice the subscription will get at the end of its period (Stripe's upcoming invoice)."""
    customer = subscription.customer
    start = subscription.current_period_end
    end = add_months(start, interval_months(subscription.plan.interval))
    preview = InvoicePreview(currency=subscription.plan.currency, period_start=start, period_end=end)
    preview.lines.extend(_pending_lines(subscription))
    preview.lines.append(
        subscription_line_preview(subscription.plan, billable_seats(subscription), start, end, customer)
    )
    return preview


def subscription_change_plan(
    *,
    subscription: Subscription,
    plan_code: str | None,
    seats: int | None,
    proration_behavior: str,
    at: dt.datetime | None = None,
) -> ChangePlan:
    """Validate a plan/seat change and compute what it would do, without writing anything.

    Same interval: the period stays; unused time on the old price is credited and the remaining time on
    the new price charged, each prorated to the second and rounded half-even (``create_prorations`` keeps
    the two lines for the next invoice, ``always_invoice`` invoices them now, ``none`` drops them).
    A different interval resets the billing cycle to ``at`` and invoices the new period now, as Stripe does.
    Trials are never prorated.
    """
    at = at or timezone.now()
    if proration_behavior not in Subscription.ProrationBehavior.values:
        raise ValidationError(
            f"Unknown proration behaviour {proration_behavior!r}; use one of "
            f"{', '.join(Subscription.ProrationBehavior.values)}.",
            code="proration_behavior",
        )
    if subscription.status in (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE):
        raise Conflict(
            f"The subscription is {subscription.status}; its plan cannot be changed. Start a new subscription.",
            code="subscription_not_changeable",
        )
    old_plan = subscription.plan
    new_plan = plan_get(code=plan_code) if plan_code else old_plan
    new_seats = subscription.seats if seats is None else seats
    if not new_plan.active and new_plan.pk != old_plan.pk:
        raise ValidationError(f"The plan {new_plan.code!r} is not offered any more.", code="plan_inactive")
    if new_plan.currency != old_plan.currency:
        raise ValidationError(
            f"The plan {new_plan.code!r} is priced in {new_plan.currency}, the subscription in "
            f"{old_plan.currency}; a subscription keeps its currency.",
            code="currency_mismatch",
        )
    seats_validate(plan=new_plan, seats=new_seats, organization_id=subscription.customer.organization_id)
    if new_plan.pk == old_plan.pk and new_seats == subscription.seats:
        raise ValidationError("Nothing to change: same plan and same seats.", code="no_change")

    customer = subscription.customer
    start, end = subscription.current_period_start, subscription.current_period_end
    resets_cycle = new_plan.interval != old_plan.interval and subscription.status != Subscription.Status.TRIALING
    prorations: list[PreviewLine] = []
    prorate_now = subscription.status != Subscription.Status.TRIALING and proration_behavior != "none"
    if prorate_now:
        fraction = proration_fraction(start, end, at)
        old_qty = line_quantity(old_plan, subscription.seats)
        credit = -prorate(plan_amount(old_plan, subscription.seats), fraction)
        prorations.append(
            PreviewLine(
                description=f"Unused time on {old_plan.name} x {old_qty} after {at:%d %b %Y %H:%M}",
                kind=InvoiceLine.Kind.PRORATION,
                quantity=old_qty,
                amount=credit,
                tax_amount=line_tax(credit, _tax_percentage(customer)),
                period_start=at,
                period_end=end,
                plan_id=old_plan.pk,
            )
        )
        if not resets_cycle:
            new_qty = line_quantity(new_plan, new_seats)
            charge = prorate(plan_amount(new_plan, new_seats), fraction)
            prorations.append(
                PreviewLine(
                    description=f"Remaining time on {new_plan.name} x {new_qty} after {at:%d %b %Y %H:%M}",
                    kind=InvoiceLine.Kind.PRORATION,
                    quantity=new_qty,
                    amount=charge,
                    tax_amount=line_tax(charge, _tax_percentage(customer)),
                    period_start=at,
                    period_end=end,
                    plan_id=new_plan.pk,
                )
            )

    if resets_cycle:
        new_start, new_end = at, add_months(at, interval_months(new_plan.interval))
        preview = InvoicePreview(new_plan.currency, invoice_now=True, period_start=new_start, period_end=new_end)
        preview.lines.extend(_pending_lines(subscription))
        preview.lines.extend(prorations)
        preview.lines.append(subscription_line_preview(new_plan, new_seats, new_start, new_end, customer))
    elif proration_behavior == "always_invoice" and prorations:
        new_start, new_end = start, end
        preview = InvoicePreview(new_plan.currency, prorations, invoice_now=True, period_start=at, period_end=end)
    else:
        new_start, new_end = start, end
        next_end = add_months(end, interval_months(new_plan.interval))
        preview = InvoicePreview(new_plan.currency, period_start=end, period_end=next_end)
        preview.lines.extend(_pending_lines(subscription))
        preview.lines.extend(prorations)
        reading = usage_latest(organization_id=customer.organization_id)
        renewal_seats = max(new_seats, reading.seats if reading else 0)
        preview.lines.append(subscription_line_preview(new_plan, renewal_seats, end, next_end, customer))
    return ChangePlan(
        subscription=subscription,
        new_plan=new_plan,
        new_seats=new_seats,
        behavior=proration_behavior,
        at=at,
        resets_cycle=resets_cycle,
        proration_lines=prorations,
        new_period_start=new_start,
        new_period_end=new_end,
        preview=preview,
    )


def subscription_change_preview(
    *,
    subscription_id: uuid.UUID | str,
    plan_code: str | None = None,
    seats: int | None = None,
    proration_behavior: str = "create_prorations",
    at: dt.datetime | None = None,
) -> InvoicePreview:
    """The invoice a change would produce (now, or at renewal), for the admin to confirm."""
    subscription = subscription_get(subscription_id=subscription_id)
    return subscription_change_plan(
        subscription=subscription, plan_code=plan_code, seats=seats, proration_behavior=proration_behavior, at=at
    ).preview
