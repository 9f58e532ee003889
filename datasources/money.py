"""The one place that rounds, parses and writes money."""

from __future__ import annotations

import json
import re
import secrets
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

from datasources.errors import BadInput

PRICE_PLACES = Decimal("1e-10")
ONE_MILLION = Decimal(1_000_000)
PERCENT_PLACES = Decimal("1e-4")


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


def percent_change(new: Decimal, old: Decimal) -> Decimal:
    """(new - old) / old * 100 at 4 places, half-even; 0 when old is 0. Divides at 60 digits so it rounds once."""
    if old == 0:
        return Decimal(0).quantize(PERCENT_PLACES)
    with localcontext() as ctx:
        ctx.prec = 60
        ratio = (new - old) * 100 / old
    return ratio.quantize(PERCENT_PLACES, rounding=ROUND_HALF_EVEN)


def parse_amount(raw: object, name: str = "amount", allow_zero: bool = False) -> Decimal:
    """A USD amount as every entry point takes it (CLI, GraphQL, REST): a finite, positive (or, with
    `allow_zero`, non-negative) decimal of at most 10 places. The error names the field."""
    try:
        amount = raw if isinstance(raw, Decimal) else Decimal(str(raw).strip())
    except InvalidOperation:
        raise BadInput(f"{raw!r} is not a USD amount", field=name) from None
    shown = format(amount, "f") if amount.is_finite() else str(amount)  # as written, whatever parsed it
    if not amount.is_finite() or amount < 0 or (amount == 0 and not allow_zero):
        wanted = "a non-negative" if allow_zero else "a positive"
        raise BadInput(f"must be {wanted} USD amount, got {shown}", field=name)
    if price(amount) != amount:
        raise BadInput(f"at most 10 decimal places, got {shown}", field=name)
    return amount


def json_number(value: Decimal) -> str:
    """A Decimal's own digits as a JSON number (`0.075`, `9999999.1234567891`): never through float."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a JSON number")
    return format(value, "f")


def exact_json(value: Any) -> bytes:
    """JSON with every Decimal written as a number from its own digits (`datasources.money.json_number`),
    never through a float. The C encoder writes each Decimal as a placeholder string marked with a
    token drawn for this call (no data can hold it), and the placeholders become the digits."""
    token = secrets.token_hex(8)
    marker = f"\x00{token}:"

    def decimal(item: Any) -> str:
        if isinstance(item, Decimal):
            return marker + json_number(item)
        raise TypeError(f"{type(item).__name__} is not JSON serializable")

    text = json.dumps(value, default=decimal, separators=(",", ":"), ensure_ascii=False)
    if token in text:
        text = re.sub(r'"\\u0000' + token + r':([^"]*)"', r"\1", text)
    return text.encode()
