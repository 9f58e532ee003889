"""The one place that rounds money."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

PRICE_PLACES = Decimal("1e-10")
ONE_MILLION = Decimal(1_000_000)


def price(value: Decimal) -> Decimal:
    """A USD-per-1M-tokens price at storage precision (10 places), without float noise."""
    return value.quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN).normalize() + Decimal(0)


def per_token_to_per_1m(value: object) -> Decimal:
    """A per-token number from JSON (float, int or str) as USD per 1M tokens."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValueError(f"not a number: {value!r}")
    text = repr(value) if isinstance(value, float) else str(value)
    amount = Decimal(text)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"not a non-negative finite number: {value!r}")
    return price(amount * ONE_MILLION)


def blended(input_per_1m: Decimal, output_per_1m: Decimal) -> Decimal:
    return price((input_per_1m + output_per_1m) / 2)
