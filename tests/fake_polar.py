"""A fake of the Polar API: a real HTTP server on 127.0.0.1 (Starlette under uvicorn in a thread) answering
`POST /v1/checkouts/` with a checkout in the shape the official SDK reads (every field its model requires),
checking the bearer token, recording each request and failing on demand; plus order events built as Polar
builds them and signed as Polar signs its webhooks (Standard Webhooks, the secret's bytes as the key)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import threading
import time
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from polar.v2026_10 import outputs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import LiveServer

API_VERSION = "2026-10"
ORGANIZATION_ID = "9b5a0f4e-0000-4000-8000-000000000001"
CREATED_AT = "2026-12-02T00:00:00Z"
ERRORS = {400: "BadRequest", 401: "Unauthorized", 403: "NotPermitted", 404: "ResourceNotFound"}


def sample(tp: Any) -> Any:
    """A JSON value of the SDK's type `tp`: None where allowed, the first literal, empty containers, and
    nested objects built the same way; the fake fills in the fields that matter on top."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return None
    if origin in (typing.Union, types.UnionType):
        return None if type(None) in args else sample(args[0])
    if origin is typing.Literal:
        return args[0]
    if origin in (list, tuple, set):
        return []
    if origin is dict:
        return {}
    if tp is bool:
        return False
    if tp in (int, float):
        return 0
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp, vars(outputs))
        return {f.name: sample(hints[f.name]) for f in dataclasses.fields(tp)}
    return "x"


def _id(prefix: str = "") -> str:
    return prefix + secrets.token_hex(12)


def top_up_product(product_id: str) -> dict[str, Any]:
    """The top-up product as Polar shows it: one-time, with a pay-what-you-want price in USD."""
    price = sample(outputs.ProductPriceCustom)
    price.update(
        id=_id("price_"),
        created_at=CREATED_AT,
        source="catalog",
        amount_type="custom",
        price_currency="usd",
        product_id=product_id,
        minimum_amount=100,
        maximum_amount=1_000_000,
    )
    product = sample(outputs.CheckoutProduct)
    product.update(
        id=product_id,
        created_at=CREATED_AT,
        name="Pricegraph balance top-up",
        visibility="public",
        organization_id=ORGANIZATION_ID,
        prices=[price],
    )
    return product


@dataclass
class Seen:
    """A request the fake received."""

    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    def __getitem__(self, key: str) -> Any:  # seen[-1]["body"], seen[-1]["authorization"]
        return getattr(self, key)


class Requests(list[Seen]):
    """What the fake received, oldest first; calling it gives a copy (`fake.seen()`)."""

    def __call__(self) -> list[Seen]:
        return list(self)


@dataclass
class FakePolar:
    token: str = "polar_oat_test_token"
    seen: Requests = field(default_factory=Requests)
    failures: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/v1/checkouts/", self.checkout, methods=["POST"])])
        self.server = LiveServer(self.app)
        self.url = self.server.url

    def __enter__(self) -> FakePolar:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def fail_next(self, status: int) -> None:
        """Answer the next authorized request with `status` (several calls queue several failures)."""
        with self.lock:
            self.failures.append(status)

    def reset(self) -> None:
        with self.lock:
            self.seen.clear()
            self.failures.clear()

    # ---- the fake API --------------------------------------------------------------------------

    async def checkout(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        seen = Seen(request.method, request.url.path, body, dict(request.headers), time.monotonic())
        with self.lock:
            self.seen.append(seen)
        if seen.authorization != f"Bearer {self.token}":
            return self.error(401, "Invalid or expired access token.")
        with self.lock:
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            return self.error(failure, "fake failure")
        if not isinstance(body, dict) or not isinstance(body.get("products"), list) or not body["products"]:
            return self.invalid(["body", "products"], "Field required")
        amount = body.get("amount")
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount < 100):
            return self.invalid(["body", "amount"], "Input should be greater than or equal to 100")
        return JSONResponse(self.made(body, amount or 0), status_code=201)

    def made(self, body: dict[str, Any], amount: int) -> dict[str, Any]:
        """The checkout Polar answers for `body`: open, for the first product, at `amount` cents."""
        client_secret = _id("polar_c_")
        product = top_up_product(str(body["products"][0]))
        checkout = sample(outputs.Checkout)
        checkout.update(
            id=_id("chk_"),
            created_at=CREATED_AT,
            payment_processor="stripe",
            status="open",
            client_secret=client_secret,
            url=f"{self.url}/checkout/{client_secret}",
            expires_at="2026-12-02T01:00:00Z",
            success_url=body.get("success_url") or f"{self.url}/checkout/{client_secret}/confirmation",
            amount=amount,
            net_amount=amount,
            total_amount=amount,
            currency="usd",
            organization_id=ORGANIZATION_ID,
            product_id=product["id"],
            product_price_id=product["prices"][0]["id"],
            is_payment_required=amount > 0,
            is_payment_form_required=amount > 0,
            customer_email=body.get("customer_email"),
            external_customer_id=body.get("external_customer_id"),
            metadata=body.get("metadata") or {},
            products=[product],
            product=product,
            product_price=product["prices"][0],
        )
        return checkout

    @staticmethod
    def error(status: int, detail: str) -> JSONResponse:
        """Polar's error body: `{"error": <its name>, "detail": <a sentence>}`."""
        name = ERRORS.get(status, "InternalServerError" if status >= 500 else "Error")
        return JSONResponse({"error": name, "detail": detail}, status_code=status)

    @staticmethod
    def invalid(loc: list[str], msg: str) -> JSONResponse:
        """Polar's validation error (422), as FastAPI words it."""
        return JSONResponse({"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]}, status_code=422)


# ---- webhook deliveries ---------------------------------------------------------------------------


def order_event(
    kind: str, order_id: str, account_id: int | None, amount_cents: int, refunded_cents: int = 0
) -> dict[str, Any]:
    """An `order.*` event as Polar sends it: the order of a one-time top-up of `amount_cents` (no tax, no
    discount), with `refunded_cents` refunded so far and the account in its metadata (none when None)."""
    metadata: dict[str, str] = {}
    if account_id is not None:
        metadata = {"account_id": str(account_id), "amount": str(Decimal(amount_cents) / 100)}
    if refunded_cents == 0:
        status = "paid"
    else:
        status = "refunded" if refunded_cents >= amount_cents else "partially_refunded"
    product_id = "prod_topup"
    customer = sample(outputs.OrderCustomer)
    customer.update(
        id=_id("cus_"),
        created_at=CREATED_AT,
        email="pay@example.test",
        email_verified=True,
        type="individual",
        name="Pay Example",
        organization_id=ORGANIZATION_ID,
    )
    product = sample(outputs.OrderProduct)
    product.update(
        id=product_id,
        created_at=CREATED_AT,
        name="Pricegraph balance top-up",
        visibility="public",
        organization_id=ORGANIZATION_ID,
    )
    item = sample(outputs.OrderItemSchema)
    item.update(id=_id("item_"), created_at=CREATED_AT, label="Pricegraph balance top-up", amount=amount_cents)
    order = sample(outputs.Order)
    order.update(
        id=order_id,
        created_at=CREATED_AT,
        modified_at=CREATED_AT,
        status=status,
        paid=True,
        subtotal_amount=amount_cents,
        discount_amount=0,
        net_amount=amount_cents,
        tax_amount=0,
        total_amount=amount_cents,
        applied_balance_amount=0,
        due_amount=0,
        refunded_amount=refunded_cents,
        refunded_tax_amount=0,
        refundable_amount=amount_cents - refunded_cents,
        refundable_tax_amount=0,
        currency="usd",
        billing_reason="purchase",
        billing_name="Pay Example",
        customer_id=customer["id"],
        product_id=product_id,
        checkout_id=_id("chk_"),
        metadata=metadata,
        platform_fee_amount=0,
        customer=customer,
        product=product,
        items=[item],
        description="Pricegraph balance top-up",
    )
    return {"type": kind, "timestamp": CREATED_AT, "api_version": API_VERSION, "data": order}


def signed(
    secret: str, event: dict[str, Any], msg_id: str | None = None, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery signed as Polar signs them: Standard Webhooks, HMAC-SHA256 over
    `{id}.{timestamp}.{body}` keyed with the secret's own bytes."""
    body = json.dumps(event, separators=(",", ":")).encode()
    msg_id = msg_id or _id("msg_")
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    signature = "v1," + base64.b64encode(digest).decode()
    return body, {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}
