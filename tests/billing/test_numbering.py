"""Invoice numbers are sequential per year with no duplicates and no gaps, even under concurrent finalisation.

Real threads, each with its own database connection, committing for real (``transaction=True``), on
PostgreSQL (the same ``SELECT ... FOR UPDATE`` is ``WITH (UPDLOCK, ROWLOCK)`` on SQL Server).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections

from billing import services
from billing.models import DocumentCounter, Invoice
from billing.services import invoices as invoices_module
from tests.billing.factories import ACTOR, T0, make_organization, make_plan

# SQLite's in-memory test database answers concurrent writers with "table is locked" instead of waiting, so
# these run on a server database (the `make test-sqlite` run leaves `server_db` out).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.server_db]


def run_concurrently(calls: list[Callable[[], Any]]) -> list[Any]:
    """Start every call at the same moment on its own thread and connection; return results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except Exception as exc:  # collected and asserted on by the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker did not finish within 120 s"
    return results


def drafts(count: int) -> list[Invoice]:
    organizations = [make_organization() for _ in range(3)]
    return [
        services.invoice_draft_create(
            organization_id=organizations[i % 3].pk,
            currency="EUR",
            lines=[services.LineInput(description=f"Setup {i}", amount="100.00")],
            actor=ACTOR,
        )
        for i in range(count)
    ]


def test_concurrent_finalisation_gives_gap_free_unique_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    invoices = drafts(12)
    doomed = invoices[5].pk
    real_send = invoices_module.billing_email_send

    def send_or_fail(**kwargs: Any) -> None:
        # Fails after the number was taken, inside the finalising transaction: the number must come back.
        if kwargs["context"]["invoice"].pk == doomed:
            raise RuntimeError("mail system exploded")
        real_send(**kwargs)

    monkeypatch.setattr(invoices_module, "billing_email_send", send_or_fail)
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    results = run_concurrently(
        [lambda pk=invoice.pk: services.invoice_finalize(invoice_id=pk, actor=ACTOR, at=at) for invoice in invoices]
    )
    failures = [r for r in results if isinstance(r, Exception)]
    assert len(failures) == 1
    assert "exploded" in str(failures[0])

    numbers = sorted(Invoice.objects.exclude(number__isnull=True).values_list("number", flat=True))
    assert numbers == [f"GC-2026-{n:06d}" for n in range(1, 12)]  # 11 finalised: 1..11, no gap, no duplicate
    assert Invoice.objects.get(pk=doomed).status == "draft"
    assert Invoice.objects.get(pk=doomed).number is None
    assert DocumentCounter.objects.get(kind="INV", year=2026).last_number == 11

    # The rolled-back invoice finalised later takes the next number, still without a gap.
    monkeypatch.setattr(invoices_module, "billing_email_send", real_send)
    assert services.invoice_finalize(invoice_id=doomed, actor=ACTOR, at=at).number == "GC-2026-000012"


def test_numbers_restart_each_year() -> None:
    first, second = drafts(2)
    a = services.invoice_finalize(invoice_id=first.pk, actor=ACTOR, at=dt.datetime(2026, 12, 31, 23, tzinfo=dt.UTC))
    b = services.invoice_finalize(invoice_id=second.pk, actor=ACTOR, at=dt.datetime(2027, 1, 1, 1, tzinfo=dt.UTC))
    assert (a.number, b.number) == ("GC-2026-000001", "GC-2027-000001")


def test_concurrent_renewals_make_one_invoice() -> None:
    make_plan("basic", 3000)
    organization = make_organization()
    subscription = services.subscription_create(organization_id=organization.pk, plan_code="basic", actor=ACTOR, at=T0)
    feb = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    results = run_concurrently(
        [lambda: services.subscription_renew(subscription_id=subscription.pk, actor=ACTOR, at=feb) for _ in range(4)]
    )
    assert not [r for r in results if isinstance(r, Exception)]
    renewals = Invoice.objects.filter(subscription=subscription, billing_reason="subscription_cycle")
    assert renewals.count() == 1
    assert sorted(Invoice.objects.values_list("number", flat=True)) == ["GC-2026-000001", "GC-2026-000002"]
