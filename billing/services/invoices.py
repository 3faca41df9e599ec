"""Invoices: subscription period drafts, one-off drafts, finalising, voiding and writing off."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from billing import selectors
from billing.emails import billing_email_send
from billing.models import Customer, Invoice, InvoiceLine, Subscription, TaxRate
from billing.money import normalize_currency, to_minor
from billing.pricing import line_tax
from billing.services.common import clean_save, invoice_email_context, invoice_lock, now_or
from billing.services.customers import customer_ensure
from billing.services.dunning import invoice_settled_after
from billing.services.numbering import document_number_next, document_year
from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import Conflict, ValidationError
from ghostcrm.core.system_settings import setting_value


def subscription_line_add(
    *, invoice: Invoice, subscription: Subscription, seats: int, start: dt.datetime, end: dt.datetime
) -> InvoiceLine:
    customer = subscription.customer
    preview = selectors.subscription_line_preview(subscription.plan, seats, start, end, customer)
    line = InvoiceLine(
        invoice=invoice,
        subscription=subscription,
        kind=InvoiceLine.Kind.SUBSCRIPTION,
        description=preview.description,
        plan=subscription.plan,
        quantity=preview.quantity,
        amount=preview.amount,
        currency=invoice.currency,
        period_start=start,
        period_end=end,
        tax_rate=customer.tax_rate,
        tax_amount=preview.tax_amount,
    )
    clean_save(line)
    return line


def period_invoice_create(
    *,
    subscription: Subscription,
    reason: str,
    start: dt.datetime,
    end: dt.datetime,
    actor: Actor,
    seats: int = 0,
    request: HttpRequest | None = None,
) -> Invoice:
    """The draft invoice of one subscription period, with pending prorations; one per (subscription, start)."""
    invoice = Invoice(
        customer=subscription.customer,
        subscription=subscription,
        currency=subscription.plan.currency,
        billing_reason=reason,
        period_start=start,
        period_end=end,
    )
    invoice.full_clean(validate_constraints=False)
    # A savepoint, so that losing the race against a concurrent renewal leaves our transaction usable.
    with transaction.atomic():
        invoice.save()
    InvoiceLine.objects.filter(subscription=subscription, invoice__isnull=True).update(invoice=invoice)
    subscription_line_add(
        invoice=invoice, subscription=subscription, seats=seats or subscription.seats, start=start, end=end
    )
    audit_record(
        request=request, action="billing.invoice.create", actor=actor, target=invoice, after=model_snapshot(invoice)
    )
    return invoice


@dataclass(frozen=True)
class LineInput:
    description: str
    amount: Any  # major units as text or Decimal ("12.50"); validated against the currency
    quantity: int = 1


def invoice_currency(*, organization_id: uuid.UUID | str, currency: str | None) -> str:
    """The currency of a one-off invoice: the one given (a valid ISO code), else the currency of the
    organisation's live subscription; ``currency_required`` when there is neither."""
    if currency and currency.strip():
        return normalize_currency(currency)
    subscription = selectors.live_subscription(organization_id=organization_id)
    if subscription is None:
        raise ValidationError(
            "The organisation has no current subscription to take the currency from; give one.",
            code="currency_required",
            extra={"fields": {"currency": ["Give a currency: there is no current subscription to take it from."]}},
        )
    return subscription.plan.currency


@transaction.atomic
def invoice_draft_create(
    *,
    organization_id: uuid.UUID | str,
    currency: str | None,
    lines: list[LineInput],
    actor: Actor,
    memo: str = "",
    tax_rate_id: int | None = None,
    request: HttpRequest | None = None,
) -> Invoice:
    """A manual draft invoice (one-off charges); amounts in major units, checked against the currency.

    The currency defaults to the live subscription's (``invoice_currency``). The lines carry ``tax_rate_id``
    when given (an active rate), else the customer's own rate."""
    code = invoice_currency(organization_id=organization_id, currency=currency)
    if not lines:
        raise ValidationError("An invoice needs at least one line.", code="no_lines")
    customer = customer_ensure(request=request, organization_id=organization_id, actor=actor)
    tax_rate = customer.tax_rate
    if tax_rate_id is not None:
        tax_rate = TaxRate.objects.filter(pk=tax_rate_id, active=True).first()
        if tax_rate is None:
            raise ValidationError(f"There is no active tax rate {tax_rate_id}.", code="tax_rate_not_found")
    invoice = Invoice(customer=customer, currency=code, billing_reason=Invoice.Reason.MANUAL, memo=memo)
    clean_save(invoice)
    percentage = tax_rate.percentage if tax_rate else None
    for item in lines:
        if not item.description.strip():
            raise ValidationError("Every invoice line needs a description.", code="line_description")
        if isinstance(item.quantity, bool) or not isinstance(item.quantity, int) or item.quantity < 1:
            raise ValidationError(f"Quantity must be at least 1 (got {item.quantity!r}).", code="line_quantity")
        amount = to_minor(item.amount, code) * item.quantity
        line = InvoiceLine(
            invoice=invoice,
            kind=InvoiceLine.Kind.ADJUSTMENT,
            description=item.description.strip(),
            quantity=item.quantity,
            amount=amount,
            currency=code,
            tax_rate=tax_rate,
            tax_amount=line_tax(amount, percentage),
        )
        clean_save(line)
    audit_record(
        request=request, action="billing.invoice.create", actor=actor, target=invoice, after=model_snapshot(invoice)
    )
    return invoice


@transaction.atomic
def invoice_finalize(
    *, invoice_id: uuid.UUID | str, actor: Actor, at: dt.datetime | None = None, request: HttpRequest | None = None
) -> Invoice:
    """draft -> open: totals from the lines, customer credit applied, the next number of the year, due date.

    An invoice with nothing to pay (zero, or covered by credit) is paid at once, as Stripe does.
    """
    at = now_or(at)
    invoice = invoice_lock(invoice_id)
    if invoice.status != Invoice.Status.DRAFT:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; only drafts can be finalised.", code="not_draft")
    lines = list(invoice.lines.all())
    if not lines:
        raise ValidationError("The invoice has no lines; add one before finalising.", code="no_lines")
    if any(line.currency != invoice.currency for line in lines):
        raise ValidationError("Every line must be in the invoice's currency.", code="currency_mismatch")
    before = model_snapshot(invoice)
    customer = Customer.objects.select_for_update().get(pk=invoice.customer_id)
    invoice.subtotal, invoice.tax, invoice.total = selectors.lines_totals(lines)
    applied = 0
    same_currency = customer.balance_currency in ("", invoice.currency)
    if customer.balance < 0 and same_currency and invoice.total > 0:
        applied = max(customer.balance, -invoice.total)  # negative: credit used
    invoice.starting_balance = applied
    invoice.amount_due = max(invoice.total + applied, 0)
    customer.balance -= applied
    if invoice.total < 0:  # a net credit (downgrade prorations) becomes customer credit
        if not same_currency and customer.balance != 0:
            raise ValidationError(
                f"The customer holds a balance in {customer.balance_currency}; cannot add {invoice.currency} credit.",
                code="currency_mismatch",
            )
        customer.balance += invoice.total
    if customer.balance != 0:
        customer.balance_currency = invoice.currency
    customer.save(update_fields=["balance", "balance_currency"])
    invoice.number = document_number_next(kind="INV", year=document_year(at))
    invoice.finalized_at = at
    invoice.due_date = at + dt.timedelta(days=setting_value("billing.invoice_due_days"))
    invoice.status = Invoice.Status.OPEN
    if invoice.amount_due == 0:
        invoice.status, invoice.paid_at = Invoice.Status.PAID, at
    clean_save(invoice)
    audit_record(
        request=request,
        action="billing.invoice.finalize",
        actor=actor,
        target=invoice,
        before=before,
        after=model_snapshot(invoice),
    )
    billing_email_send(customer=customer, kind="invoice_finalized", context=invoice_email_context(invoice))
    return invoice


@transaction.atomic
def invoice_void(
    *,
    invoice_id: uuid.UUID | str,
    actor: Actor,
    reason: str = "",
    at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Invoice:
    """open -> void (a mistake: nothing is owed). A draft is voided too (Stripe deletes drafts instead)."""
    at = now_or(at)
    invoice = invoice_lock(invoice_id)
    if invoice.status not in (Invoice.Status.DRAFT, Invoice.Status.OPEN):
        raise Conflict(f"Invoice {invoice} is {invoice.status}; only draft or open invoices can be voided.")
    if invoice.amount_paid > 0:
        raise Conflict(
            f"Invoice {invoice} has payments; refund them or issue a credit note instead.", code="has_payments"
        )
    before = model_snapshot(invoice)
    if invoice.status == Invoice.Status.OPEN and (invoice.starting_balance or invoice.total < 0):
        # Undo what finalising did to the customer's balance: give back credit used, take back credit given.
        customer = Customer.objects.select_for_update().get(pk=invoice.customer_id)
        customer.balance += invoice.starting_balance - min(invoice.total, 0)
        customer.save(update_fields=["balance"])
    invoice.status, invoice.voided_at, invoice.next_payment_attempt = Invoice.Status.VOID, at, None
    clean_save(invoice)
    audit_record(
        request=request,
        action="billing.invoice.void",
        actor=actor,
        target=invoice,
        before=before,
        after=model_snapshot(invoice),
        message=reason,
    )
    invoice_settled_after(request=request, invoice=invoice, actor=actor, at=at)
    return invoice


@transaction.atomic
def invoice_mark_uncollectible(
    *, invoice_id: uuid.UUID | str, actor: Actor, at: dt.datetime | None = None, request: HttpRequest | None = None
) -> Invoice:
    at = now_or(at)
    invoice = invoice_lock(invoice_id)
    if invoice.status != Invoice.Status.OPEN:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; only open invoices can be marked uncollectible.")
    before = model_snapshot(invoice)
    invoice.status, invoice.marked_uncollectible_at, invoice.next_payment_attempt = (
        Invoice.Status.UNCOLLECTIBLE,
        at,
        None,
    )
    clean_save(invoice)
    audit_record(
        request=request,
        action="billing.invoice.uncollectible",
        actor=actor,
        target=invoice,
        before=before,
        after=model_snapshot(invoice),
    )
    return invoice
