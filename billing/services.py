"""Writes of billing. Admin actions, commands, RQ jobs and webhooks are thin callers of these functions.

Every state change locks its row (``select_for_update``) before validating, writes in one transaction,
is audited, and e-mails the billing contact where the customer should know (sent on commit).
A lock takes its own row only, never with ``select_related``: on PostgreSQL that would also lock the joined
rows (a plan shared by every subscriber would serialise them all), on SQL Server it would not, and
mssql-django refuses ``of=``; the related row is read after the lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from psycopg import sql

from billing import selectors
from billing.emails import billing_email_send
from billing.models import (
    CreditNote,
    Customer,
    DocumentCounter,
    Invoice,
    InvoiceLine,
    MrrMovement,
    Payment,
    Plan,
    Refund,
    Subscription,
    TaxRate,
    UsageReading,
)
from billing.money import format_money, normalize_currency, to_minor, to_stripe_amount
from billing.pricing import add_months, interval_months, line_tax
from billing.stripe_client import StripeGateway, after_commit_call, stripe_enabled
from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import ApplicationError, Conflict, NotFound, ValidationError
from ghostcrm.core.system_settings import setting_value

logger = logging.getLogger(__name__)


def _now(at: dt.datetime | None) -> dt.datetime:
    return at or timezone.now()


def _clean_save(obj: Any, **save_kwargs: Any) -> None:
    """``full_clean`` then ``save``; model validation errors become our ValidationError with the fields."""
    try:
        obj.full_clean()
    except DjangoValidationError as exc:
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        text = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
        raise ValidationError(f"Invalid {obj._meta.verbose_name}: {text}", extra={"fields": fields}) from None
    obj.save(**save_kwargs)


def _invoice_context(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice": invoice,
        "number": invoice.number or "draft",
        "total": format_money(invoice.total, invoice.currency),
        "amount_remaining": format_money(invoice.amount_remaining, invoice.currency),
        "due_date": invoice.due_date,
    }


# --- Customers and subscriptions ---------------------------------------------------------------------


def customer_ensure(
    *, organization_id: uuid.UUID | str, actor: Actor, email: str | None = None, request: HttpRequest | None = None
) -> Customer:
    """The organisation's billing customer, created on first use with the organisation's admin e-mail."""
    from ghostcrm.organizations.models import Organization

    customer = Customer.objects.filter(organization_id=organization_id).first()
    if customer is not None:
        return customer
    try:
        organization = Organization.objects.get(pk=organization_id)
    except (Organization.DoesNotExist, DjangoValidationError):
        raise NotFound(f"There is no organisation {organization_id}.", code="organization_not_found") from None
    customer = Customer(organization=organization, email=email or organization.admin_email, name=organization.name)
    _clean_save(customer)
    audit_record(
        request=request, action="billing.customer.create", actor=actor, target=customer, after=model_snapshot(customer)
    )
    return customer


def _mrr_movement(subscription: Subscription, before: int, at: dt.datetime) -> None:
    """Record the change of one subscription's MRR in the ledger the dashboard reads."""
    after = selectors.subscription_mrr(subscription)
    delta = after - before
    if delta == 0:
        return
    if before == 0:
        churned_before = subscription.mrr_movements.filter(kind=MrrMovement.Kind.CHURN).exists()
        kind = MrrMovement.Kind.REACTIVATION if churned_before else MrrMovement.Kind.NEW
    elif after == 0:
        kind = MrrMovement.Kind.CHURN
    else:
        kind = MrrMovement.Kind.EXPANSION if delta > 0 else MrrMovement.Kind.CONTRACTION
    MrrMovement.objects.create(
        subscription=subscription, occurred_at=at, kind=kind, delta=delta, currency=subscription.plan.currency
    )


@contextmanager
def _subscription_saving(
    subscription: Subscription,
    *,
    action: str,
    actor: Actor,
    at: dt.datetime,
    request: HttpRequest | None = None,
    message: str = "",
) -> Iterator[Subscription]:
    """Change ``subscription`` inside the block; on leaving it, the row is validated and saved, its MRR change
    goes to the ledger at ``at`` and the change is audited. An error inside the block saves nothing."""
    before, mrr_before = model_snapshot(subscription), selectors.subscription_mrr(subscription)
    yield subscription
    _clean_save(subscription)
    _mrr_movement(subscription, mrr_before, at)
    audit_record(
        request=request,
        action=action,
        actor=actor,
        target=subscription,
        before=before,
        after=model_snapshot(subscription),
        message=message,
    )


@transaction.atomic
def subscription_create(
    *,
    organization_id: uuid.UUID | str,
    plan_code: str,
    actor: Actor,
    seats: int = 1,
    at: dt.datetime | None = None,
    billing_email: str | None = None,
    trial_days: int | None = None,
    request: HttpRequest | None = None,
) -> Subscription:
    """Subscribe an organisation to a plan: a trial when the plan (or ``trial_days``) gives one, else the
    first period is invoiced and finalised at once (Stripe's ``subscription_create`` invoice)."""
    at = _now(at)
    plan = selectors.plan_get(code=plan_code)
    if not plan.active:
        raise ValidationError(f"The plan {plan.code!r} is not offered any more.", code="plan_inactive")
    customer = customer_ensure(request=request, organization_id=organization_id, actor=actor, email=billing_email)
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.subscriptions.filter(status__in=Subscription.LIVE_STATUSES).exists():
        raise Conflict(
            f"{customer} already has a current subscription; change its plan instead.", code="subscription_exists"
        )
    selectors.seats_validate(plan=plan, seats=seats, organization_id=customer.organization_id)
    trial = plan.trial_days if trial_days is None else trial_days
    subscription = Subscription(customer=customer, plan=plan, seats=seats, billing_cycle_anchor=at)
    if trial > 0:
        trial_end = at + dt.timedelta(days=trial)
        subscription.status = Subscription.Status.TRIALING
        subscription.trial_end = subscription.billing_cycle_anchor = trial_end
        subscription.current_period_start, subscription.current_period_end = at, trial_end
    else:
        subscription.status = Subscription.Status.ACTIVE
        subscription.started_at = at
        subscription.current_period_start = at
        subscription.current_period_end = add_months(at, interval_months(plan.interval))
    _clean_save(subscription)
    _mrr_movement(subscription, 0, at)
    audit_record(
        request=request,
        action="billing.subscription.create",
        actor=actor,
        target=subscription,
        after=model_snapshot(subscription),
    )
    if subscription.status == Subscription.Status.ACTIVE:
        invoice = _period_invoice_create(
            request=request,
            subscription=subscription,
            reason=Invoice.Reason.SUBSCRIPTION_CREATE,
            start=subscription.current_period_start,
            end=subscription.current_period_end,
            actor=actor,
        )
        invoice_finalize(request=request, invoice_id=invoice.pk, actor=actor, at=at)
    return subscription


@dataclass
class ChangeResult:
    subscription: Subscription
    invoice: Invoice | None
    pending_items: list[InvoiceLine] = field(default_factory=list)


@transaction.atomic
def subscription_change(
    *,
    subscription_id: uuid.UUID | str,
    actor: Actor,
    plan_code: str | None = None,
    seats: int | None = None,
    proration_behavior: str = Subscription.ProrationBehavior.CREATE_PRORATIONS,
    at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> ChangeResult:
    """Change plan and/or seats with Stripe's proration behaviours (see ``selectors.subscription_change_plan``)."""
    at = _now(at)
    locked = Subscription.objects.select_for_update().filter(pk=subscription_id).first()
    if locked is None:
        raise NotFound(f"There is no subscription {subscription_id}.", code="subscription_not_found")
    subscription = selectors.subscription_get(subscription_id=locked.pk)
    change = selectors.subscription_change_plan(
        subscription=subscription, plan_code=plan_code, seats=seats, proration_behavior=proration_behavior, at=at
    )
    with _subscription_saving(
        subscription,
        action="billing.subscription.change",
        actor=actor,
        at=at,
        request=request,
        message=f"proration: {proration_behavior}",
    ):
        subscription.plan, subscription.seats = change.new_plan, change.new_seats
        if change.resets_cycle:
            subscription.billing_cycle_anchor = change.new_period_start
            subscription.current_period_start, subscription.current_period_end = (
                change.new_period_start,
                change.new_period_end,
            )
    customer = subscription.customer
    lines = [
        InvoiceLine(
            subscription=subscription,
            kind=line.kind,
            description=line.description,
            plan_id=line.plan_id,
            quantity=line.quantity,
            amount=line.amount,
            currency=change.new_plan.currency,
            period_start=line.period_start,
            period_end=line.period_end,
            tax_rate=customer.tax_rate,
            tax_amount=line.tax_amount,
        )
        for line in change.proration_lines
    ]
    for line in lines:
        _clean_save(line)
    if change.preview.invoice_now:
        invoice = Invoice(
            customer=customer,
            subscription=subscription,
            currency=change.new_plan.currency,
            billing_reason=Invoice.Reason.SUBSCRIPTION_UPDATE,
            period_start=change.preview.period_start,
            period_end=change.preview.period_end,
        )
        _clean_save(invoice)
        InvoiceLine.objects.filter(subscription=subscription, invoice__isnull=True).update(invoice=invoice)
        if change.resets_cycle:
            _subscription_line_add(
                invoice=invoice,
                subscription=subscription,
                seats=change.new_seats,
                start=change.new_period_start,
                end=change.new_period_end,
            )
        invoice = invoice_finalize(request=request, invoice_id=invoice.pk, actor=actor, at=at)
        return ChangeResult(subscription, invoice)
    return ChangeResult(subscription, None, lines)


@transaction.atomic
def subscription_cancel(
    *,
    subscription_id: uuid.UUID | str,
    actor: Actor,
    at_period_end: bool = True,
    at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Subscription:
    """Cancel at the end of the period (the renewal then ends it) or immediately."""
    at = _now(at)
    subscription = Subscription.objects.select_for_update().filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound(f"There is no subscription {subscription_id}.", code="subscription_not_found")
    if subscription.status == Subscription.Status.CANCELED:
        raise Conflict("The subscription is already canceled.", code="already_canceled")
    with _subscription_saving(
        subscription,
        action="billing.subscription.cancel",
        actor=actor,
        at=at,
        request=request,
        message="at period end" if at_period_end else "immediately",
    ):
        if at_period_end:
            subscription.cancel_at_period_end = True
        else:
            subscription.status = Subscription.Status.CANCELED
            subscription.canceled_at = subscription.ended_at = at
        subscription.canceled_at = subscription.canceled_at or at
    return subscription


@dataclass(frozen=True)
class ProviderSubscriptionState:
    """What a provider (Stripe) reports about a subscription in one event; ``None``: not reported."""

    provider_id: str | None
    event_created: int  # the event's `created` (Unix seconds): older events than the last applied are stale
    status: str
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    cancel_at_period_end: bool | None
    seats: int | None
    price_id: str | None
    ended_at: dt.datetime | None
    canceled_at: dt.datetime | None


@transaction.atomic
def subscription_provider_sync(
    *, subscription_id: uuid.UUID | str, state: ProviderSubscriptionState, actor: Actor, message: str = ""
) -> Subscription:
    """Make the subscription what the provider says it is (status, period, seats, plan by price id).

    Raises ``Conflict`` (code ``stale_event``) for an event older than the last one applied, so a late
    delivery never undoes a newer state; an unknown price id or one in another currency is refused.
    """
    subscription = Subscription.objects.select_for_update().filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound(f"There is no subscription {subscription_id}.", code="subscription_not_found")
    if subscription.provider_updated is not None and state.event_created < subscription.provider_updated:
        raise Conflict(f"stale: an event of {subscription.provider_updated} was already applied", code="stale_event")
    occurred = dt.datetime.fromtimestamp(state.event_created, tz=dt.UTC)
    with _subscription_saving(
        subscription, action="billing.subscription.sync", actor=actor, at=occurred, message=message
    ):
        subscription.status = state.status
        subscription.provider_id = subscription.provider_id or state.provider_id
        subscription.provider_updated = state.event_created
        if state.period_start and state.period_end:
            subscription.current_period_start, subscription.current_period_end = state.period_start, state.period_end
        if state.cancel_at_period_end is not None:
            subscription.cancel_at_period_end = state.cancel_at_period_end
        if state.seats:
            subscription.seats = state.seats
        if state.price_id and state.price_id != subscription.plan.provider_id:
            # A plan changed at the provider: follow it, so MRR and the next invoice here use the same price.
            plan = Plan.objects.filter(provider_id=state.price_id).first()
            if plan is None:
                raise ValidationError(
                    f"No plan here has the Stripe price id {state.price_id!r}; set it on the plan, then replay "
                    "this event.",
                    code="unknown_price",
                )
            if plan.currency != subscription.plan.currency:
                raise ValidationError(
                    f"The Stripe price {state.price_id} is in {plan.currency}, the subscription in "
                    f"{subscription.plan.currency}.",
                    code="currency_mismatch",
                )
            subscription.plan = plan
        if state.status == Subscription.Status.CANCELED:
            subscription.ended_at = state.ended_at
            subscription.canceled_at = subscription.canceled_at or state.canceled_at or subscription.ended_at
    return subscription


# --- Invoices ----------------------------------------------------------------------------------------


def _subscription_line_add(
    *, invoice: Invoice, subscription: Subscription, seats: int, start: dt.datetime, end: dt.datetime
) -> InvoiceLine:
    customer = subscription.customer
    preview = selectors._subscription_line(subscription.plan, seats, start, end, customer)
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
    _clean_save(line)
    return line


def _period_invoice_create(
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
    _subscription_line_add(
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


@transaction.atomic
def invoice_draft_create(
    *,
    organization_id: uuid.UUID | str,
    currency: str,
    lines: list[LineInput],
    actor: Actor,
    memo: str = "",
    tax_rate_id: int | None = None,
    request: HttpRequest | None = None,
) -> Invoice:
    """A manual draft invoice (one-off charges); amounts in major units, checked against the currency.

    The lines carry ``tax_rate_id`` when given (an active rate), else the customer's own rate."""
    code = normalize_currency(currency)
    if not lines:
        raise ValidationError("An invoice needs at least one line.", code="no_lines")
    customer = customer_ensure(request=request, organization_id=organization_id, actor=actor)
    tax_rate = customer.tax_rate
    if tax_rate_id is not None:
        tax_rate = TaxRate.objects.filter(pk=tax_rate_id, active=True).first()
        if tax_rate is None:
            raise ValidationError(f"There is no active tax rate {tax_rate_id}.", code="tax_rate_not_found")
    invoice = Invoice(customer=customer, currency=code, billing_reason=Invoice.Reason.MANUAL, memo=memo)
    _clean_save(invoice)
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
        _clean_save(line)
    audit_record(
        request=request, action="billing.invoice.create", actor=actor, target=invoice, after=model_snapshot(invoice)
    )
    return invoice


def document_year(at: dt.datetime) -> int:
    """The numbering year of a document finalised at ``at``: the UTC calendar year (the printed dates are UTC
    too), so 31 Dec 23:59:59 UTC is the old year and 1 Jan 00:00 UTC the new one, whatever zone ``at`` is in."""
    if timezone.is_naive(at):
        raise ValueError("document dates must be timezone-aware")
    return at.astimezone(dt.UTC).year


def _next_number(*, kind: str, year: int) -> str:
    """The next document number of the year, gap-free: the counter row is locked until the caller commits.

    Must run inside the transaction that uses the number: a rollback gives the number back.
    ``select_for_update`` is ``FOR UPDATE`` on PostgreSQL and ``WITH (UPDLOCK, ROWLOCK)`` on SQL Server.
    """
    if not transaction.get_connection("default").in_atomic_block:
        raise RuntimeError("document numbers must be taken inside the transaction that uses them")
    try:
        with transaction.atomic():
            DocumentCounter.objects.get_or_create(kind=kind, year=year)
    except IntegrityError:  # a concurrent first number of the year created the row: it exists now
        pass
    counter = DocumentCounter.objects.select_for_update().get(kind=kind, year=year)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    prefix = setting_value("billing.number_prefix")
    middle = "" if kind == "INV" else f"{kind}-"
    return f"{prefix}-{middle}{year}-{counter.last_number:06d}"


def _lock_invoice(invoice_id: uuid.UUID | str) -> Invoice:
    invoice = Invoice.objects.select_for_update().filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound(f"There is no invoice {invoice_id}.", code="invoice_not_found")
    return invoice


@transaction.atomic
def invoice_finalize(
    *, invoice_id: uuid.UUID | str, actor: Actor, at: dt.datetime | None = None, request: HttpRequest | None = None
) -> Invoice:
    """draft -> open: totals from the lines, customer credit applied, the next number of the year, due date.

    An invoice with nothing to pay (zero, or covered by credit) is paid at once, as Stripe does.
    """
    at = _now(at)
    invoice = _lock_invoice(invoice_id)
    if invoice.status != Invoice.Status.DRAFT:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; only drafts can be finalised.", code="not_draft")
    lines = list(invoice.lines.all())
    if not lines:
        raise ValidationError("The invoice has no lines; add one before finalising.", code="no_lines")
    if any(line.currency != invoice.currency for line in lines):
        raise ValidationError("Every line must be in the invoice's currency.", code="currency_mismatch")
    before = model_snapshot(invoice)
    customer = Customer.objects.select_for_update().get(pk=invoice.customer_id)
    invoice.subtotal = sum(line.amount for line in lines)
    invoice.tax = sum(line.tax_amount for line in lines)
    invoice.total = invoice.subtotal + invoice.tax
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
    invoice.number = _next_number(kind="INV", year=document_year(at))
    invoice.finalized_at = at
    invoice.due_date = at + dt.timedelta(days=setting_value("billing.invoice_due_days"))
    invoice.status = Invoice.Status.OPEN
    if invoice.amount_due == 0:
        invoice.status, invoice.paid_at = Invoice.Status.PAID, at
    _clean_save(invoice)
    audit_record(
        request=request,
        action="billing.invoice.finalize",
        actor=actor,
        target=invoice,
        before=before,
        after=model_snapshot(invoice),
    )
    billing_email_send(customer=customer, kind="invoice_finalized", context=_invoice_context(invoice))
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
    at = _now(at)
    invoice = _lock_invoice(invoice_id)
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
    _clean_save(invoice)
    audit_record(
        request=request,
        action="billing.invoice.void",
        actor=actor,
        target=invoice,
        before=before,
        after=model_snapshot(invoice),
        message=reason,
    )
    _after_invoice_settled(request=request, invoice=invoice, actor=actor, at=at)
    return invoice


@transaction.atomic
def invoice_mark_uncollectible(
    *, invoice_id: uuid.UUID | str, actor: Actor, at: dt.datetime | None = None, request: HttpRequest | None = None
) -> Invoice:
    at = _now(at)
    invoice = _lock_invoice(invoice_id)
    if invoice.status != Invoice.Status.OPEN:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; only open invoices can be marked uncollectible.")
    before = model_snapshot(invoice)
    invoice.status, invoice.marked_uncollectible_at, invoice.next_payment_attempt = (
        Invoice.Status.UNCOLLECTIBLE,
        at,
        None,
    )
    _clean_save(invoice)
    audit_record(
        request=request,
        action="billing.invoice.uncollectible",
        actor=actor,
        target=invoice,
        before=before,
        after=model_snapshot(invoice),
    )
    return invoice


@transaction.atomic
def payment_record(
    *,
    invoice_id: uuid.UUID | str,
    amount: int,
    actor: Actor,
    method: str = Payment.Method.MANUAL,
    provider_reference: str | None = None,
    excess_to_credit: bool = False,
    at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Payment:
    """A successful payment against an open invoice (minor units). Paying it in full marks it paid, brings a
    past-due subscription back to active and resumes a tenant that dunning suspended.

    Overpayment: by default a payment above what is still due is refused (``overpayment``: a typing mistake
    in the admin). With ``excess_to_credit`` (money a provider has already collected), the payment records
    what was due and the excess becomes customer credit (a negative balance) used by the next invoice, as
    Stripe's customer balance does.

    Idempotent on ``provider_reference``: the same provider payment recorded twice is one payment.
    """
    at = _now(at)
    invoice = _lock_invoice(invoice_id)
    if provider_reference:
        existing = Payment.objects.filter(provider_reference=provider_reference).first()
        if existing is not None:
            return existing
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationError(f"A payment must be a positive whole number of minor units (got {amount!r}).")
    if invoice.status != Invoice.Status.OPEN:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; payments go to open invoices.", code="not_open")
    excess = max(amount - invoice.amount_remaining, 0)
    if excess and not excess_to_credit:
        raise ValidationError(
            f"{format_money(amount, invoice.currency)} is more than the "
            f"{format_money(invoice.amount_remaining, invoice.currency)} still due on {invoice}.",
            code="overpayment",
        )
    amount -= excess
    payment = Payment(
        invoice=invoice,
        amount=amount,
        currency=invoice.currency,
        status=Payment.Status.SUCCEEDED,
        method=method,
        provider_reference=provider_reference or None,
    )
    _clean_save(payment)
    before = model_snapshot(invoice)
    invoice.amount_paid += amount
    if invoice.amount_remaining == 0:
        invoice.status, invoice.paid_at, invoice.next_payment_attempt = Invoice.Status.PAID, at, None
    _clean_save(invoice)
    audit_record(
        request=request, action="billing.payment.record", actor=actor, target=payment, after=model_snapshot(payment)
    )
    audit_record(
        request=request,
        action="billing.invoice.pay" if invoice.status == Invoice.Status.PAID else "billing.invoice.partial_payment",
        actor=actor,
        target=invoice,
        before=before,
        after=model_snapshot(invoice),
    )
    if invoice.status == Invoice.Status.PAID:
        billing_email_send(customer=invoice.customer, kind="invoice_paid", context=_invoice_context(invoice))
        _after_invoice_settled(request=request, invoice=invoice, actor=actor, at=at)
    if excess:  # after the subscription: the lock order is invoice, subscription, customer everywhere
        _credit_balance_add(
            request=request,
            customer_id=invoice.customer_id,
            amount=excess,
            currency=invoice.currency,
            actor=actor,
            message=f"overpayment of {invoice} ({provider_reference or method})",
        )
    return payment


def _credit_balance_add(
    *, customer_id: int, amount: int, currency: str, actor: Actor, message: str, request: HttpRequest | None = None
) -> None:
    """Give the customer ``amount`` of credit (Stripe's convention: the balance goes down), audited."""
    customer = Customer.objects.select_for_update().get(pk=customer_id)
    if customer.balance != 0 and customer.balance_currency not in ("", currency):
        raise ValidationError(
            f"The customer holds a balance in {customer.balance_currency}; cannot add {currency} credit.",
            code="currency_mismatch",
        )
    before = model_snapshot(customer)
    customer.balance -= amount
    customer.balance_currency = currency
    customer.save(update_fields=["balance", "balance_currency"])
    audit_record(
        request=request,
        action="billing.customer.credit",
        actor=actor,
        target=customer,
        organization_id=customer.organization_id,
        before=before,
        after=model_snapshot(customer),
        message=f"{format_money(amount, currency)} credit: {message}",
    )


def invoice_mark_paid(
    *,
    invoice_id: uuid.UUID | str,
    actor: Actor,
    reference: str | None = None,
    at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Payment:
    """Record the whole remaining amount as paid outside any provider (a bank transfer seen by hand)."""
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound(f"There is no invoice {invoice_id}.", code="invoice_not_found")
    if invoice.status != Invoice.Status.OPEN or invoice.amount_remaining == 0:
        raise Conflict(f"Invoice {invoice} is {invoice.status}; only open invoices can be marked paid.")
    return payment_record(
        request=request,
        invoice_id=invoice.pk,
        amount=invoice.amount_remaining,
        actor=actor,
        method=Payment.Method.BANK_TRANSFER if reference else Payment.Method.MANUAL,
        provider_reference=reference,
        at=at,
    )


@transaction.atomic
def payment_failure_record(
    *, invoice_id: uuid.UUID | str, amount: int, actor: Actor, provider_reference: str | None, message: str
) -> Payment | None:
    """A failed collection attempt reported by the provider (dunning carries on by its schedule)."""
    invoice = _lock_invoice(invoice_id)
    if provider_reference and Payment.objects.filter(provider_reference=provider_reference).exists():
        return None
    if invoice.status != Invoice.Status.OPEN:
        return None  # a stale failure after the invoice was settled
    payment = Payment(
        invoice=invoice,
        amount=max(amount, 0),
        currency=invoice.currency,
        status=Payment.Status.FAILED,
        method=Payment.Method.STRIPE,
        provider_reference=provider_reference or None,
        failure_message=message[:500],
    )
    _clean_save(payment)
    audit_record(
        action="billing.payment.failed", actor=actor, target=payment, after=model_snapshot(payment), message=message
    )
    return payment


@transaction.atomic
def payment_refund(
    *,
    payment_id: uuid.UUID | str,
    actor: Actor,
    reason: str,
    amount: int | None = None,
    provider_reference: str | None = None,
    call_provider: bool = True,
    at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> Refund:
    """Refund all or part of a successful payment, with a credit note on its invoice.

    With Stripe configured and a Stripe payment, the refund is also requested from Stripe after commit
    (idempotency key from the refund id). Idempotent on ``provider_reference``.
    """
    payment = Payment.objects.select_for_update().filter(pk=payment_id).first()
    if payment is None:
        raise NotFound(f"There is no payment {payment_id}.", code="payment_not_found")
    if provider_reference:
        existing = Refund.objects.filter(provider_reference=provider_reference).first()
        if existing is not None:
            return existing
    if payment.status != Payment.Status.SUCCEEDED:
        raise Conflict("Only a successful payment can be refunded.", code="not_refundable")
    refundable = payment.amount - payment.amount_refunded
    amount = refundable if amount is None else amount
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationError(f"A refund must be a positive whole number of minor units (got {amount!r}).")
    if amount > refundable:
        raise ValidationError(
            f"{format_money(amount, payment.currency)} is more than the "
            f"{format_money(refundable, payment.currency)} left to refund on this payment.",
            code="over_refund",
        )
    if not reason.strip():
        raise ValidationError("Give a reason for the refund.", code="reason_required")
    refund = Refund(
        payment=payment,
        amount=amount,
        currency=payment.currency,
        reason=reason.strip(),
        provider_reference=provider_reference or None,
    )
    _clean_save(refund)
    payment.amount_refunded += amount
    payment.save(update_fields=["amount_refunded"])
    invoice = Invoice.objects.select_for_update().get(pk=payment.invoice_id)
    note = CreditNote(
        number=_next_number(kind="CN", year=document_year(_now(at))),
        invoice=invoice,
        amount=amount,
        currency=payment.currency,
        reason=refund.reason,
        refund=refund,
    )
    _clean_save(note)
    audit_record(
        request=request, action="billing.payment.refund", actor=actor, target=refund, after=model_snapshot(refund)
    )
    audit_record(
        request=request, action="billing.credit_note.create", actor=actor, target=note, after=model_snapshot(note)
    )
    billing_email_send(
        customer=invoice.customer,
        kind="refund_issued",
        context={**_invoice_context(invoice), "refund_amount": format_money(amount, refund.currency)},
    )
    if call_provider and stripe_enabled() and payment.method == Payment.Method.STRIPE and payment.provider_reference:
        reference, currency = payment.provider_reference, payment.currency
        to_stripe_amount(amount, currency)  # refuse now (rolled back) what Stripe could not take after commit
        after_commit_call(
            f"refund {refund.pk}",
            lambda: StripeGateway().refund_create(
                payment_reference=reference, amount=amount, currency=currency, refund_id=refund.pk
            ),
        )
    return refund


@transaction.atomic
def credit_note_create(
    *,
    invoice_id: uuid.UUID | str,
    amount: int,
    reason: str,
    actor: Actor,
    at: dt.datetime | None = None,
    request: HttpRequest | None = None,
) -> CreditNote:
    """Reduce what an open invoice asks for (a goodwill credit or a correction), with its own number."""
    at = _now(at)
    invoice = _lock_invoice(invoice_id)
    if invoice.status != Invoice.Status.OPEN:
        raise Conflict(
            f"Invoice {invoice} is {invoice.status}; credit a paid invoice by refunding its payment.", code="not_open"
        )
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationError(f"A credit note must be a positive whole number of minor units (got {amount!r}).")
    if amount > invoice.amount_remaining:
        raise ValidationError(
            f"{format_money(amount, invoice.currency)} is more than the "
            f"{format_money(invoice.amount_remaining, invoice.currency)} still due.",
            code="over_credit",
        )
    if not reason.strip():
        raise ValidationError("Give a reason for the credit note.", code="reason_required")
    before = model_snapshot(invoice)
    note = CreditNote(
        number=_next_number(kind="CN", year=document_year(at)),
        invoice=invoice,
        amount=amount,
        currency=invoice.currency,
        reason=reason.strip(),
    )
    _clean_save(note)
    invoice.amount_credited += amount
    if invoice.amount_remaining == 0:
        invoice.status, invoice.paid_at, invoice.next_payment_attempt = Invoice.Status.PAID, at, None
    _clean_save(invoice)
    audit_record(
        request=request, action="billing.credit_note.create", actor=actor, target=note, after=model_snapshot(note)
    )
    audit_record(
        request=request,
        action="billing.invoice.credit",
        actor=actor,
        target=invoice,
        before=before,
        after=model_snapshot(invoice),
    )
    if invoice.status == Invoice.Status.PAID:
        _after_invoice_settled(request=request, invoice=invoice, actor=actor, at=at)
    return note


# --- Renewal -----------------------------------------------------------------------------------------

# Canceled and incomplete subscriptions have no next period; paused ones are not invoiced (as in Stripe).
NOT_RENEWED = (Subscription.Status.CANCELED, Subscription.Status.INCOMPLETE, Subscription.Status.PAUSED)


def subscription_renew(
    *, subscription_id: uuid.UUID | str, actor: Actor, at: dt.datetime | None = None, request: HttpRequest | None = None
) -> Invoice | None:
    """Roll every elapsed period forward: end a subscription set to cancel, turn a finished trial into a
    paying subscription, and create and finalise the invoice of each new period.

    Idempotent: a period's invoice is unique on (subscription, period_start), and the subscription row is
    locked while it moves, so running twice (or two workers at once) makes one invoice per period.
    Returns the last invoice created, if any.
    """
    at = _now(at)
    last: Invoice | None = None
    for _ in range(240):  # a bound: 20 years of monthly periods caught up in one call at most
        with transaction.atomic():
            subscription = (
                Subscription.objects.select_for_update()
                .filter(pk=subscription_id, current_period_end__lte=at)
                .exclude(status__in=NOT_RENEWED)
                .first()
            )
            if subscription is None:
                return last
            last = (
                _renew_one_period(
                    request=request,
                    subscription=selectors.subscription_get(subscription_id=subscription.pk),
                    actor=actor,
                )
                or last
            )
    return last


def _renew_one_period(
    *, subscription: Subscription, actor: Actor, request: HttpRequest | None = None
) -> Invoice | None:
    boundary = subscription.current_period_end
    if subscription.cancel_at_period_end:
        with _subscription_saving(
            subscription, action="billing.subscription.end", actor=actor, at=boundary, request=request
        ):
            subscription.status, subscription.ended_at = Subscription.Status.CANCELED, boundary
        return None
    start = boundary
    end = add_months(start, interval_months(subscription.plan.interval))
    with _subscription_saving(
        subscription, action="billing.subscription.renew", actor=actor, at=boundary, request=request
    ):
        if subscription.status == Subscription.Status.TRIALING:
            subscription.status, subscription.started_at = Subscription.Status.ACTIVE, boundary
            subscription.billing_cycle_anchor = boundary
        seats = selectors.billable_seats(subscription)
        if seats > subscription.seats:  # usage above the committed seats: bill the reading, commit to it
            subscription.seats = seats
        subscription.current_period_start, subscription.current_period_end = start, end
    reason = Invoice.Reason.SUBSCRIPTION_CYCLE
    existing = Invoice.objects.filter(
        subscription=subscription, period_start=start, billing_reason__in=Invoice.PERIOD_REASONS
    ).first()
    if existing is not None:
        return existing
    try:
        invoice = _period_invoice_create(
            request=request, subscription=subscription, reason=reason, start=start, end=end, actor=actor, seats=seats
        )
    except IntegrityError:
        return Invoice.objects.get(
            subscription=subscription, period_start=start, billing_reason__in=Invoice.PERIOD_REASONS
        )
    return invoice_finalize(request=request, invoice_id=invoice.pk, actor=actor, at=boundary)


@dataclass
class RunSummary:
    processed: int = 0
    changed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.processed} processed, {self.changed} changed, {self.failed} failed"


def renewals_due(*, at: dt.datetime) -> list[uuid.UUID]:
    return list(
        Subscription.objects.filter(current_period_end__lte=at)
        .exclude(status__in=NOT_RENEWED)
        .order_by("current_period_end")
        .values_list("pk", flat=True)
    )


def renewals_run(*, actor: Actor, at: dt.datetime | None = None, progress: Any = None) -> RunSummary:
    """Renew every subscription whose period has ended; one transaction per period, failures reported."""
    at = _now(at)
    summary = RunSummary()
    for subscription_id in renewals_due(at=at):
        summary.processed += 1
        try:
            if subscription_renew(subscription_id=subscription_id, actor=actor, at=at) is not None:
                summary.changed += 1
        except ApplicationError as exc:
            summary.failed += 1
            summary.errors.append(f"subscription {subscription_id}: {exc.message}")
            audit_record(
                action="billing.subscription.renew",
                actor=actor,
                target_type="billing.subscription",
                target_id=str(subscription_id),
                outcome="failure",
                message=exc.message,
            )
        if progress is not None:
            progress(subscription_id)
    return summary


# --- Dunning -----------------------------------------------------------------------------------------


def _overdue_open(*, customer_id: int, at: dt.datetime, exclude: uuid.UUID | None = None) -> bool:
    query = Invoice.objects.filter(customer_id=customer_id, status=Invoice.Status.OPEN, due_date__lt=at)
    if exclude is not None:
        query = query.exclude(pk=exclude)
    return query.exists()


def _after_invoice_settled(
    *, invoice: Invoice, actor: Actor, at: dt.datetime, request: HttpRequest | None = None
) -> None:
    """Once nothing is overdue any more: the subscription is active again and a suspended tenant resumes."""
    if _overdue_open(customer_id=invoice.customer_id, at=at, exclude=invoice.pk):
        return
    if invoice.subscription_id:
        subscription = Subscription.objects.select_for_update().get(pk=invoice.subscription_id)
        if subscription.status in (Subscription.Status.PAST_DUE, Subscription.Status.UNPAID):
            with _subscription_saving(
                subscription,
                action="billing.subscription.active",
                actor=actor,
                at=at,
                request=request,
                message=f"invoice {invoice} settled",
            ):
                subscription.status, subscription.past_due_since = Subscription.Status.ACTIVE, None
    customer = Customer.objects.select_for_update().get(pk=invoice.customer_id)
    if customer.suspended_for_nonpayment:
        from tenants.services import organization_resume

        organization_resume(organization_id=customer.organization_id, actor=actor, reason=f"Invoice {invoice} settled.")
        customer.suspended_for_nonpayment = False
        customer.save(update_fields=["suspended_for_nonpayment"])
        audit_record(
            request=request,
            action="billing.dunning.resume",
            actor=actor,
            target=customer,
            organization_id=customer.organization_id,
            message=f"invoice {invoice} settled",
        )
        billing_email_send(customer=customer, kind="service_resumed", context=_invoice_context(invoice))


def dunning_schedule() -> tuple[list[int], int]:
    """(retry days, grace days) from the system settings, which the admin validates when they are saved.

    A value stored some other way and invalid stops dunning with a sentence rather than a traceback.
    """
    try:
        retry_days = setting_value("billing.dunning_retry_days")
        grace_days = setting_value("billing.dunning_grace_days")
    except DjangoValidationError as exc:
        raise ValidationError(
            f"Dunning is stopped: the stored setting is invalid ({' '.join(exc.messages)}). Correct it in System "
            "settings.",
            code="invalid_setting",
        ) from None
    return list(retry_days), int(grace_days)


@transaction.atomic
def invoice_dunning_step(*, invoice_id: uuid.UUID | str, actor: Actor, at: dt.datetime | None = None) -> list[str]:
    """Advance dunning for one overdue invoice; returns the steps taken (empty when nothing was due).

    1. first seen overdue: the subscription becomes ``past_due``; 2. on each retry day of the schedule
    (days after the due date) one collection attempt (Stripe, when configured) and a reminder; 3. after the
    grace period the subscription becomes ``unpaid`` and the tenant is suspended through provisioning.
    """
    at = _now(at)
    invoice = _lock_invoice(invoice_id)
    if invoice.status != Invoice.Status.OPEN or invoice.amount_remaining == 0 or not invoice.due_date:
        return []
    if invoice.due_date >= at:
        return []
    retry_days, grace_days = dunning_schedule()
    days_overdue = (at - invoice.due_date).total_seconds() / 86400
    # Lock order everywhere: invoice, subscription, customer (renewal and payment take the same order).
    subscription = (
        Subscription.objects.select_for_update().filter(pk=invoice.subscription_id).first()
        if invoice.subscription_id
        else None
    )
    customer = Customer.objects.select_for_update().get(pk=invoice.customer_id)
    steps: list[str] = []
    context = _invoice_context(invoice)

    if subscription is not None and subscription.status in (Subscription.Status.ACTIVE, Subscription.Status.TRIALING):
        with _subscription_saving(
            subscription,
            action="billing.dunning.past_due",
            actor=actor,
            at=at,
            message=f"invoice {invoice} overdue since {invoice.due_date:%Y-%m-%d}",
        ):
            subscription.status, subscription.past_due_since = Subscription.Status.PAST_DUE, at
        billing_email_send(customer=customer, kind="payment_overdue", context=context)
        steps.append("past_due")

    attempts_due = sum(1 for day in retry_days if days_overdue >= day)
    if attempts_due > invoice.attempt_count:
        before = model_snapshot(invoice)
        invoice.attempt_count = attempts_due
        later = [day for day in retry_days if day > days_overdue]
        invoice.next_payment_attempt = invoice.due_date + dt.timedelta(days=later[0]) if later else None
        _clean_save(invoice)
        charged = bool(stripe_enabled() and invoice.provider_id)
        if charged:
            provider_id, attempt, local_id = str(invoice.provider_id), invoice.attempt_count, invoice.pk
            after_commit_call(
                f"dunning retry of {invoice}",
                lambda: StripeGateway().invoice_pay(
                    provider_invoice_id=provider_id, invoice_id=local_id, attempt=attempt
                ),
            )
        audit_record(
            action="billing.dunning.retry",
            actor=actor,
            target=invoice,
            before=before,
            after=model_snapshot(invoice),
            message=f"attempt {invoice.attempt_count} of {len(retry_days)}"
            + (" (Stripe charge requested)" if charged else " (reminder sent)"),
        )
        billing_email_send(
            customer=customer, kind="payment_retry", context={**context, "attempt": invoice.attempt_count}
        )
        steps.append(f"retry_{invoice.attempt_count}")

    if days_overdue >= grace_days and not customer.suspended_for_nonpayment:
        if subscription is not None and subscription.status == Subscription.Status.PAST_DUE:
            with _subscription_saving(subscription, action="billing.dunning.unpaid", actor=actor, at=at):
                subscription.status = Subscription.Status.UNPAID
        organization = customer.organization
        if organization.status == "active":
            from tenants.services import organization_suspend

            organization_suspend(
                organization_id=organization.pk,
                actor=actor,
                reason=f"Invoice {invoice} unpaid {grace_days} days after its due date.",
            )
            customer.suspended_for_nonpayment = True
            customer.save(update_fields=["suspended_for_nonpayment"])
            audit_record(
                action="billing.dunning.suspend",
                actor=actor,
                target=customer,
                organization_id=organization.pk,
                message=f"invoice {invoice} unpaid after {grace_days} days of grace",
            )
            billing_email_send(customer=customer, kind="service_suspended", context=context)
            steps.append("suspended")
        else:
            audit_record(
                action="billing.dunning.suspend",
                actor=actor,
                target=customer,
                organization_id=organization.pk,
                outcome="failure",
                message=f"organisation is {organization.status}, not active: left as it is",
            )
    return steps


def dunning_due(*, at: dt.datetime) -> list[uuid.UUID]:
    """Open invoices past their due date, oldest first: the ones a dunning run looks at."""
    overdue = Invoice.objects.filter(status=Invoice.Status.OPEN, due_date__lt=at).order_by("due_date")
    return list(overdue.values_list("pk", flat=True))


def dunning_run(*, actor: Actor, at: dt.datetime | None = None, progress: Any = None) -> RunSummary:
    at = _now(at)
    summary = RunSummary()
    for invoice_id in dunning_due(at=at):
        summary.processed += 1
        try:
            if invoice_dunning_step(invoice_id=invoice_id, actor=actor, at=at):
                summary.changed += 1
        except ApplicationError as exc:
            summary.failed += 1
            summary.errors.append(f"invoice {invoice_id}: {exc.message}")
        if progress is not None:
            progress(invoice_id)
    return summary


# --- Usage -------------------------------------------------------------------------------------------


def usage_reading_take(*, organization_id: uuid.UUID | str, at: dt.datetime | None = None) -> UsageReading:
    """Count active CRM users and live contacts in the organisation's schema and store the reading."""
    from ghostcrm.organizations.models import Organization
    from tenants.db import tenant_schema
    from tenants.schema_names import validate_schema_name

    at = _now(at)
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        raise NotFound(f"There is no organisation {organization_id}.", code="organization_not_found")
    schema = organization.schema_name
    try:
        validate_schema_name(schema)
    except DjangoValidationError as exc:
        raise ValidationError(" ".join(exc.messages), code="invalid_schema_name") from None
    query = sql.SQL(
        "SELECT (SELECT count(*) FROM {schema}.crm_users WHERE is_active),"
        " (SELECT count(*) FROM {schema}.contacts WHERE deleted_at IS NULL)"
    ).format(schema=sql.Identifier(schema))
    try:
        # A savepoint when called inside a transaction: a missing table must not poison the caller's work.
        with (
            tenant_schema(schema) as connection,
            transaction.atomic(using=connection.alias),
            connection.cursor() as cursor,
        ):
            cursor.execute(query.as_string(cursor.connection))
            seats, contacts = cursor.fetchone()
    except DatabaseError as exc:  # a missing schema or table: the tenant is not (fully) provisioned
        raise Conflict(
            f"Cannot count usage in schema {schema!r} of {organization}: {str(exc).splitlines()[0]}",
            code="usage_unavailable",
        ) from None
    reading = UsageReading(organization=organization, taken_at=at, seats=seats, contacts=contacts)
    _clean_save(reading)
    return reading


def usage_due() -> list[uuid.UUID]:
    """The organisations a usage run reads: every active one, oldest first."""
    from ghostcrm.organizations.models import Organization

    return list(Organization.objects.filter(status="active").order_by("created_at").values_list("pk", flat=True))


def usage_readings_run(*, actor: Actor, at: dt.datetime | None = None, progress: Any = None) -> RunSummary:
    """A reading for every active organisation; one failing tenant does not stop the others."""
    at = _now(at)
    summary = RunSummary()
    for organization_id in usage_due():
        summary.processed += 1
        try:
            usage_reading_take(organization_id=organization_id, at=at)
            summary.changed += 1
        except ApplicationError as exc:
            summary.failed += 1
            summary.errors.append(f"organisation {organization_id}: {exc.message}")
        if progress is not None:
            progress(organization_id)
    audit_record(
        action="billing.usage.run",
        actor=actor,
        message=str(summary),
        outcome="success" if not summary.failed else "failure",
    )
    return summary


__all__ = [
    "ChangeResult",
    "LineInput",
    "ProviderSubscriptionState",
    "RunSummary",
    "credit_note_create",
    "customer_ensure",
    "dunning_due",
    "dunning_run",
    "invoice_draft_create",
    "invoice_dunning_step",
    "invoice_finalize",
    "invoice_mark_paid",
    "invoice_mark_uncollectible",
    "invoice_void",
    "payment_failure_record",
    "payment_record",
    "payment_refund",
    "renewals_due",
    "renewals_run",
    "subscription_cancel",
    "subscription_change",
    "subscription_create",
    "subscription_provider_sync",
    "subscription_renew",
    "usage_due",
    "usage_reading_take",
    "usage_readings_run",
]
