"""Document numbers: gap-free per year, taken inside the transaction that uses them."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import DocumentCounter
from ghostcrm.core.system_settings import setting_value


def document_year(at: dt.datetime) -> int:
    """The numbering year of a document finalised at ``at``: the UTC calendar year (the printed dates are UTC
    too), so 31 Dec 23:59:59 UTC is the old year and 1 Jan 00:00 UTC the new one, whatever zone ``at`` is in."""
    if timezone.is_naive(at):
        raise ValueError("document dates must be timezone-aware")
    return at.astimezone(dt.UTC).year


def document_number_next(*, kind: str, year: int) -> str:
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
