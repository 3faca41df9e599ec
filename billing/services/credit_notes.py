"""Credit notes that reduce what an open invoice still asks for."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import transaction
from django.http import HttpRequest

from billing.models import CreditNote, Invoice
from billing.money import format_money
from billing.services.common import clean_save, invoice_lock, now_or
from billing.services.dunning import invoice_settled_after
from billing.services.numbering import document_number_next, document_year
from ghostcrm.audit.services import Actor, audit_record, model_snapshot
from ghostcrm.core.errors import Conflict, ValidationError


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
    at = now_or(at)
    invoice = invoice_lock(invoice_id)
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
        number=document_number_next(kind="CN", year=document_year(at)),
        invoice=invoice,
        amount=amount,
        currency=invoice.currency,
        reason=reason.strip(),
    )
    clean_save(note)
    invoice.amount_credited += amount
    if invoice.amount_remaining == 0:
        invoice.status, invoice.paid_at, invoice.next_payment_attempt = Invoice.Status.PAID, at, None
    clean_save(invoice)
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
        invoice_settled_after(request=request, invoice=invoice, actor=actor, at=at)
    return note
