"""The catalogue's rules: what a plan, its tiers and a tax rate may be, and what may no longer change.

The admin's forms call these before saving, and so does any other caller that edits the catalogue, so every
path refuses the same things with the same sentences (``ValidationError`` with a stable code).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from billing.models import InvoiceLine, Plan, PlanTier, Subscription, TaxRate
from billing.pricing import Tier
from ghostcrm.core.errors import ValidationError

PLAN_IN_USE = (
    "subscriptions use this plan: its price cannot change (the MRR ledger and issued invoices rely on it). "
    "Create a new plan and move the subscriptions with 'Change plan or seats'."
)
# The fields that make a plan's price, like a Stripe Price's: fixed once subscribed to.
PRICE_FIELDS = ("currency", "interval", "scheme", "tiers_mode", "unit_amount")


def plan_in_use(plan: Plan) -> bool:
    return bool(plan.pk) and Subscription.objects.filter(plan_id=plan.pk).exists()


def plan_price_check(*, plan: Plan) -> None:
    """Refuse a change to the price of a plan that subscriptions use (name, limits and trial may change)."""
    if not plan_in_use(plan):
        return
    stored = Plan.objects.get(pk=plan.pk)
    if any(getattr(stored, name) != getattr(plan, name) for name in PRICE_FIELDS):
        raise ValidationError(f"Price: {PLAN_IN_USE}", code="plan_in_use")


def plan_tiers_check(*, plan: Plan, tiers: Sequence[Tier]) -> None:
    """A tiered plan has tiers, exactly one of them unbounded; other schemes have none; a plan in use keeps
    the tiers it has."""
    if plan_in_use(plan):
        typed = {(tier.up_to, tier.unit_amount, tier.flat_amount) for tier in tiers}
        stored = set(PlanTier.objects.filter(plan_id=plan.pk).values_list("up_to", "unit_amount", "flat_amount"))
        if typed != stored:
            raise ValidationError(f"Tiers: {PLAN_IN_USE}", code="plan_in_use")
    if plan.scheme == Plan.Scheme.TIERED:
        if sum(1 for tier in tiers if tier.up_to is None) != 1:
            raise ValidationError(
                "A tiered plan needs tiers, exactly one of them without 'up to' (the last, unbounded tier).",
                code="tiers_unbounded",
            )
    elif tiers:
        raise ValidationError(
            "Only tiered plans have tiers; delete them or choose the tiered scheme.", code="tiers_not_tiered"
        )


def tax_rate_check(*, rate: TaxRate, percentage: Decimal) -> None:
    """A rate that invoices already carry keeps its percentage: issued invoices print the rate by reference,
    so changing it would rewrite them."""
    if not rate.pk or not InvoiceLine.objects.filter(tax_rate_id=rate.pk).exists():
        return
    stored = TaxRate.objects.get(pk=rate.pk).percentage
    if Decimal(stored) != Decimal(percentage):
        raise ValidationError(
            "Invoices already carry this rate, so its percentage cannot change. "
            "Deactivate it and create a new rate for the customers concerned.",
            code="tax_rate_in_use",
        )
