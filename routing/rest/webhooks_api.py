"""Webhook endpoints, budgets and alerts over REST (`/v1/webhooks`, `/v1/budgets`, `/v1/alerts`, `/v1/me/email`).

Webhooks need the Team plan or above (402 otherwise). Money is written as exact JSON numbers and times as
Unix seconds, as in the rest of the account API; a new endpoint's `secret` appears in the creating answer
(and when rotated) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from starlette.routing import BaseRoute, Route

from datasources import accounts, budgets, webhooks
from datasources.db.models import Account, Budget, DeliveryAttempt, OutboxMessage, WebhookEndpoint
from datasources.errors import BadInput, NotFound
from datasources.plans import Feature
from routing.rest.endpoint import Call, endpoint
from routing.rest.usage_api import CURRENCY, unix


def _strings(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"invalid parameter {name}: expected a list of strings")
    return value


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadInput(f"invalid parameter {name}: expected a string")
    return value


def endpoint_object(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "object": "webhook_endpoint",
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": webhooks.event_types(endpoint),
        "filters": {
            "models": webhooks.models_of(endpoint),
            "providers": webhooks.providers_of(endpoint),
            "min_change_pct": endpoint.min_change_pct,
        },
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": unix(endpoint.failing_since),
        "secret_hint": endpoint.secret_hint + "…",
        "created": unix(endpoint.created_at),
    }
    if secret is not None:
        found["secret"] = secret
    return found


def attempt_object(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "status": attempt.status,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
        "response": attempt.response,
        "created": unix(attempt.created_at),
    }


def delivery_object(message: OutboxMessage, attempts: Sequence[DeliveryAttempt]) -> dict[str, Any]:
    return {
        "object": "webhook_delivery",
        "id": message.id,
        "type": message.topic,
        "state": message.state,
        "attempts": [attempt_object(a) for a in attempts],
        "last_status": message.last_status,
        "last_error": message.last_error,
        "next_attempt": unix(message.next_attempt_at) if message.state == "pending" else None,
        "created": unix(message.created_at),
        "delivered": unix(message.delivered_at),
    }


# ---- webhooks ------------------------------------------------------------------------------------------


@endpoint
async def webhooks_collection(call: Call) -> dict[str, Any]:
    account_id = call.principal.require_account()
    await call.admit(Feature.WEBHOOKS)
    async with call.sessionmaker() as session, session.begin():
        if call.request.method == "POST":
            body = await call.body()
            url = _text(body, "url")
            if not url:
                raise BadInput("missing required parameter: url")
            created = await webhooks.create(
                session,
                account_id,
                url,
                call.request.app.state.sealer,
                events=_strings(body, "events") or (),
                models=_strings(body, "models") or (),
                providers=_strings(body, "providers") or (),
                min_change_pct=body.get("min_change_pct"),
                description=_text(body, "description") or "",
            )
            call.status = 201
            return endpoint_object(created.endpoint, created.secret)
        found = await webhooks.list_endpoints(session, account_id)
    return {"object": "list", "data": [endpoint_object(e) for e in found], "has_more": False}


@endpoint
async def webhook_item(call: Call) -> dict[str, Any]:
    account_id = call.principal.require_account()
    await call.admit(Feature.WEBHOOKS)
    endpoint_id = call.request.path_params["endpoint_id"]
    async with call.sessionmaker() as session, session.begin():
        if call.request.method == "DELETE":
            await webhooks.remove(session, account_id, endpoint_id)
            return {"object": "webhook_endpoint", "id": endpoint_id, "deleted": True}
        if call.request.method == "PATCH":
            body = await call.body()
            enabled = body.get("enabled")
            if enabled is not None and not isinstance(enabled, bool):
                raise BadInput("invalid parameter enabled: expected true or false")
            changes = webhooks.Changes(
                url=_text(body, "url"),
                events=_strings(body, "events"),
                models=_strings(body, "models"),
                providers=_strings(body, "providers"),
                min_change_pct=body["min_change_pct"] if "min_change_pct" in body else ...,
                description=_text(body, "description"),
                enabled=enabled,
            )
            return endpoint_object(await webhooks.change(session, account_id, endpoint_id, changes))
        return endpoint_object(await webhooks.get(session, account_id, endpoint_id))


@endpoint
async def rotate_secret(call: Call) -> dict[str, Any]:
    account_id = call.principal.require_account()
    await call.admit(Feature.WEBHOOKS)
    async with call.sessionmaker() as session, session.begin():
        rotated = await webhooks.rotate_secret(
            session, account_id, call.request.path_params["endpoint_id"], call.request.app.state.sealer
        )
    return endpoint_object(rotated.endpoint, rotated.secret)


@endpoint
async def deliveries(call: Call) -> dict[str, Any]:
    account_id = call.principal.require_account()
    await call.admit(Feature.WEBHOOKS)
    limit = call.integer("limit", 50, 1, 200)
    async with call.sessionmaker() as session:
        found = await webhooks.deliveries(session, account_id, call.request.path_params["endpoint_id"], limit)
    return {"object": "list", "data": [delivery_object(d.message, d.attempts) for d in found], "has_more": False}


@endpoint
async def send_again(call: Call) -> dict[str, Any]:
    account_id = call.principal.require_account()
    await call.admit(Feature.WEBHOOKS)
    raw = call.request.path_params["delivery_id"]
    if not raw.isdigit():
        raise BadInput(f"invalid parameter delivery_id: {raw!r} is not a delivery id")
    async with call.sessionmaker() as session, session.begin():
        message = await webhooks.send_again(session, account_id, call.request.path_params["endpoint_id"], int(raw))
    call.request.app.state.outbox.wake()
    call.status = 202
    return delivery_object(message, [])


# ---- budgets and alerts ----------------------------------------------------------------------------------


def budget_object(budget: Budget) -> dict[str, Any]:
    spent = budgets.spent_this_period(budget)
    return {
        "object": "budget",
        "scope": budget.scope,
        "key_id": None if budget.scope == budgets.ACCOUNT_SCOPE else budget.scope,
        "monthly_cap": budget.monthly_cap,
        "spent": spent,
        "remaining": max(Decimal(0), budget.monthly_cap - spent),
        "period": budgets.period_of(),
        "thresholds": budgets.thresholds_of(budget),
        "currency": CURRENCY,
    }


def alerts_object(account: Account) -> dict[str, Any]:
    return {
        "object": "alerts",
        "email": account.email,
        "low_balance": account.low_balance,
        "low_balance_alerted": account.low_balance_alerted,
        "currency": CURRENCY,
    }


@endpoint
async def budgets_collection(call: Call) -> dict[str, Any]:
    account_id = call.principal.require_account()
    await call.admit(None)
    async with call.sessionmaker() as session:
        found = await budgets.list_budgets(session, account_id)
    return {"object": "list", "data": [budget_object(b) for b in found], "has_more": False}


@endpoint
async def budget_item(call: Call) -> dict[str, Any]:
    """`/v1/budgets/account` or `/v1/budgets/keys/{key_id}`: PUT sets the cap, DELETE removes it."""
    account_id = call.principal.require_account()
    await call.admit(None)
    key_id = call.request.path_params.get("key_id")
    broker = call.request.app.state.broker
    async with call.sessionmaker() as session, session.begin():
        if call.request.method == "DELETE":
            removed = await budgets.remove_budget(session, account_id, key_id, broker)
            return {"object": "budget", "scope": key_id or budgets.ACCOUNT_SCOPE, "deleted": removed}
        if call.request.method == "PUT":
            body = await call.body()
            if "monthly_cap" not in body:
                raise BadInput("missing required parameter: monthly_cap")
            thresholds = body.get("thresholds")
            if thresholds is not None and not isinstance(thresholds, list):
                raise BadInput("invalid parameter thresholds: expected a list of percentages")
            budget = await budgets.set_budget(session, account_id, body["monthly_cap"], key_id, thresholds, broker)
            return budget_object(budget)
        for budget in await budgets.list_budgets(session, account_id):
            if budget.scope == (key_id or budgets.ACCOUNT_SCOPE):
                return budget_object(budget)
    raise NotFound(f"no budget is set for {'key ' + key_id if key_id else 'the account'}")


@endpoint
async def alerts(call: Call) -> dict[str, Any]:
    """GET the account's e-mail address and low-balance line; PATCH `{"email", "low_balance"}` to set them."""
    account_id = call.principal.require_account()
    await call.admit(None)
    async with call.sessionmaker() as session, session.begin():
        if call.request.method == "PATCH":
            body = await call.body()
            if "email" in body:
                email = _text(body, "email")
                await accounts.set_email(session, account_id, email or None)
            if "low_balance" in body:
                await accounts.set_low_balance(session, account_id, budgets.parse_low_balance(body["low_balance"]))
        account = await accounts.get_account(session, account_id)
    return alerts_object(account)


routes: list[BaseRoute] = [
    Route("/webhooks", webhooks_collection, methods=["GET", "POST"]),
    Route("/webhooks/{endpoint_id}", webhook_item, methods=["GET", "PATCH", "DELETE"]),
    Route("/webhooks/{endpoint_id}/rotate-secret", rotate_secret, methods=["POST"]),
    Route("/webhooks/{endpoint_id}/deliveries", deliveries),
    Route("/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend", send_again, methods=["POST"]),
    Route("/budgets", budgets_collection),
    Route("/budgets/account", budget_item, methods=["GET", "PUT", "DELETE"]),
    Route("/budgets/keys/{key_id}", budget_item, methods=["GET", "PUT", "DELETE"]),
    Route("/alerts", alerts, methods=["GET", "PATCH"]),
]
