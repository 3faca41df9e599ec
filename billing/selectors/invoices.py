"""Invoices read: totals, the actions a state allows, refundable payments, the printable document."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError as DjangoValidationError

from billing.models import (
    CreditNote,
    Invoice,
    InvoiceLine,
    Payment,
)
from ghostcrm.core.errors import NotFound
from ghostcrm.core.system_settings import setting_value


def lines_totals(lines: Iterable[InvoiceLine]) -> tuple[int, int, int]:
    """(subtotal, tax, total) of invoice lines: what finalising an invoice stores, and what a draft comes to."""
    subtotal = tax = 0
    for line in lines:
        subtotal, tax = subtotal + line.amount, tax + line.tax_amount
    return subtotal, tax, subtotal + tax


def invoice_total(invoice: Invoice) -> int:
    """What the invoice comes to: stored once finalised; a draft's is computed from its lines, as finalising
    will."""
    if invoice.status != Invoice.Status.DRAFT:
        return invoice.total
    return lines_totals(invoice.lines.all())[2]


def invoice_actions(invoice: Invoice) -> list[str]:
    """The actions the invoice's state allows, in the order its page shows them: a draft is finalised or voided;
    an open invoice is marked paid, credited, voided (while it has no payments) or written off; a settled
    one has none (a paid invoice is refunded through its payments, ``refundable_payments``)."""
    if invoice.status == Invoice.Status.DRAFT:
        return ["finalize", "void"]
    if invoice.status == Invoice.Status.OPEN:
        return ["mark_paid", "credit_note", *(["void"] if invoice.amount_paid == 0 else []), "mark_uncollectible"]
    return []


def refundable_payments(invoice: Invoice) -> list[Payment]:
    """The invoice's successful payments with something left to refund, oldest first."""
    payments = invoice.payments.filter(status=Payment.Status.SUCCEEDED).order_by("created_at", "id")
    return [payment for payment in payments if payment.amount > payment.amount_refunded]


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
