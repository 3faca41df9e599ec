from __future__ import annotations

from decimal import Decimal

import pytest

from billing.money import (
    format_money,
    from_minor,
    from_stripe_amount,
    minor_units,
    parse_amount,
    round_minor,
    to_minor,
    to_stripe_amount,
)
from ghostcrm.core.errors import ValidationError


@pytest.mark.parametrize(("currency", "digits"), [("JPY", 0), ("KRW", 0), ("USD", 2), ("eur", 2), ("GBP", 2),
                                                  ("KWD", 3), ("BHD", 3), ("CLF", 4)])  # fmt: skip
def test_minor_units_follow_iso_4217(currency: str, digits: int) -> None:
    assert minor_units(currency) == digits


def test_major_to_minor_and_back() -> None:
    assert to_minor("12.50", "EUR") == 1250
    assert to_minor(Decimal("1200"), "JPY") == 1200
    assert to_minor("1.234", "KWD") == 1234
    assert from_minor(1250, "EUR") == Decimal("12.50")
    assert from_minor(1200, "JPY") == Decimal("1200")
    assert from_minor(1234, "KWD") == Decimal("1.234")
    assert format_money(123456789, "EUR") == "1\u202f234\u202f567.89 EUR"
    assert format_money(-500, "JPY") == "-500 JPY"


def test_half_even_rounding_at_line_level() -> None:
    assert [round_minor(Decimal(x)) for x in ("0.5", "1.5", "2.5", "-0.5", "-1.5", "2.4999", "2.5001")] == [
        0, 2, 2, 0, -2, 2, 3
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        ("12.505", "EUR", "amount_scale"),
        ("100.5", "JPY", "amount_scale"),
        ("1.2345", "KWD", "amount_scale"),
        ("-1.00", "EUR", "negative_amount"),
        ("twelve", "EUR", "invalid_amount"),
        ("NaN", "EUR", "invalid_amount"),
        ("10", "XYZ", "unknown_currency"),
        ("10", "", "unknown_currency"),
        (12.5, "EUR", "float_amount"),
    ],
)
def test_bad_amounts_are_refused_with_a_reason(amount: object, currency: str, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        to_minor(amount, currency)
    assert caught.value.code == code
    assert caught.value.message


def test_negative_allowed_only_when_asked() -> None:
    assert parse_amount("-3.10", "USD", allow_negative=True) == Decimal("-3.10")


def test_stripe_amounts_follow_stripes_special_cases() -> None:
    # Same unit as ISO 4217: no scaling.
    assert (from_stripe_amount(1250, "EUR"), from_stripe_amount(500, "JPY"), from_stripe_amount(5120, "KWD")) == (
        1250, 500, 5120
    )  # fmt: skip
    assert (to_stripe_amount(1250, "EUR"), to_stripe_amount(500, "JPY")) == (1250, 500)
    # ISK: zero-decimal in ISO, hundredths in Stripe's API; MGA: two decimals in ISO, whole ariary in Stripe's.
    assert (from_stripe_amount(50_000, "ISK"), to_stripe_amount(500, "ISK")) == (500, 50_000)
    assert (from_stripe_amount(1_000, "MGA"), to_stripe_amount(100_000, "MGA")) == (100_000, 1_000)
    with pytest.raises(ValidationError) as caught:
        from_stripe_amount(50_050, "ISK")
    assert caught.value.code == "amount_scale"
    with pytest.raises(ValidationError, match="whole MGA only"):
        to_stripe_amount(150, "MGA")
