"""Top-ups: `POST /v1/billing/checkout {"amount": 20}` answers a Polar checkout's URL for the caller's account;
`POST /v1/billing/polar/webhook` takes Polar's signed order events (403 and nothing changed on a bad signature
or a stale timestamp). Without POLAR_ACCESS_TOKEN the checkout answers 503; without POLAR_WEBHOOK_SECRET the
webhook does."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from datasources import polar, topups
from datasources.errors import BadInput
from routing.rest.endpoint import JSON, Call, endpoint, error
from routing.rest.usage_api import CURRENCY

log = logging.getLogger("pricegraph.billing")


def parse_top_up(raw: object) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | str | Decimal):
        raise BadInput("invalid parameter amount: expected a number of USD, e.g. 20")
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise BadInput(f"invalid parameter amount: {raw!r} is not a number") from None


@endpoint
async def checkout(call: Call) -> dict[str, Any]:
    account_id = call.principal.require_account()
    await call.admit(None)
    amount = parse_top_up((await call.body()).get("amount"))
    async with call.sessionmaker() as session:
        made = await topups.checkout(session, call.request.app.state.polar, account_id, amount)
    call.status = 201
    return {"object": "checkout", "id": made.id, "url": made.url, "amount": made.amount, "currency": CURRENCY}


async def polar_webhook(request: Request) -> Response:
    config: polar.PolarConfig | None = request.app.state.polar
    if config is None or not config.webhook_secret:
        return error(503, "Polar webhooks are not configured on this server (POLAR_WEBHOOK_SECRET)")
    body = await request.body()
    try:
        event = polar.parse_webhook(body, dict(request.headers), config.webhook_secret)
    except polar.WebhookRefused as exc:
        log.warning("refused a Polar webhook: %s", exc)
        return error(403, f"webhook refused: {exc}")
    if event is None:
        return JSON({"received": True, "action": "ignored"})
    async with request.app.state.sessionmaker() as session, session.begin():
        applied = await topups.apply(session, event, request.app.state.broker)
    return JSON({"received": True, "action": applied.action, "amount": applied.amount, "owed": applied.owed})


routes: list[BaseRoute] = [
    Route("/billing/checkout", checkout, methods=["POST"]),
    Route("/billing/polar/webhook", polar_webhook, methods=["POST"]),
]
