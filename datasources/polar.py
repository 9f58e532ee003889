"""Polar (polar.sh) payments: top-up checkouts through the official SDK, and Polar's signed order webhooks.

Polar signs webhooks per Standard Webhooks with the secret's own bytes as the key; a delivery older or
newer than five minutes is refused. Only `order.paid` and `order.refunded` move money here; the account a
payment is for travels in the checkout's metadata.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from polar.base import PolarError as SdkError
from polar.v2026_10 import PolarAsync
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MIN_TOP_UP, MAX_TOP_UP = Decimal(1), Decimal(10_000)
CENT = Decimal("0.01")
ORDER_EVENTS = ("order.paid", "order.refunded")


class PolarError(Exception):
    """Polar could not be reached, or refused the request."""


class WebhookRefused(Exception):
    """A webhook whose signature or timestamp does not verify."""


@dataclass(frozen=True)
class PolarConfig:
    access_token: str = field(repr=False)
    product_id: str
    webhook_secret: str | None = field(default=None, repr=False)
    server: str | None = None  # production or sandbox
    base_url: str | None = None  # overrides the server (a fake in tests, a proxy)
    success_url: str | None = None


@dataclass(frozen=True)
class Checkout:
    id: str
    url: str
    amount: Decimal


@dataclass(frozen=True)
class OrderEvent:
    type: Literal["order.paid", "order.refunded"]
    webhook_id: str
    order_id: str
    account_id: int | None
    amount: Decimal  # USD paid
    refunded: Decimal  # USD refunded so far
    currency: str


def check_amount(amount: Decimal) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError("amount: expected a number of USD")
    if amount != amount.quantize(CENT):
        raise ValueError(f"amount: at most two decimal places, got {amount}")
    if not MIN_TOP_UP <= amount <= MAX_TOP_UP:
        raise ValueError(f"amount: from {MIN_TOP_UP} to {MAX_TOP_UP} USD, got {amount}")
    return amount


async def create_checkout(
    config: PolarConfig, amount: Decimal, account_id: int, customer_email: str | None = None
) -> Checkout:
    """A checkout for the top-up product at `amount` USD, for `account_id` (in its metadata)."""
    amount = check_amount(amount)
    options: dict[str, Any] = {
        "products": [config.product_id],
        "amount": int(amount * 100),
        "metadata": {"account_id": str(account_id), "amount": str(amount)},
        "external_customer_id": f"account-{account_id}",
    }
    if config.success_url:
        options["success_url"] = config.success_url
    if customer_email:
        options["customer_email"] = customer_email
    environment: Any = config.server or "production"
    try:
        async with PolarAsync(config.access_token, environment=environment, base_url=config.base_url) as client:
            made = await client.checkouts.create(**options)
    except SdkError as exc:
        raise PolarError(f"Polar refused the checkout: {type(exc).__name__}") from None
    except OSError as exc:
        raise PolarError(f"Polar could not be reached: {type(exc).__name__}") from None
    return Checkout(id=made.id, url=made.url, amount=amount)


def _cents(value: object) -> Decimal:
    try:
        return (Decimal(str(value)) / 100).quantize(CENT)
    except (InvalidOperation, TypeError):
        return Decimal(0)


def _account(metadata: object) -> int | None:
    if not isinstance(metadata, dict):
        return None
    raw = str(metadata.get("account_id", "")).strip()
    return int(raw) if raw.isdigit() else None


def parse_webhook(body: bytes, headers: Mapping[str, str], secret: str) -> OrderEvent | None:
    """The order event a verified delivery carries; None for events that move no money."""
    if not secret:
        raise WebhookRefused("no webhook secret is configured")
    lowered = {k.lower(): v for k, v in headers.items()}
    key = base64.b64encode(secret.encode()).decode()
    try:
        Webhook(key).verify(body, lowered)
    except WebhookVerificationError as exc:
        raise WebhookRefused(str(exc)) from None
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookRefused("the body is not JSON") from None
    kind = event.get("type") if isinstance(event, dict) else None
    if kind not in ORDER_EVENTS:
        return None
    order = event.get("data") or {}
    paid = _cents(order.get("net_amount", order.get("total_amount", 0)))  # before tax
    return OrderEvent(
        type=kind,
        webhook_id=lowered["webhook-id"],
        order_id=str(order.get("id", "")),
        account_id=_account(order.get("metadata")),
        amount=paid,
        refunded=_cents(order.get("refunded_amount", 0)),
        currency=str(order.get("currency", "usd")),
    )
