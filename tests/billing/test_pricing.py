from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from billing.pricing import Tier, add_months, plan_period_amount, prorate, proration_fraction

UTC = dt.UTC
TIERS = [Tier(5, 1000, 0), Tier(10, 800, 500), Tier(None, 600, 0)]


@pytest.mark.parametrize(
    ("seats", "graduated", "volume"),
    [
        (0, 0, 0),
        (3, 3 * 1000, 3 * 1000),
        (5, 5 * 1000, 5 * 1000),
        (7, 5 * 1000 + 2 * 800 + 500, 7 * 800 + 500),
        (12, 5 * 1000 + 5 * 800 + 500 + 2 * 600, 12 * 600),
    ],
)
def test_tiered_prices(seats: int, graduated: int, volume: int) -> None:
    assert (
        plan_period_amount(scheme="tiered", unit_amount=0, quantity=seats, tiers=TIERS, mode="graduated") == graduated
    )
    assert plan_period_amount(scheme="tiered", unit_amount=0, quantity=seats, tiers=TIERS, mode="volume") == volume


def test_flat_and_per_seat() -> None:
    assert plan_period_amount(scheme="flat", unit_amount=3000, quantity=7) == 3000
    assert plan_period_amount(scheme="per_seat", unit_amount=1000, quantity=7) == 7000


def test_month_ends_clamp_without_drift() -> None:
    anchor = dt.datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
    assert [add_months(anchor, n).date().isoformat() for n in range(4)] == [
        "2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"
    ]  # fmt: skip


def test_proration_to_the_second_rounded_half_even() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    end = dt.datetime(2026, 2, 1, tzinfo=UTC)  # 31 days
    fraction = proration_fraction(start, end, dt.datetime(2026, 1, 16, 12, tzinfo=UTC))
    assert fraction == Decimal(15.5 * 86400) / Decimal(31 * 86400) == Decimal("0.5")
    assert prorate(3001, fraction) == 1500  # 1500.5 -> 1500 (half to even)
    assert prorate(3003, fraction) == 1502  # 1501.5 -> 1502
    third = proration_fraction(start, end, start + dt.timedelta(days=31) * 2 / 3)
    assert prorate(9000, third) == 3000
