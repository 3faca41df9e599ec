"""The billing rules the admin used to hold, now the services': the same refusal, with a stable code, for every
caller (the admin's forms show these sentences: ``test_admin.py`` checks them through the pages)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from billing import selectors, services
from billing.models import Invoice, InvoiceLine, Plan, Subscription
from billing.pricing import Tier
from billing.services import catalogue
from billing.services.subscriptions import PREVIEW_VALID_FOR, proration_date_check
from ghostcrm.core.errors import ValidationError
from tests.billing.factories import ACTOR, T0, TaxRateFactory, make_organization, make_plan

pytestmark = pytest.mark.django_db


def subscribed(plan_code: str = "basic") -> Subscription:
    return services.subscription_create(organization_id=make_organization().pk, plan_code=plan_code, actor=ACTOR, at=T0)


def test_a_plan_price_is_free_until_subscribed_then_fixed() -> None:
    plan = make_plan("basic", 3_000)
    plan.unit_amount, plan.interval = 3_500, "year"
    catalogue.plan_price_check(plan=plan)  # nobody uses it yet: any price

    subscribed()
    for name, value in (("unit_amount", 3_500), ("interval", "year"), ("currency", "USD"), ("scheme", "per_seat")):
        plan = Plan.objects.get(code="basic")
        setattr(plan, name, value)
        with pytest.raises(ValidationError) as caught:
            catalogue.plan_price_check(plan=plan)
        assert caught.value.code == "plan_in_use"
        assert "its price cannot change" in caught.value.message
    plan = Plan.objects.get(code="basic")
    plan.name, plan.seat_limit, plan.trial_days = "Basic 2027", 20, 14
    catalogue.plan_price_check(plan=plan)  # name, limits and trial are not the price


def test_tier_rules() -> None:
    tiered = make_plan("team", 0, scheme="tiered", tiers_mode="volume", tiers=[(10, 1_250, 0), (None, 999, 0)])
    stored = [Tier(10, 1_250, 0), Tier(None, 999, 0)]
    catalogue.plan_tiers_check(plan=tiered, tiers=stored)
    for tiers, code in (
        ([Tier(10, 1_250, 0), Tier(20, 999, 0)], "tiers_unbounded"),  # no unbounded tier
        ([Tier(None, 1_250, 0), Tier(None, 999, 0)], "tiers_unbounded"),  # two
        ([], "tiers_unbounded"),
    ):
        with pytest.raises(ValidationError) as caught:
            catalogue.plan_tiers_check(plan=tiered, tiers=tiers)
        assert caught.value.code == code
    flat = make_plan("flat", 3_000)
    with pytest.raises(ValidationError) as caught:
        catalogue.plan_tiers_check(plan=flat, tiers=stored)
    assert caught.value.code == "tiers_not_tiered"

    subscribed("team")
    catalogue.plan_tiers_check(plan=tiered, tiers=stored)  # the same tiers: fine
    with pytest.raises(ValidationError) as caught:
        catalogue.plan_tiers_check(plan=tiered, tiers=[Tier(10, 1_300, 0), Tier(None, 999, 0)])
    assert caught.value.code == "plan_in_use"
    assert caught.value.message.startswith("Tiers: ")


def test_a_tax_rate_keeps_its_percentage_once_invoices_carry_it() -> None:
    make_plan("basic", 3_000)
    subscription = subscribed()
    rate = TaxRateFactory(percentage="20")
    catalogue.tax_rate_check(rate=rate, percentage=Decimal("19"))  # unused: may change
    InvoiceLine.objects.filter(invoice__subscription=subscription).update(tax_rate=rate)
    catalogue.tax_rate_check(rate=rate, percentage=Decimal("20.0000"))  # the same value typed differently
    with pytest.raises(ValidationError) as caught:
        catalogue.tax_rate_check(rate=rate, percentage=Decimal("21"))
    assert caught.value.code == "tax_rate_in_use"


def test_a_one_off_invoice_takes_the_live_subscriptions_currency() -> None:
    organization = make_organization()
    line = [services.LineInput(description="Setup", amount="10.00")]
    with pytest.raises(ValidationError) as caught:
        services.invoice_draft_create(organization_id=organization.pk, currency=None, lines=line, actor=ACTOR)
    assert caught.value.code == "currency_required"
    assert not Invoice.objects.exists()

    make_plan("yen", 5_000, currency="JPY")
    services.subscription_create(organization_id=organization.pk, plan_code="yen", actor=ACTOR, at=T0)
    yen_line = [services.LineInput(description="Setup", amount="1000")]
    draft = services.invoice_draft_create(organization_id=organization.pk, currency="", lines=yen_line, actor=ACTOR)
    assert draft.currency == "JPY"
    assert services.invoice_currency(organization_id=organization.pk, currency=" usd ") == "USD"
    with pytest.raises(ValidationError) as caught:
        services.invoice_currency(organization_id=organization.pk, currency="XYZ")
    assert caught.value.code == "unknown_currency"


def test_a_confirmed_preview_must_be_recent() -> None:
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    assert proration_date_check(now - PREVIEW_VALID_FOR, now=now) == now - PREVIEW_VALID_FOR
    for moment, code in (
        (now - PREVIEW_VALID_FOR - dt.timedelta(seconds=1), "preview_expired"),
        (now + dt.timedelta(seconds=1), "preview_expired"),
        (dt.datetime(2026, 3, 1, 11, 30), "preview_invalid"),  # naive
    ):
        with pytest.raises(ValidationError) as caught:
            proration_date_check(moment, now=now)
        assert caught.value.code == code

    make_plan("basic", 3_000)
    make_plan("pro", 9_000)
    subscription = subscribed()
    later = T0 + dt.timedelta(days=10)
    with pytest.raises(ValidationError):
        services.subscription_change(
            subscription_id=subscription.pk, plan_code="pro", actor=ACTOR, at=later,
            proration_date=later - dt.timedelta(hours=2),
        )  # fmt: skip
    assert Subscription.objects.get(pk=subscription.pk).plan.code == "basic"
    result = services.subscription_change(
        subscription_id=subscription.pk, plan_code="pro", proration_behavior="always_invoice", actor=ACTOR,
        at=later, proration_date=later - dt.timedelta(minutes=20),
    )  # fmt: skip
    assert result.invoice is not None
    assert result.invoice.lines.filter(period_start=later - dt.timedelta(minutes=20)).count() == 2


def test_a_drafts_total_is_what_finalising_stores() -> None:
    organization = make_organization()
    rate = TaxRateFactory(percentage="20")
    draft = services.invoice_draft_create(
        organization_id=organization.pk, currency="EUR", tax_rate_id=rate.pk, actor=ACTOR,
        lines=[services.LineInput(description="Setup", amount="10.05"),
               services.LineInput(description="Training", amount="2.50", quantity=3)],
    )  # fmt: skip
    assert selectors.invoice_total(draft) == 1_005 + 201 + 750 + 150
    finalised = services.invoice_finalize(invoice_id=draft.pk, actor=ACTOR, at=T0)
    assert (finalised.subtotal, finalised.tax, finalised.total) == (1_755, 351, selectors.invoice_total(draft))
    assert selectors.invoice_total(finalised) == finalised.total
