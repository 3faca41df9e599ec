"""Subscriptions: first invoice, plan and seat changes with proration, renewal, trials, cancellation."""

from __future__ import annotations

import datetime as dt

import pytest

from billing import selectors, services
from billing.models import Customer, Invoice, InvoiceLine, MrrMovement, Subscription, UsageReading
from ghostcrm.core.errors import Conflict, NotFound, ValidationError
from tests.billing.factories import ACTOR, T0, make_organization, make_plan

pytestmark = pytest.mark.django_db
HALF = dt.datetime(2026, 1, 16, 12, tzinfo=dt.UTC)  # exactly half of January (31 days) is left
FEB = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def subscribe(organization, plan_code: str, seats: int = 1, **kwargs):  # type: ignore[no-untyped-def]
    return services.subscription_create(
        organization_id=organization.pk, plan_code=plan_code, seats=seats, actor=ACTOR, at=T0, **kwargs
    )


def test_subscribing_invoices_the_first_period(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "basic")
    assert subscription.status == "active"
    assert (subscription.current_period_start, subscription.current_period_end) == (T0, FEB)
    invoice = Invoice.objects.get(subscription=subscription)
    assert invoice.billing_reason == "subscription_create"
    assert (invoice.number, invoice.status, invoice.total, invoice.amount_due) == ("GC-2026-000001", "open", 3000, 3000)
    assert invoice.due_date == T0 + dt.timedelta(days=14)
    customer = Customer.objects.get(organization=organization)
    assert customer.email == organization.admin_email
    assert list(MrrMovement.objects.values_list("kind", "delta")) == [("new", 3000)]


def test_mid_period_upgrade_creates_prorations_for_the_next_invoice(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "basic")
    preview = selectors.subscription_change_preview(
        subscription_id=subscription.pk, plan_code="pro", proration_behavior="create_prorations", at=HALF
    )
    # Unused half of 30.00 credited, remaining half of 90.00 charged, then February at 90.00.
    assert [line.amount for line in preview.lines] == [-1500, 4500, 9000]
    assert preview.total == 12000
    assert not preview.invoice_now
    assert InvoiceLine.objects.filter(invoice__isnull=True).count() == 0  # a preview writes nothing

    result = services.subscription_change(
        subscription_id=subscription.pk, plan_code="pro", proration_behavior="create_prorations", actor=ACTOR, at=HALF
    )
    assert result.invoice is None
    assert sorted(item.amount for item in result.pending_items) == [-1500, 4500]
    subscription.refresh_from_db()
    assert subscription.plan.code == "pro"
    assert subscription.current_period_end == FEB

    renewal = services.subscription_renew(subscription_id=subscription.pk, actor=ACTOR, at=FEB)
    assert renewal is not None
    assert sorted(renewal.lines.values_list("amount", flat=True)) == [-1500, 4500, 9000]
    assert renewal.total == preview.total == 12000
    assert renewal.number == "GC-2026-000002"
    assert InvoiceLine.objects.filter(invoice__isnull=True).count() == 0
    assert list(MrrMovement.objects.values_list("kind", "delta")) == [("new", 3000), ("expansion", 6000)]


def test_upgrade_invoiced_immediately_with_tax(organization, plans, vat) -> None:  # type: ignore[no-untyped-def]
    Customer.objects.create(organization=organization, email="billing@acme.example", tax_rate=vat)
    subscription = subscribe(organization, "basic")
    result = services.subscription_change(
        subscription_id=subscription.pk, plan_code="pro", proration_behavior="always_invoice", actor=ACTOR, at=HALF
    )
    invoice = result.invoice
    assert invoice is not None
    assert invoice.billing_reason == "subscription_update"
    lines = sorted(invoice.lines.values_list("amount", "tax_amount"))
    assert lines == [(-1500, -300), (4500, 900)]
    assert (invoice.subtotal, invoice.tax, invoice.total, invoice.status) == (3000, 600, 3600, "open")
    assert invoice.number == "GC-2026-000002"


def test_downgrade_leaves_a_credit_used_by_the_next_invoice(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "pro")
    result = services.subscription_change(
        subscription_id=subscription.pk, plan_code="basic", proration_behavior="always_invoice", actor=ACTOR, at=HALF
    )
    credit_invoice = result.invoice
    assert credit_invoice is not None
    assert (credit_invoice.total, credit_invoice.amount_due, credit_invoice.status) == (-3000, 0, "paid")
    customer = Customer.objects.get(organization=organization)
    assert (customer.balance, customer.balance_currency) == (-3000, "EUR")

    renewal = services.subscription_renew(subscription_id=subscription.pk, actor=ACTOR, at=FEB)
    assert renewal is not None
    assert (renewal.total, renewal.starting_balance, renewal.amount_due, renewal.status) == (3000, -3000, 0, "paid")
    customer.refresh_from_db()
    assert customer.balance == 0
    assert list(MrrMovement.objects.values_list("kind", "delta")) == [("new", 9000), ("contraction", -6000)]


def test_seat_change_prorates_per_seat_prices(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "seat", seats=5)
    assert Invoice.objects.get(subscription=subscription).total == 5000
    result = services.subscription_change(
        subscription_id=subscription.pk, seats=8, proration_behavior="always_invoice", actor=ACTOR, at=HALF
    )
    assert result.invoice is not None
    assert sorted(result.invoice.lines.values_list("quantity", "amount")) == [(5, -2500), (8, 4000)]
    assert result.invoice.total == 1500
    subscription.refresh_from_db()
    assert subscription.seats == 8
    assert selectors.subscription_mrr(subscription) == 8000


def test_no_proration_changes_the_price_from_the_next_period(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "basic")
    result = services.subscription_change(
        subscription_id=subscription.pk, plan_code="pro", proration_behavior="none", actor=ACTOR, at=HALF
    )
    assert result.invoice is None
    assert result.pending_items == []
    renewal = services.subscription_renew(subscription_id=subscription.pk, actor=ACTOR, at=FEB)
    assert renewal is not None
    assert renewal.total == 9000


def test_switching_to_yearly_resets_the_cycle_and_invoices_now(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "basic")
    result = services.subscription_change(
        subscription_id=subscription.pk,
        plan_code="yearly",
        proration_behavior="create_prorations",
        actor=ACTOR,
        at=HALF,
    )
    assert result.invoice is not None
    assert sorted(result.invoice.lines.values_list("amount", flat=True)) == [-1500, 120000]
    subscription.refresh_from_db()
    assert subscription.current_period_start == HALF
    assert subscription.current_period_end == dt.datetime(2027, 1, 16, 12, tzinfo=dt.UTC)
    assert selectors.subscription_mrr(subscription) == 10000  # 1,200.00 a year is 100.00 a month


def test_zero_decimal_currency_prorates_in_whole_yen(db) -> None:  # type: ignore[no-untyped-def]
    make_plan("yen-small", 1001, currency="JPY")
    make_plan("yen-large", 3003, currency="JPY")
    organization = make_organization()
    subscription = subscribe(organization, "yen-small")
    result = services.subscription_change(
        subscription_id=subscription.pk,
        plan_code="yen-large",
        proration_behavior="always_invoice",
        actor=ACTOR,
        at=HALF,
    )
    assert result.invoice is not None
    assert result.invoice.currency == "JPY"
    # 1001 / 2 = 500.5 -> 500 and 3003 / 2 = 1501.5 -> 1502: half-even, whole yen, per line.
    assert sorted(result.invoice.lines.values_list("amount", flat=True)) == [-500, 1502]
    assert result.invoice.total == 1002
    assert result.invoice.display("total") == "1\u202f002 JPY"


def test_a_change_across_currencies_is_refused(organization, plans) -> None:  # type: ignore[no-untyped-def]
    make_plan("usd", 5000, currency="USD")
    subscription = subscribe(organization, "basic")
    with pytest.raises(ValidationError) as caught:
        services.subscription_change(subscription_id=subscription.pk, plan_code="usd", actor=ACTOR, at=HALF)
    assert caught.value.code == "currency_mismatch"


def test_seats_below_usage_are_refused_and_nothing_is_written(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "seat", seats=8)
    UsageReading.objects.create(organization=organization, taken_at=T0, seats=6, contacts=10)
    with pytest.raises(ValidationError) as caught:
        services.subscription_change(
            subscription_id=subscription.pk, seats=5, proration_behavior="always_invoice", actor=ACTOR, at=HALF
        )
    assert caught.value.code == "seats_below_usage"
    assert "6 active users" in caught.value.message
    subscription.refresh_from_db()
    assert subscription.seats == 8
    assert Invoice.objects.count() == 1
    assert InvoiceLine.objects.filter(invoice__isnull=True).count() == 0
    with pytest.raises(ValidationError) as caught:
        services.subscription_change(subscription_id=subscription.pk, seats=51, actor=ACTOR, at=HALF)
    assert caught.value.code == "seat_limit"


def test_changing_a_canceled_subscription_is_refused(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "basic")
    services.subscription_cancel(subscription_id=subscription.pk, at_period_end=False, actor=ACTOR, at=HALF)
    with pytest.raises(Conflict) as caught:
        services.subscription_change(subscription_id=subscription.pk, plan_code="pro", actor=ACTOR, at=HALF)
    assert caught.value.code == "subscription_not_changeable"
    with pytest.raises(NotFound):
        services.subscription_change(subscription_id="8a6b1c7e-0000-4000-8000-000000000000", actor=ACTOR)
    with pytest.raises(ValidationError):
        services.subscription_change(subscription_id=subscription.pk, proration_behavior="sometimes", actor=ACTOR)


def test_renewal_is_idempotent(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "basic")
    first = services.subscription_renew(subscription_id=subscription.pk, actor=ACTOR, at=FEB)
    again = services.subscription_renew(subscription_id=subscription.pk, actor=ACTOR, at=FEB)
    summary = services.renewals_run(actor=ACTOR, at=FEB + dt.timedelta(hours=1))
    assert first is not None
    assert again is None
    assert summary.processed == 0
    renewals = Invoice.objects.filter(subscription=subscription, billing_reason="subscription_cycle")
    assert list(renewals.values_list("period_start", "number")) == [(FEB, "GC-2026-000002")]


def test_renewal_catches_up_every_missed_period(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscribe(organization, "basic")
    summary = services.renewals_run(actor=ACTOR, at=dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
    assert (summary.processed, summary.changed, summary.failed) == (1, 1, 0)
    starts = Invoice.objects.filter(billing_reason="subscription_cycle").order_by("period_start")
    assert [i.period_start.month for i in starts] == [2, 3, 4]
    assert [i.number for i in starts] == ["GC-2026-000002", "GC-2026-000003", "GC-2026-000004"]


def test_trial_turns_into_a_paying_subscription_at_its_end(organization) -> None:  # type: ignore[no-untyped-def]
    make_plan("trial", 5000, trial_days=14)
    subscription = subscribe(organization, "trial")
    assert subscription.status == "trialing"
    assert not Invoice.objects.exists()
    assert selectors.subscription_mrr(subscription) == 0
    invoice = services.subscription_renew(subscription_id=subscription.pk, actor=ACTOR, at=T0 + dt.timedelta(days=14))
    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert subscription.started_at == T0 + dt.timedelta(days=14)
    assert invoice is not None
    assert invoice.total == 5000
    assert invoice.period_start == T0 + dt.timedelta(days=14)


def test_cancel_at_period_end_ends_without_an_invoice(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "basic")
    services.subscription_cancel(subscription_id=subscription.pk, actor=ACTOR, at=HALF)
    assert services.subscription_renew(subscription_id=subscription.pk, actor=ACTOR, at=FEB) is None
    subscription.refresh_from_db()
    assert (subscription.status, subscription.ended_at) == ("canceled", FEB)
    assert Invoice.objects.count() == 1
    assert list(MrrMovement.objects.values_list("kind", "delta")) == [("new", 3000), ("churn", -3000)]


def test_per_seat_renewal_bills_the_latest_usage_reading(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscription = subscribe(organization, "seat", seats=3)
    UsageReading.objects.create(organization=organization, taken_at=HALF, seats=5, contacts=0)
    invoice = services.subscription_renew(subscription_id=subscription.pk, actor=ACTOR, at=FEB)
    assert invoice is not None
    assert invoice.total == 5000
    assert invoice.lines.get().quantity == 5
    subscription.refresh_from_db()
    assert subscription.seats == 5


def test_one_current_subscription_per_customer(organization, plans) -> None:  # type: ignore[no-untyped-def]
    subscribe(organization, "basic")
    with pytest.raises(Conflict):
        subscribe(organization, "pro")
    assert Subscription.objects.count() == 1


@pytest.mark.django_db
def test_a_malformed_subscription_id_is_not_found() -> None:
    with pytest.raises(NotFound, match="There is no subscription not-a-uuid"):
        selectors.subscription_get(subscription_id="not-a-uuid")
