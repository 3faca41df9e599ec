"""Money: ``Decimal`` amounts with an explicit ISO 4217 currency, stored as integer minor units.

Storage rule: every amount column is a ``BigIntegerField`` of **minor units** (cents for EUR, yen for JPY,
fils for KWD) next to a three-letter currency code. Integers are exact and portable to SQL Server,
PostgreSQL and SQLite, and are what Stripe's API speaks, so provider amounts need no conversion.

Rounding rule: an amount that is not a whole number of minor units (a prorated line, a tax on a line) is
rounded **once, at line level, half-even** (banker's rounding) to the currency's minor unit; totals are
sums of already-rounded integers, so a total always equals the sum of its printed lines.

Bad input (an unknown currency, a negative amount where none is allowed, more decimals than the
currency has, text that is not a number, floats) raises ``ghostcrm.core.errors.ValidationError`` with a
sentence naming the problem.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError

from ghostcrm.core.errors import ValidationError

# ISO 4217 active codes and their minor units (exponent). Most currencies have two decimals; these differ.
_ZERO_DECIMAL = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMAL = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMAL = "CLF UYW"
_TWO_DECIMAL = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF "
    "CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD "
    "HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT "
    "MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR "
    "SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU "
    "UZS VED VES WST XCD YER ZAR ZMW ZWG"
)
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMAL.split(), 2),
    **dict.fromkeys(_ZERO_DECIMAL.split(), 0),
    **dict.fromkeys(_THREE_DECIMAL.split(), 3),
    **dict.fromkeys(_FOUR_DECIMAL.split(), 4),
}
CURRENCY_CHOICES = [(code, code) for code in sorted(MINOR_UNITS)]


def normalize_currency(code: Any) -> str:
    """The upper-case ISO 4217 code, or ``ValidationError`` when it is not an active currency."""
    text = str(code or "").strip().upper()
    if text not in MINOR_UNITS:
        raise ValidationError(
            f"{code!r} is not a known ISO 4217 currency code (e.g. EUR, USD, GBP, JPY).", code="unknown_currency"
        )
    return text


def minor_units(currency: str) -> int:
    """How many decimals the currency has: JPY 0, EUR 2, KWD 3."""
    return MINOR_UNITS[normalize_currency(currency)]


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def round_minor(value: Decimal | int) -> int:
    """A (possibly fractional) number of minor units rounded half-even to a whole one: the line-level rule."""
    if isinstance(value, float):
        raise ValidationError("Amounts must be Decimal or int, never float.", code="float_amount")
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def parse_amount(value: Any, currency: str, *, allow_negative: bool = False) -> Decimal:
    """A major-unit amount (``"12.50"``) checked against the currency's scale.

    ``"12.505"`` in EUR or ``"100.5"`` in JPY is refused rather than silently rounded: an admin typing
    more decimals than the currency has has made a mistake we should not guess about.
    """
    code = normalize_currency(currency)
    if isinstance(value, float):
        raise ValidationError("Amounts must be given as text or Decimal, never as a float.", code="float_amount")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValidationError(f"{value!r} is not an amount.", code="invalid_amount") from None
    if not amount.is_finite():
        raise ValidationError(f"{value!r} is not an amount.", code="invalid_amount")
    if amount < 0 and not allow_negative:
        raise ValidationError(f"The amount must not be negative (got {amount}).", code="negative_amount")
    digits = MINOR_UNITS[code]
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > digits:
        raise ValidationError(
            f"{amount} has more decimals than {code} allows ({digits}).", code="amount_scale", extra={"currency": code}
        )
    return amount.quantize(quantum(code))


def to_minor(amount: Any, currency: str, *, allow_negative: bool = False) -> int:
    """Major units (``Decimal("12.50")``, EUR) to integer minor units (``1250``), validated."""
    code = normalize_currency(currency)
    return int(parse_amount(amount, code, allow_negative=allow_negative).scaleb(MINOR_UNITS[code]))


def from_minor(minor: int, currency: str) -> Decimal:
    """Integer minor units to a ``Decimal`` of the currency's scale: ``1250`` EUR -> ``Decimal("12.50")``."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise ValidationError(f"Minor units must be a whole number (got {minor!r}).", code="invalid_amount")
    code = normalize_currency(currency)
    return Decimal(minor).scaleb(-MINOR_UNITS[code]).quantize(quantum(code))


def format_money(minor: int, currency: str) -> str:
    """``1250, "EUR"`` -> ``"12.50 EUR"``; grouping with thin spaces for readability on invoices."""
    amount = from_minor(minor, currency)
    digits = MINOR_UNITS[normalize_currency(currency)]
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):,.{digits}f}".replace(",", "\u202f")
    return f"{sign}{text} {currency.upper()}"


# Where Stripe's API amounts use another exponent than ISO 4217 (Stripe's "special cases"): ISK stays
# two-decimal in the API (100 = 1 krona, whole kronur only), MGA is zero-decimal there. Every other currency
# we know has the same minor unit on both sides.
STRIPE_EXPONENTS: dict[str, int] = {"ISK": 2, "MGA": 0}


def from_stripe_amount(amount: int, currency: str) -> int:
    """A Stripe API amount (an integer in Stripe's unit for the currency) as our minor units."""
    code = normalize_currency(currency)
    shift = STRIPE_EXPONENTS.get(code, MINOR_UNITS[code]) - MINOR_UNITS[code]
    if shift <= 0:
        return amount * 10**-shift
    factor = 10**shift
    if amount % factor:
        raise ValidationError(
            f"Stripe amount {amount} in {code} is not a whole {code} minor unit (Stripe counts {code} in hundredths).",
            code="amount_scale",
        )
    return amount // factor


def to_stripe_amount(minor: int, currency: str) -> int:
    """Our minor units as the integer Stripe's API expects for the currency."""
    code = normalize_currency(currency)
    shift = STRIPE_EXPONENTS.get(code, MINOR_UNITS[code]) - MINOR_UNITS[code]
    if shift >= 0:
        return minor * 10**shift
    factor = 10**-shift
    if minor % factor:
        raise ValidationError(
            f"{format_money(minor, code)} cannot be sent to Stripe, which takes whole {code} only.",
            code="amount_scale",
        )
    return minor // factor


def validate_currency_code(value: str) -> None:
    """Model-field validator (Django's ValidationError, for ``full_clean``)."""
    try:
        normalize_currency(value)
    except ValidationError as exc:
        raise DjangoValidationError(exc.message, code=exc.code) from None


def validate_non_negative(value: int) -> None:
    if value is not None and value < 0:
        raise DjangoValidationError("The amount must not be negative.", code="negative_amount")
