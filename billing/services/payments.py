"""Payments against invoices, failed attempts reported by the provider, and refunds (with their credit note)."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import transaction
from django.http import HttpRequest

from billing.emails import billing_email_send
from billing.models import CreditNote, Invoice, Payment, Refund
from billing.money import format_money, to_stripe_amount
from billing.services.common import clean_save, invoice_email_context, invoice_lock, now_or
from billing.services.customers import customer_credit_add
from billing.services.dunning import invoice_settled_after
from billing.services.numbering import document_number_next, document_year
from billing.stripe_client import StripeGateway, after_commit_call, stripe_enabled
from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import Conflict, NotFound, ValidationError


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
    at = now_or(at)
    invoice = invoice_lock(invoice_id)
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
    clean_save(payment)
    before = model_snapshot(invoice)
    invoice.amount_paid += amount
    if invoice.amount_remaining == 0:
        invoice.status, invoice.paid_at, invoice.next_payment_attempt = Invoice.Status.PAID, at, None
    clean_save(invoice)
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
        billing_email_send(customer=invoice.customer, kind="invoice_paid", context=invoice_email_context(invoice))
        invoice_settled_after(request=request, invoice=invoice, actor=actor, at=at)
    if excess:  # after the subscription: the lock order is invoice, subscription, customer everywhere
        customer_credit_add(
            request=request,
            customer_id=invoice.customer_id,
            amount=excess,
            currency=invoice.currency,
            actor=actor,
            message=f"overpayment of {invoice} ({provider_reference or method})",
        )
    return payment


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
    invoice = invoice_lock(invoice_id)
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
    clean_save(payment)
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
    clean_save(refund)
    payment.amount_refunded += amount
    payment.save(update_fields=["amount_refunded"])
    invoice = Invoice.objects.select_for_update().get(pk=payment.invoice_id)
    note = CreditNote(
        number=document_number_next(kind="CN", year=document_year(now_or(at))),
        invoice=invoice,
        amount=amount,
        currency=payment.currency,
        reason=refund.reason,
        refund=refund,
    )
    clean_save(note)
    audit_record(
        request=request, action="billing.payment.refund", actor=actor, target=refund, after=model_snapshot(refund)
    )
    audit_record(
        request=request, action="billing.credit_note.create", actor=actor, target=note, after=model_snapshot(note)
    )
    billing_email_send(
        customer=invoice.customer,
        kind="refund_issued",
        context={**invoice_email_context(invoice), "refund_amount": format_money(amount, refund.currency)},
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
