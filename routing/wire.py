"""The one JSON writer for REST and the gateway: money leaves as exact numbers."""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal
from typing import Any

from datasources.money import json_number


def dumps(value: Any) -> bytes:
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
