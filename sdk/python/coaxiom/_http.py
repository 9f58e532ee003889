"""Requests, JSON (money as Decimal), typed errors and retries with backoff honouring Retry-After."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import httpx

from coaxiom.errors import APIError, from_response, parse_retry_after

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 120.0


def loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def backoff(attempt: int, retry_after: str | None) -> float:
    """Seconds to wait before retry number `attempt` (0-based): the server's Retry-After when given."""
    given = parse_retry_after(retry_after)
    if given is not None:
        return float(min(given, MAX_RETRY_AFTER))
    return float(min(MAX_BACKOFF, 0.5 * 2.0**attempt)) * (0.75 + random.random() / 2)


def should_retry(response: httpx.Response) -> bool:
    return response.status_code in RETRY_STATUSES


def check(response: httpx.Response, secrets: list[str]) -> Any:
    """The decoded body of a successful answer, else the typed error."""
    if response.status_code >= 400:
        raise from_response(response.status_code, response.text, response.headers, secrets)
    try:
        return loads(response.text)
    except ValueError:
        raise APIError("the server answered with something that is not JSON", response.status_code) from None


def clean_params(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[name] = value
    return out
