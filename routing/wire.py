"""The one JSON writer for REST and the gateway: money leaves as exact numbers."""

from __future__ import annotations

from typing import Any

from datasources.money import exact_json


def dumps(value: Any) -> bytes:
    """JSON with every Decimal written as a number from its own digits (`datasources.money.exact_json`)."""
    return exact_json(value)
