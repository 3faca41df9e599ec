"""Pure arithmetic of billing: plan prices, billing periods, proration and tax. No database writes.

Everything is integer minor units in and out; fractions (proration, tax) exist only inside one line's
computation and are rounded half-even once, at line level (``billing.money.round_minor``).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from billing.money import round_minor
from ghostcrm.core.errors import ValidationError


@dataclass(frozen=True)
class Tier:
    up_to: int | None  # None: the last, unbounded tier
    unit_amount: int
    flat_amount: int = 0


def _ordered_tiers(tiers: Iterable[Tier]) -> list[Tier]:
    ordered = sorted(tiers, key=lambda t: (t.up_to is None, t.up_to or 0))
    if not ordered or ordered[-1].up_to is not None:
        raise ValidationError("A tiered plan needs a last tier without an upper bound.", code="tiers_unbounded")
    return ordered


def tiered_amount(tiers: Sequence[Tier], quantity: int, *, mode: str) -> int:
    """Stripe's tiered pricing: ``graduated`` prices each seat in its own tier, ``volume`` all seats at one tier."""
    ordered = _ordered_tiers(tiers)
    if mode == "volume":
        for tier in ordered:
            if tier.up_to is None or quantity <= tier.up_to:
                return quantity * tier.unit_amount + (tier.flat_amount if quantity > 0 else 0)
    if mode != "graduated":
        raise ValidationError(f"Unknown tiers mode {mode!r}.", code="tiers_mode")
    total, lower = 0, 0
    for tier in ordered:
        if quantity <= lower:
            break
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        in_tier = upper - lower
        if in_tier > 0:
            total += in_tier * tier.unit_amount + tier.flat_amount
        lower = upper if tier.up_to is None else tier.up_to
    return total


def plan_period_amount(
    *, scheme: str, unit_amount: int, quantity: int, tiers: Sequence[Tier] = (), mode: str = ""
) -> int:
    """What one full period of a plan costs for ``quantity`` seats, in minor units (before tax)."""
    if quantity < 0:
        raise ValidationError("Seats cannot be negative.", code="negative_seats")
    if scheme == "flat":
        return unit_amount
    if scheme == "per_seat":
        return unit_amount * quantity
    if scheme == "tiered":
        return tiered_amount(tiers, quantity, mode=mode)
    raise ValidationError(f"Unknown pricing scheme {scheme!r}.", code="pricing_scheme")


def monthly_amount(period_amount: int, interval: str) -> Decimal:
    """The MRR contribution of a period price: yearly prices count a twelfth per month (not rounded here)."""
    return Decimal(period_amount) / 12 if interval == "year" else Decimal(period_amount)


def add_months(anchor: dt.datetime, months: int) -> dt.datetime:
    """``anchor`` plus whole months, clamping the day (Jan 31 + 1 month = Feb 28/29), as Stripe's anchors do."""
    month_index = anchor.month - 1 + months
    year, month = anchor.year + month_index // 12, month_index % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def interval_months(interval: str) -> int:
    return 12 if interval == "year" else 1


def proration_fraction(period_start: dt.datetime, period_end: dt.datetime, at: dt.datetime) -> Decimal:
    """The unused share of the period from ``at`` to its end, to the second (Stripe prorates by the second)."""
    if not period_start <= at <= period_end or period_end <= period_start:
        raise ValidationError("The change time is outside the current billing period.", code="outside_period")
    total = int((period_end - period_start).total_seconds())
    remaining = int((period_end - at).total_seconds())
    return Decimal(remaining) / Decimal(total)


def prorate(amount: int, fraction: Decimal) -> int:
    """``amount`` times ``fraction``, rounded half-even to a whole minor unit (one line, one rounding)."""
    return round_minor(Decimal(amount) * fraction)


def line_tax(amount: int, percentage: Decimal | None) -> int:
    """Exclusive tax on one line, rounded half-even at line level (a credit line gets a negative tax)."""
    if not percentage:
        return 0
    return round_minor(Decimal(amount) * Decimal(percentage) / Decimal(100))
