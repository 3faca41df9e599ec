"""What every billing service shares: the clock, validated saves, the invoice e-mail context,
the invoice lock and the summary of a batch run.

"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from billing.models import Invoice
from billing.money import format_money
from ghostcrm.core.errors import NotFound, full_clean_or_raise


def now_or(at: dt.datetime | None) -> dt.datetime:
    return at or timezone.now()


def clean_save(obj: Any, **save_kwargs: Any) -> None:
    """``full_clean`` then ``save``; model validation errors become our ValidationError with the fields."""
    full_clean_or_raise(obj)
    obj.save(**save_kwargs)


def invoice_email_context(invoice: Invoice) -> dict[str, Any]:
    return {
        "invoice": invoice,
        "number": invoice.number or "draft",
        "total": format_money(invoice.total, invoice.currency),
        "amount_remaining": format_money(invoice.amount_remaining, invoice.currency),
        "due_date": invoice.due_date,
    }


def invoice_lock(invoice_id: uuid.UUID | str) -> Invoice:
    invoice = Invoice.objects.select_for_update().filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound(f"There is no invoice {invoice_id}.", code="invoice_not_found")
    return invoice


@dataclass
class RunSummary:
    processed: int = 0
    changed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.processed} processed, {self.changed} changed, {self.failed} failed"
