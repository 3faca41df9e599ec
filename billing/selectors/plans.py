"""Plans, prices, seats and usage: what a subscription costs and may have."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError as DjangoValidationError

from billing.models import (
    Plan,
    Subscription,
    UsageReading,
)
from billing.money import round_minor
from billing.pricing import (
    Tier,
    monthly_amount,
    plan_period_amount,
)
from ghostcrm.core.errors import NotFound, ValidationError


def plan_get(*, code: str) -> Plan:
    try:
        return Plan.objects.select_related("product").get(code=code)
    except Plan.DoesNotExist:
        raise NotFound(f"There is no plan with code {code!r}.", code="plan_not_found") from None


def live_subscription(*, organization_id: uuid.UUID | str) -> Subscription | None:
    return (
        Subscription.objects.select_related("plan", "customer")
        .filter(customer__organization_id=organization_id, status__in=Subscription.LIVE_STATUSES)
        .first()
    )


def plan_tiers(plan: Plan) -> list[Tier]:
    return [Tier(t.up_to, t.unit_amount, t.flat_amount) for t in plan.tiers.all()]


def plan_amount(plan: Plan, quantity: int) -> int:
    """One full period of ``plan`` for ``quantity`` seats, minor units, before tax."""
    tiers = plan_tiers(plan) if plan.scheme == Plan.Scheme.TIERED else []
    return plan_period_amount(
        scheme=plan.scheme, unit_amount=plan.unit_amount, quantity=quantity, tiers=tiers, mode=plan.tiers_mode
    )


def line_quantity(plan: Plan, seats: int) -> int:
    return 1 if plan.scheme == Plan.Scheme.FLAT else seats


# --- Usage -------------------------------------------------------------------------------------------


def usage_latest(*, organization_id: uuid.UUID | str) -> UsageReading | None:
    return UsageReading.objects.filter(organization_id=organization_id).order_by("-taken_at", "-id").first()


def billable_seats(subscription: Subscription) -> int:
    """Seats an invoice charges: the committed seats, or the latest usage reading when it is higher."""
    reading = usage_latest(organization_id=subscription.customer.organization_id)
    return max(subscription.seats, reading.seats if reading else 0)


def subscription_get(*, subscription_id: uuid.UUID | str) -> Subscription:
    try:
        return Subscription.objects.select_related("plan", "customer", "customer__tax_rate").get(pk=subscription_id)
    except (Subscription.DoesNotExist, ValueError, DjangoValidationError):  # a malformed id is "not found" too
        raise NotFound(f"There is no subscription {subscription_id}.", code="subscription_not_found") from None


def seats_validate(*, plan: Plan, seats: int, organization_id: uuid.UUID | str) -> None:
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 1:
        raise ValidationError(f"Seats must be a whole number of at least 1 (got {seats!r}).", code="invalid_seats")
    if plan.seat_limit is not None and seats > plan.seat_limit:
        raise ValidationError(
            f"The plan {plan.code!r} allows at most {plan.seat_limit} seats (asked for {seats}).", code="seat_limit"
        )
    reading = usage_latest(organization_id=organization_id)
    if reading is not None and seats < reading.seats:
        raise ValidationError(
            f"{seats} seats is below current usage: the organisation has {reading.seats} active users "
            f"(counted {reading.taken_at:%Y-%m-%d %H:%M} UTC). Deactivate users first.",
            code="seats_below_usage",
        )


def subscription_mrr(subscription: Subscription, *, status: str | None = None) -> int:
    """Monthly recurring revenue of one subscription, minor units, before tax, rounded half-even.

    Counts only ``active`` and ``past_due`` (trials, unpaid, paused and canceled are not revenue);
    a yearly price counts a twelfth; per-seat prices count the committed seats.
    """
    if (status or subscription.status) not in Subscription.MRR_STATUSES:
        return 0
    plan = subscription.plan
    return round_minor(monthly_amount(plan_amount(plan, subscription.seats), plan.interval))
