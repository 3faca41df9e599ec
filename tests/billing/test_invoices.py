"""Invoices: proration to the second, tiered plans end to end, numbering at the year boundary, credit notes,
over-payment and over-refund, and the printable invoice with everything a legal invoice carries."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError

from billing import selectors, services
from billing.models import CreditNote, Customer, Invoice, Payment, TaxRate
from ghostcrm.audit.models import AuditEvent
from ghostcrm.core.errors import Conflict, ValidationError
from ghostcrm.core.models import SystemSetting
from tests.billing.factories import ACTOR, T0, make_organization, make_plan

pytestmark = pytest.mark.django_db
UTC = dt.UTC
HALF = dt.datetime(2026, 1, 16, 12, tzinfo=UTC)


def subscribe(plan_code: str, seats: int = 1, **kwargs: Any) -> Any:
    organization = kwargs.pop("organization", None) or make_organization()
    return services.subscription_create(
        organization_id=organization.pk, plan_code=plan_code, seats=seats, actor=ACTOR, at=T0, **kwargs
    )


def test_proration_is_to_the_second(plans: Any) -> None:
    """January 2026 has 31 x 86,400 = 2,678,400 seconds. At 20 Jan 08:30:15 there remain 11 days 15:29:45
    = 950,400 + 54,000 + 1,740 + 45 = 1,006,185 seconds.

    Credit on basic:  3,000 x 1,006,185 / 2,678,400 =       1,126.9993 ->     -1,127
    Charge on big:   10,000,000 x 1,006,185 / 2,678,400 = 3,756,664.43 -> 3,756,664
    One second later (1,006,184 s) the charge would be 3,756,660.69 -> 3,756,661; by whole days (11/31 or
    12/31) it would be 3,548,387 or 3,870,968: the figures below can only come from per-second proration.
    """
    make_plan("big", 10_000_000)
    subscription = subscribe("basic")
    at = dt.datetime(2026, 1, 20, 8, 30, 15, tzinfo=UTC)
    result = services.subscription_change(
        subscription_id=subscription.pk, plan_code="big", proration_behavior="always_invoice", actor=ACTOR, at=at
    )
    assert result.invoice is not None
    assert sorted(result.invoice.lines.values_list("amount", flat=True)) == [-1127, 3_756_664]
    assert result.invoice.total == 3_755_537

    later = subscribe("basic")
    preview = selectors.subscription_change_preview(
        subscription_id=later.pk, plan_code="big", proration_behavior="always_invoice", at=at + dt.timedelta(seconds=1)
    )
    assert sorted(line.amount for line in preview.lines) == [-1127, 3_756_661]


@pytest.fixture
def tiered(db: Any) -> None:
    tiers = [(5, 1000, 0), (10, 800, 500), (None, 600, 0)]  # 10.00 up to 5, 8.00 (+5.00 once) up to 10, then 6.00
    make_plan("grad", 0, scheme="tiered", tiers_mode="graduated", tiers=tiers)
    make_plan("vol-year", 0, scheme="tiered", tiers_mode="volume", tiers=tiers, interval="year")


def test_graduated_tiers_on_an_invoice_with_tax_and_a_seat_change(tiered: None, vat: TaxRate) -> None:
    """12 seats, graduated: 5 x 10.00 + 5 x 8.00 + 5.00 (tier flat fee) + 2 x 6.00 = 107.00; VAT 20% = 21.40.
    Down to 7 seats at mid-January: credit 107.00 / 2 = 53.50; 7 seats = 5 x 10.00 + 2 x 8.00 + 5.00 = 71.00,
    charged 35.50."""
    organization = make_organization()
    Customer.objects.create(organization=organization, email="ap@acme.example", tax_rate=vat)
    subscription = subscribe("grad", seats=12, organization=organization)
    invoice = Invoice.objects.get(subscription=subscription)
    assert (invoice.subtotal, invoice.tax, invoice.total) == (10_700, 2_140, 12_840)
    assert invoice.lines.get().quantity == 12
    assert selectors.subscription_mrr(subscription) == 10_700

    result = services.subscription_change(
        subscription_id=subscription.pk, seats=7, proration_behavior="always_invoice", actor=ACTOR, at=HALF
    )
    assert result.invoice is not None
    assert sorted(result.invoice.lines.values_list("quantity", "amount", "tax_amount")) == [
        (7, 3_550, 710),
        (12, -5_350, -1_070),
    ]


def test_volume_tiers_on_a_yearly_plan_count_a_twelfth_of_mrr(tiered: None) -> None:
    """12 seats, volume: every seat at the third tier, 12 x 6.00 = 72.00 a year; MRR 6.00."""
    subscription = subscribe("vol-year", seats=12)
    assert Invoice.objects.get(subscription=subscription).total == 7_200
    assert selectors.subscription_mrr(subscription) == 600


def finalize_draft(at: dt.datetime) -> Invoice:
    draft = services.invoice_draft_create(
        organization_id=make_organization().pk,
        currency="EUR",
        lines=[services.LineInput(description="Setup", amount="100.00")],
        actor=ACTOR,
    )
    return services.invoice_finalize(invoice_id=draft.pk, actor=ACTOR, at=at)


def test_numbering_year_is_the_utc_year_of_finalisation() -> None:
    new_york = dt.timezone(dt.timedelta(hours=-5))
    tokyo = dt.timezone(dt.timedelta(hours=9))
    numbers = [
        finalize_draft(dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)).number,
        finalize_draft(dt.datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC)).number,
        finalize_draft(dt.datetime(2026, 12, 31, 20, 0, tzinfo=new_york)).number,  # 1 Jan 2027 01:00 UTC
        finalize_draft(dt.datetime(2027, 1, 1, 8, 59, 59, tzinfo=tokyo)).number,  # 31 Dec 2026 23:59:59 UTC
    ]
    assert numbers == ["GC-2026-000001", "GC-2027-000001", "GC-2027-000002", "GC-2026-000002"]


def test_credit_notes_are_numbered_per_year_and_reduce_what_is_due() -> None:
    invoice = finalize_draft(dt.datetime(2026, 12, 20, tzinfo=UTC))  # 100.00 EUR, open
    first = services.credit_note_create(
        invoice_id=invoice.pk,
        amount=2_500,
        reason="Late delivery",
        actor=ACTOR,
        at=dt.datetime(2026, 12, 31, 23, tzinfo=UTC),
    )
    invoice.refresh_from_db()
    assert (first.number, invoice.amount_credited, invoice.amount_remaining, invoice.status) == (
        "GC-CN-2026-000001", 2_500, 7_500, "open"
    )  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        services.credit_note_create(invoice_id=invoice.pk, amount=7_501, reason="too much", actor=ACTOR)
    assert caught.value.code == "over_credit"
    with pytest.raises(ValidationError) as caught:
        services.payment_record(invoice_id=invoice.pk, amount=7_501, actor=ACTOR)
    assert caught.value.code == "overpayment"
    assert "75.00 EUR still due" in caught.value.message

    second = services.credit_note_create(
        invoice_id=invoice.pk, amount=7_500, reason="Waived", actor=ACTOR, at=dt.datetime(2027, 1, 1, tzinfo=UTC)
    )
    invoice.refresh_from_db()
    assert second.number == "GC-CN-2027-000001"
    assert (invoice.status, invoice.amount_remaining, invoice.amount_paid) == ("paid", 0, 0)
    assert Payment.objects.count() == 0
    with pytest.raises(Conflict):
        services.credit_note_create(invoice_id=invoice.pk, amount=1, reason="again", actor=ACTOR)


def test_a_refund_never_exceeds_what_is_left_of_the_payment() -> None:
    invoice = finalize_draft(dt.datetime(2026, 3, 1, tzinfo=UTC))
    payment = services.invoice_mark_paid(invoice_id=invoice.pk, actor=ACTOR)
    services.payment_refund(payment_id=payment.pk, amount=6_000, reason="partial", actor=ACTOR)
    with pytest.raises(ValidationError) as caught:
        services.payment_refund(payment_id=payment.pk, amount=4_001, reason="too much", actor=ACTOR)
    assert caught.value.code == "over_refund"
    assert "40.00 EUR left to refund" in caught.value.message
    rest = services.payment_refund(payment_id=payment.pk, reason="the rest", actor=ACTOR)  # no amount: the rest
    payment.refresh_from_db()
    assert (rest.amount, payment.amount_refunded) == (4_000, 10_000)
    assert list(CreditNote.objects.order_by("number").values_list("amount", flat=True)) == [6_000, 4_000]
    with pytest.raises(ValidationError):
        services.payment_refund(payment_id=payment.pk, amount=1, reason="nothing left", actor=ACTOR)


def test_an_overpayment_collected_by_a_provider_becomes_customer_credit() -> None:
    invoice = finalize_draft(dt.datetime(2026, 3, 1, tzinfo=UTC))
    services.credit_note_create(invoice_id=invoice.pk, amount=1_000, reason="goodwill", actor=ACTOR)
    payment = services.payment_record(
        invoice_id=invoice.pk, amount=10_000, actor=ACTOR, provider_reference="pi_over", excess_to_credit=True
    )
    invoice.refresh_from_db()
    customer = Customer.objects.get(pk=invoice.customer_id)
    assert (payment.amount, invoice.amount_paid, invoice.status) == (9_000, 9_000, "paid")
    assert (customer.balance, customer.balance_currency) == (-1_000, "EUR")
    event = AuditEvent.objects.get(action="billing.customer.credit")
    assert "10.00 EUR credit: overpayment of GC-2026-000001 (pi_over)" in event.message

    following = services.invoice_draft_create(
        organization_id=customer.organization_id,
        currency="EUR",
        lines=[services.LineInput(description="Extra", amount="25.00")],
        actor=ACTOR,
    )
    following = services.invoice_finalize(invoice_id=following.pk, actor=ACTOR, at=dt.datetime(2026, 4, 1, tzinfo=UTC))
    assert (following.starting_balance, following.amount_due) == (-1_000, 1_500)


def test_the_printable_invoice_carries_what_a_legal_invoice_needs(admin_session: Any, vat: TaxRate) -> None:
    SystemSetting.objects.create(key="billing.seller_name", value="GhostCRM SAS")
    SystemSetting.objects.create(key="billing.seller_address", value="1 rue de la Paix\n75002 Paris, France")
    SystemSetting.objects.create(key="billing.seller_tax_id", value="FR12345678901")
    organization = make_organization(name="Initech")
    Customer.objects.create(
        organization=organization, email="ap@initech.example", name="Initech SARL", address="5 Main St\nLyon",
        tax_rate=vat,
    )  # fmt: skip
    draft = services.invoice_draft_create(
        organization_id=organization.pk,
        currency="EUR",
        lines=[
            services.LineInput(description="Onboarding day", amount="400.00", quantity=2),
            services.LineInput(description="Data import", amount="150.00"),
        ],
        actor=ACTOR,
    )
    invoice = services.invoice_finalize(invoice_id=draft.pk, actor=ACTOR, at=dt.datetime(2026, 5, 4, 10, tzinfo=UTC))
    note = services.credit_note_create(invoice_id=invoice.pk, amount=5_000, reason="Discount agreed", actor=ACTOR)
    services.payment_record(invoice_id=invoice.pk, amount=100_000, actor=ACTOR)

    html = admin_session.get(f"/billing/invoices/{invoice.pk}/print/").content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    for expected in (
        "GhostCRM SAS", "1 rue de la Paix", "75002 Paris, France", "Tax ID: FR12345678901",  # seller
        "Initech SARL (Initech)", "5 Main St", "Lyon", "ap@initech.example",  # buyer
        "Invoice number GC-2026-000001", "Issue date 4 May 2026", "Due date 18 May 2026", "Currency EUR",
        "Onboarding day 2 400.00 EUR VAT 20% 160.00 EUR 800.00 EUR",  # qty, unit price, rate, tax, amount
        "Data import 1 150.00 EUR VAT 20% 30.00 EUR 150.00 EUR",
        "Subtotal (excl. tax) 950.00 EUR", "VAT 20% on 950.00 EUR 190.00 EUR", "Total tax 190.00 EUR",
        "Total (EUR) 1 140.00 EUR", "Credit notes -50.00 EUR", "Paid -1 000.00 EUR",  # \s also matched the thin spaces
        "Amount remaining 90.00 EUR",
        f"{note.number}", "Discount agreed", "50.00 EUR",
    ):  # fmt: skip
        assert expected in text, expected
    assert admin_session.get("/billing/invoices/8a6b1c7e-0000-4000-8000-000000000000/print/").status_code == 404


def test_the_seller_name_cannot_be_emptied() -> None:
    with pytest.raises(DjangoValidationError, match="names its seller"):
        SystemSetting(key="billing.seller_name", value="  ").full_clean()


@pytest.mark.parametrize(("percentage", "shown"), [("20.0000", "VAT 20%"), ("5.5000", "VAT 5.5%"), ("0", "VAT 0%")])
def test_a_tax_rate_prints_its_percentage_plainly(percentage: str, shown: str) -> None:
    assert str(TaxRate.objects.create(name="VAT", percentage=percentage)) == shown
