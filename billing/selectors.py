"""Reads: plan limits for the CRM, price and proration previews, the upcoming invoice, usage, revenue figures."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Sum
from django.utils import timezone

from billing.models import (
    CreditNote,
    Customer,
    Invoice,
    InvoiceLine,
    MrrMovement,
    Payment,
    Plan,
    Subscription,
    UsageReading,
)
from billing.money import round_minor
from billing.pricing import (
    Tier,
    add_months,
    interval_months,
    line_tax,
    monthly_amount,
    plan_period_amount,
    prorate,
    proration_fraction,
)
from ghostcrm.core.errors import Conflict, NotFound, ValidationError

# --- Plans and limits --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanLimits:
    plan_code: str
    seats: int | None  # None: unlimited
    contacts: int | None
    storage_mb: int | None
    subscription_status: str  # "" when read from Organization.plan_code without a subscription


def plan_get(*, code: str) -> Plan:
    try:
        return Plan.objects.select_related("product").get(code=code)
    except Plan.DoesNotExist:
        raise NotFound(f"There is no plan with code {code!r}.", code="plan_not_found") from None


def live_subscription(*, organization_id: uuid.UUID | str) -> Subscription | None:
    return (
        Subscription.objects.select_related("plan", "customer")
        .filter(customer__organization_id=organization_id, status__in=Subscription.LIVE_STATUSES)
        .first()
    )


def plan_limits(organization_id: uuid.UUID | str) -> PlanLimits | None:
    """The limits the CRM enforces for an organisation: from its live subscription's plan, else from the
    plan named by ``Organization.plan_code``; ``None`` when it has neither (no limits known)."""
    from ghostcrm.organizations.models import Organization

    subscription = live_subscription(organization_id=organization_id)
    if subscription is not None:
        plan, status = subscription.plan, subscription.status
    else:
        code = Organization.objects.filter(pk=organization_id).values_list("plan_code", flat=True).first()
        plan_row = Plan.objects.filter(code=code).first() if code else None
        if plan_row is None:
            return None
        plan, status = plan_row, ""
    return PlanLimits(plan.code, plan.seat_limit, plan.contact_limit, plan.storage_limit_mb, status)


def plan_tiers(plan: Plan) -> list[Tier]:
    return [Tier(t.up_to, t.unit_amount, t.flat_amount) for t in plan.tiers.all()]


def plan_amount(plan: Plan, quantity: int) -> int:
    """One full period of ``plan`` for ``quantity`` seats, minor units, before tax."""
    tiers = plan_tiers(plan) if plan.scheme == Plan.Scheme.TIERED else []
    return plan_period_amount(
        scheme=plan.scheme, unit_amount=plan.unit_amount, quantity=quantity, tiers=tiers, mode=plan.tiers_mode
    )


def line_quantity(plan: Plan, seats: int) -> int:
    return 1 if plan.scheme == Plan.Scheme.FLAT else seats


# --- Usage -------------------------------------------------------------------------------------------


def usage_latest(*, organization_id: uuid.UUID | str) -> UsageReading | None:
    return UsageReading.objects.filter(organization_id=organization_id).order_by("-taken_at", "-id").first()


def billable_seats(subscription: Subscription) -> int:
    """Seats an invoice charges: the committed seats, or the latest usage reading when it is higher."""
    reading = usage_latest(organization_id=subscription.customer.organization_id)
    return max(subscription.seats, reading.seats if reading else 0)


# --- Previews ----------------------------------------------------------------------------------------


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


def _subscription_line(plan: Plan, seats: int, start: dt.datetime, end: dt.datetime, customer: Customer) -> PreviewLine:
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
    preview.lines.append(_subscription_line(subscription.plan, billable_seats(subscription), start, end, customer))
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
        preview.lines.append(_subscription_line(new_plan, new_seats, new_start, new_end, customer))
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
        preview.lines.append(_subscription_line(new_plan, renewal_seats, end, next_end, customer))
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


def subscription_get(*, subscription_id: uuid.UUID | str) -> Subscription:
    try:
        return Subscription.objects.select_related("plan", "customer", "customer__tax_rate").get(pk=subscription_id)
    except (Subscription.DoesNotExist, ValueError, DjangoValidationError):  # a malformed id is "not found" too
        raise NotFound(f"There is no subscription {subscription_id}.", code="subscription_not_found") from None


def seats_validate(*, plan: Plan, seats: int, organization_id: uuid.UUID | str) -> None:
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 1:
        raise ValidationError(f"Seats must be a whole number of at least 1 (got {seats!r}).", code="invalid_seats")
    if plan.seat_limit is not None and seats > plan.seat_limit:
        raise ValidationError(
            f"The plan {plan.code!r} allows at most {plan.seat_limit} seats (asked for {seats}).", code="seat_limit"
        )
    reading = usage_latest(organization_id=organization_id)
    if reading is not None and seats < reading.seats:
        raise ValidationError(
            f"{seats} seats is below current usage: the organisation has {reading.seats} active users "
            f"(counted {reading.taken_at:%Y-%m-%d %H:%M} UTC). Deactivate users first.",
            code="seats_below_usage",
        )


# --- Revenue -----------------------------------------------------------------------------------------


def subscription_mrr(subscription: Subscription, *, status: str | None = None) -> int:
    """Monthly recurring revenue of one subscription, minor units, before tax, rounded half-even.

    Counts only ``active`` and ``past_due`` (trials, unpaid, paused and canceled are not revenue);
    a yearly price counts a twelfth; per-seat prices count the committed seats.
    """
    if (status or subscription.status) not in Subscription.MRR_STATUSES:
        return 0
    plan = subscription.plan
    return round_minor(monthly_amount(plan_amount(plan, subscription.seats), plan.interval))


@dataclass
class MonthRow:
    month: str  # YYYY-MM
    new: int
    expansion: int
    contraction: int  # <= 0
    churn: int  # <= 0
    reactivation: int
    mrr_end: int  # MRR at the end of the month (the ledger's running sum)


@dataclass
class RevenueSummary:
    currency: str
    currencies: list[str]
    at: dt.datetime
    mrr: int
    arr: int
    months: list[MonthRow]
    by_status: dict[str, int]
    past_due_amount: int
    past_due_count: int
    top_accounts: list[tuple[str, int]]
    active_subscriptions: int


def _month_key(moment: dt.datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def revenue_currencies() -> list[str]:
    return sorted(set(Plan.objects.values_list("currency", flat=True).distinct()))


def revenue_summary(*, currency: str | None = None, at: dt.datetime | None = None, months: int = 12) -> RevenueSummary:
    """Dashboard figures in one currency (amounts in different currencies are never added together).

    MRR and per-account MRR come from the live subscriptions; the monthly new/expansion/contraction/churn
    series comes from the ``MrrMovement`` ledger, whose running sum is the MRR at each month's end.
    """
    at = at or timezone.now()
    currencies = revenue_currencies()
    if currency is None:
        currency = currencies[0] if currencies else "EUR"
    currency = currency.upper()
    subscriptions = list(
        Subscription.objects.select_related("plan", "customer")
        .prefetch_related("plan__tiers")  # tiered prices: one query, not one per subscription
        .filter(plan__currency=currency)
        .order_by("created_at")
    )
    mrr_by_customer: dict[int, int] = defaultdict(int)
    names: dict[int, str] = {}
    mrr = 0
    for subscription in subscriptions:
        value = subscription_mrr(subscription)
        mrr += value
        if value:  # keyed by customer, so two customers with the same name stay two accounts
            mrr_by_customer[subscription.customer_id] += value
            names[subscription.customer_id] = str(subscription.customer)
    by_status = Counter(s.status for s in subscriptions)

    first_month = add_months(at.replace(day=1, hour=0, minute=0, second=0, microsecond=0), -(months - 1))
    movements = MrrMovement.objects.filter(currency=currency, occurred_at__lte=at).order_by("occurred_at", "id")
    opening = movements.filter(occurred_at__lt=first_month).aggregate(total=Sum("delta"))["total"] or 0
    rows: dict[str, MonthRow] = {}
    for i in range(months):
        key = _month_key(add_months(first_month, i))
        rows[key] = MonthRow(key, 0, 0, 0, 0, 0, 0)
    for movement in movements.filter(occurred_at__gte=first_month):
        row = rows[_month_key(movement.occurred_at)]
        setattr(row, movement.kind, getattr(row, movement.kind) + movement.delta)
    running = opening
    for row in rows.values():
        running += row.new + row.expansion + row.contraction + row.churn + row.reactivation
        row.mrr_end = running

    overdue = list(Invoice.objects.filter(currency=currency, status=Invoice.Status.OPEN, due_date__lt=at))
    past_due_amount = sum(invoice.amount_remaining for invoice in overdue)
    top = sorted(((names[pk], value) for pk, value in mrr_by_customer.items()), key=lambda item: (-item[1], item[0]))
    top = top[:10]
    return RevenueSummary(
        currency=currency,
        currencies=currencies,
        at=at,
        mrr=mrr,
        arr=mrr * 12,
        months=list(rows.values()),
        by_status={status: by_status.get(status, 0) for status in Subscription.Status.values},
        past_due_amount=past_due_amount,
        past_due_count=len(overdue),
        top_accounts=top,
        active_subscriptions=sum(1 for s in subscriptions if s.status in Subscription.MRR_STATUSES),
    )


# --- Printable invoice -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaxSummaryRow:
    name: str  # "VAT 20%" or "No tax"
    base: int  # the lines' amounts (minor units)
    tax: int


@dataclass
class InvoiceDocument:
    """Everything the printable invoice shows, read in a fixed number of queries."""

    invoice: Invoice
    seller_name: str
    seller_address: str
    seller_tax_id: str
    lines: list[InvoiceLine]
    tax_summary: list[TaxSummaryRow]
    credit_notes: list[CreditNote]
    payments: list[Payment]


def invoice_document(*, invoice_id: uuid.UUID | str) -> InvoiceDocument:
    """The invoice with its seller (system settings), buyer, lines, tax per rate, credit notes and payments."""
    from ghostcrm.core.system_settings import setting_value

    try:
        invoice = Invoice.objects.select_related("customer", "customer__organization").get(pk=invoice_id)
    except (Invoice.DoesNotExist, ValueError, DjangoValidationError):
        raise NotFound(f"There is no invoice {invoice_id}.", code="invoice_not_found") from None
    lines = list(invoice.lines.select_related("tax_rate").order_by("created_at", "id"))
    # Tax per rate: the base and tax of each rate are sums of the lines' already-rounded figures, so the
    # summary adds up to the invoice's subtotal and tax exactly.
    by_rate: dict[str, list[int]] = {}
    for line in lines:
        name = str(line.tax_rate) if line.tax_rate_id else "No tax"
        base_tax = by_rate.setdefault(name, [0, 0])
        base_tax[0] += line.amount
        base_tax[1] += line.tax_amount
    return InvoiceDocument(
        invoice=invoice,
        seller_name=setting_value("billing.seller_name"),
        seller_address=setting_value("billing.seller_address"),
        seller_tax_id=setting_value("billing.seller_tax_id"),
        lines=lines,
        tax_summary=[TaxSummaryRow(name, base, tax) for name, (base, tax) in by_rate.items()],
        credit_notes=list(invoice.credit_notes.select_related("refund").order_by("created_at")),
        payments=list(invoice.payments.order_by("created_at")),
    )
