"""A fake of the Polar API: a real HTTP server on 127.0.0.1 answering `POST /v1/checkouts/` with a checkout
in the shape the official SDK reads (every field its model requires), checking the bearer token and
recording each request; plus order events signed as Polar signs its webhooks."""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import threading
import time
import types
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from polar.v2026_10 import outputs
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import LiveServer


def sample(tp: Any) -> Any:
    """A value of type `tp` as JSON: None where allowed, the first literal, empty containers, and
    nested objects built the same way."""
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


@dataclass
class FakePolar:
    token: str = "polar_oat_test_token"
    seen: list[dict[str, Any]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server = LiveServer(Starlette(routes=[Route("/v1/checkouts/", self.checkout, methods=["POST"])]))
        self.url = self.server.url

    def __enter__(self) -> FakePolar:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def fail_next(self, status: int) -> None:
        with self.lock:
            self.failures.append(status)

    async def checkout(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            self.seen.append({"body": body, "authorization": request.headers.get("authorization")})
            failure = self.failures.pop(0) if self.failures else None
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "invalid_token", "detail": "Invalid access token"}, status_code=401)
        if failure is not None:
            return JSONResponse({"error": "server_error", "detail": "fake failure"}, status_code=failure)
        client_secret = "polar_c_" + secrets.token_hex(12)
        made = sample(outputs.Checkout)
        made.update(
            id="chk_" + secrets.token_hex(8),
            client_secret=client_secret,
            url=f"{self.url}/checkout/{client_secret}",
            amount=body.get("amount") or 0,
            total_amount=body.get("amount") or 0,
            net_amount=body.get("amount") or 0,
            currency="usd",
            metadata=body.get("metadata", {}),
            product_id=(body.get("products") or [None])[0],
            status="open",
            created_at="2026-12-02T00:00:00Z",
            expires_at="2026-12-02T01:00:00Z",
            success_url=body.get("success_url") or "https://polar.sh/success",
        )
        return JSONResponse(made, status_code=201)


def order_event(
    kind: str, order_id: str, account_id: int | None, amount_cents: int, refunded_cents: int = 0
) -> dict[str, Any]:
    metadata = {} if account_id is None else {"account_id": str(account_id)}
    order = sample(outputs.Order)
    order.update(
        id=order_id,
        status="refunded" if refunded_cents else "paid",
        paid=True,
        subtotal_amount=amount_cents,
        net_amount=amount_cents,
        total_amount=amount_cents,
        refunded_amount=refunded_cents,
        currency="usd",
        metadata=metadata,
        created_at="2026-12-02T00:00:00Z",
    )
    return {"type": kind, "timestamp": "2026-12-02T00:00:00Z", "data": order}


def signed(
    secret: str, event: dict[str, Any], msg_id: str | None = None, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery signed as Polar signs them (the secret's bytes are the key)."""
    body = json.dumps(event).encode()
    msg_id = msg_id or "msg_" + secrets.token_hex(10)
    stamp = int(time.time()) if timestamp is None else timestamp
    key = base64.b64encode(secret.encode()).decode()
    signature = Webhook(key).sign(msg_id, datetime.fromtimestamp(stamp, UTC), body.decode())
    return body, {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}
