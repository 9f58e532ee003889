"""Polar (polar.sh) payments: top-up checkouts through the official SDK, and Polar's signed order webhooks.

Checkouts go through `polar-sdk` (API version 2026-10). Polar signs webhooks per Standard Webhooks with the
secret's own bytes as the HMAC key; a delivery whose timestamp is more than five minutes off is refused.
Only `order.paid` and `order.refunded` move money here; the account a payment is for travels in the
checkout's metadata, which Polar copies onto the order.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from polar.base import PolarClientError, PolarNetworkError, PolarServerError
from polar.base import PolarError as SdkError
from polar.v2026_10 import Environment, PolarAsync
from polar.v2026_10.inputs import CheckoutCreate
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MIN_TOP_UP, MAX_TOP_UP = Decimal(1), Decimal(10_000)
CENT = Decimal("0.01")
ENVIRONMENTS: tuple[Environment, ...] = ("production", "sandbox")
OrderEventType = Literal["order.paid", "order.refunded"]
ORDER_EVENTS: tuple[OrderEventType, ...] = ("order.paid", "order.refunded")
_DIGITS = re.compile(r"[0-9]{1,18}")


class PolarError(Exception):
    """Polar could not be reached, or refused the request."""


class WebhookRefused(Exception):
    """A webhook delivery whose signature or timestamp does not verify, or that is not a Polar event."""


@dataclass(frozen=True)
class PolarConfig:
    access_token: str = field(repr=False)
    product_id: str
    webhook_secret: str | None = field(repr=False)
    server: str | None = None  # production or sandbox; production when unset
    base_url: str | None = None  # overrides the server (a fake in tests, a proxy)
    success_url: str | None = None


@dataclass(frozen=True)
class Checkout:
    id: str
    url: str
    amount: Decimal


@dataclass(frozen=True)
class OrderEvent:
    type: OrderEventType
    webhook_id: str
    order_id: str
    account_id: int | None
    amount: Decimal  # USD paid, before tax (the order's net amount)
    refunded: Decimal  # USD refunded so far, before tax
    currency: str


def check_amount(amount: Decimal) -> Decimal:
    """`amount` if it is a top-up Polar can take: 1 to 10,000 USD in whole cents; ValueError otherwise."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise ValueError(f"amount: expected a number of USD, got {amount!r}")
    if not MIN_TOP_UP <= amount <= MAX_TOP_UP:
        raise ValueError(f"amount: from {MIN_TOP_UP} to {MAX_TOP_UP} USD, got {amount}")
    if amount != amount.quantize(CENT):
        raise ValueError(f"amount: at most two decimal places, got {amount}")
    return amount


def _environment(config: PolarConfig) -> Environment:
    server = config.server or "production"
    if server not in ENVIRONMENTS:
        raise PolarError(f"unknown Polar server {server!r}: expected production or sandbox")
    return server


def _failure(exc: SdkError) -> PolarError:
    """A PolarError saying what went wrong: the status only, never the SDK's text, so never the access token."""
    if isinstance(exc, PolarNetworkError):
        message = "Polar could not be reached"
    elif isinstance(exc, PolarClientError | PolarServerError):
        message = f"Polar answered {exc.status_code} to the checkout"
    else:
        message = f"Polar's answer to the checkout was not understood ({type(exc).__name__})"
    return PolarError(message)


async def create_checkout(
    config: PolarConfig, amount: Decimal, account_id: int, customer_email: str | None = None
) -> Checkout:
    """A checkout for the top-up product at `amount` USD for `account_id` (carried in its metadata)."""
    amount = check_amount(amount)
    options: CheckoutCreate = {
        "products": [config.product_id],
        "amount": int(amount * 100),  # cents, for the product's pay-what-you-want price
        "metadata": {"account_id": str(account_id), "amount": str(amount)},
    }
    if config.success_url:
        options["success_url"] = config.success_url
    if customer_email:
        options["customer_email"] = customer_email
    environment = _environment(config)
    try:
        async with PolarAsync(config.access_token, environment=environment, base_url=config.base_url) as client:
            made = await client.checkouts.create(**options)
    except SdkError as exc:
        raise _failure(exc) from None
    return Checkout(id=made.id, url=made.url, amount=amount)


# ---- webhooks ---------------------------------------------------------------------------------------


def _usd(order: Mapping[str, Any], name: str) -> Decimal:
    """The order's `name` field, whole cents, as USD."""
    cents = order.get(name, 0)
    if cents is None:
        return Decimal("0.00")
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise WebhookRefused(f"the order's {name} is not a whole number of cents: {cents!r}")
    return (Decimal(cents) / 100).quantize(CENT)


def _account(metadata: object) -> int | None:
    if not isinstance(metadata, Mapping):
        return None
    raw = metadata.get("account_id")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    text = str(raw).strip()
    return int(text) if _DIGITS.fullmatch(text) else None


def _verified(body: bytes, headers: Mapping[str, str], secret: str) -> dict[str, str]:
    """The headers, lower-cased, once the delivery's signature and timestamp verify."""
    if not secret:
        raise WebhookRefused("no webhook secret is configured")
    lowered = {k.lower(): v for k, v in headers.items()}
    key = base64.b64encode(secret.encode()).decode()
    try:
        Webhook(key).verify(body, lowered, json_parse=False)
    except WebhookVerificationError as exc:
        raise WebhookRefused(str(exc)) from None
    except ValueError:  # an undecodable body, or a signature header that is not `v1,<base64>`
        raise WebhookRefused("the signature headers are malformed") from None
    return lowered


def parse_webhook(body: bytes, headers: Mapping[str, str], secret: str) -> OrderEvent | None:
    """The order event a verified delivery carries; None for events that move no money.

    WebhookRefused when the signature is missing or wrong, the timestamp is stale, or the signed body is
    not a Polar order event."""
    lowered = _verified(body, headers, secret)
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookRefused("the body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookRefused("the body is not a webhook event")
    kind = event.get("type")
    if kind not in ORDER_EVENTS:
        return None
    order = event.get("data")
    if not isinstance(order, dict) or not order.get("id"):
        raise WebhookRefused(f"{kind} carries no order")
    net = "net_amount" if "net_amount" in order else "total_amount"
    return OrderEvent(
        type=kind,
        webhook_id=lowered["webhook-id"],
        order_id=str(order["id"]),
        account_id=_account(order.get("metadata")),
        amount=_usd(order, net),
        refunded=_usd(order, "refunded_amount"),
        currency=str(order.get("currency") or "usd").lower(),
    )
