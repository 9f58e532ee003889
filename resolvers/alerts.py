"""Webhook endpoints, budgets, alert settings, the budgetAlert subscription and top-up checkouts."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from decimal import Decimal

import strawberry

from datasources import accounts, budgets, plans, topups, webhooks
from datasources.errors import BadInput
from datasources.events import AlertRaised, Event
from resolvers.subscriptions import _events
from schema.alerts import (
    AlertSettings,
    Budget,
    BudgetAlert,
    Checkout,
    CreatedWebhookEndpoint,
    WebhookDelivery,
    WebhookEndpoint,
)
from schema.bounds import Page, Sized
from schema.context import Info

ENDPOINTS = Sized.fixed(webhooks.MAX_ENDPOINTS, "an account's endpoints")
DELIVERIES = Page(default=50, maximum=200)
BUDGETS = Sized.fixed(budgets.MAX_BUDGETS, "an account's budgets")


def _webhooks_allowed(info: Info) -> int:
    account_id = info.context.caller.require_account()
    plans.require(plans.RULES[info.context.caller.plan], plans.Feature.WEBHOOKS)
    return account_id


@strawberry.input
class WebhookEndpointInput:
    url: str | None = None
    events: list[str] | None = None
    models: list[str] | None = None
    providers: list[str] | None = None
    min_change_pct: Decimal | None = strawberry.UNSET
    description: str | None = None
    enabled: bool | None = None


async def webhook_endpoints(info: Info) -> list[WebhookEndpoint]:
    account_id = _webhooks_allowed(info)
    async with info.context.sessionmaker() as session:
        return [WebhookEndpoint(row=e) for e in await webhooks.list_endpoints(session, account_id)]


async def webhook_deliveries(info: Info, endpoint_id: strawberry.ID, first: int = 50) -> list[WebhookDelivery]:
    account_id = _webhooks_allowed(info)
    DELIVERIES.check(first)
    async with info.context.sessionmaker() as session:
        found = await webhooks.deliveries(session, account_id, str(endpoint_id), first)
    return [WebhookDelivery.of(d.message, d.attempts) for d in found]


async def create_webhook_endpoint(info: Info, input: WebhookEndpointInput) -> CreatedWebhookEndpoint:  # noqa: A002
    account_id = _webhooks_allowed(info)
    if not input.url:
        raise BadInput("input.url: required")
    async with info.context.sessionmaker() as session, session.begin():
        created = await webhooks.create(
            session,
            account_id,
            input.url,
            info.context.request.app.state.sealer,
            events=input.events or (),
            models=input.models or (),
            providers=input.providers or (),
            min_change_pct=None if input.min_change_pct is strawberry.UNSET else input.min_change_pct,
            description=input.description or "",
        )
    return CreatedWebhookEndpoint(endpoint=WebhookEndpoint(row=created.endpoint), secret=created.secret)


async def update_webhook_endpoint(
    info: Info,
    id: strawberry.ID,  # noqa: A002
    input: WebhookEndpointInput,  # noqa: A002
) -> WebhookEndpoint:
    account_id = _webhooks_allowed(info)
    changes = webhooks.Changes(
        url=input.url,
        events=input.events,
        models=input.models,
        providers=input.providers,
        min_change_pct=... if input.min_change_pct is strawberry.UNSET else input.min_change_pct,
        description=input.description,
        enabled=input.enabled,
    )
    async with info.context.sessionmaker() as session, session.begin():
        return WebhookEndpoint(row=await webhooks.change(session, account_id, str(id), changes))


async def delete_webhook_endpoint(info: Info, id: strawberry.ID) -> bool:  # noqa: A002
    account_id = _webhooks_allowed(info)
    async with info.context.sessionmaker() as session, session.begin():
        await webhooks.remove(session, account_id, str(id))
    return True


async def rotate_webhook_secret(info: Info, id: strawberry.ID) -> CreatedWebhookEndpoint:  # noqa: A002
    account_id = _webhooks_allowed(info)
    async with info.context.sessionmaker() as session, session.begin():
        rotated = await webhooks.rotate_secret(session, account_id, str(id), info.context.request.app.state.sealer)
    return CreatedWebhookEndpoint(endpoint=WebhookEndpoint(row=rotated.endpoint), secret=rotated.secret)


async def resend_webhook_delivery(
    info: Info, endpoint_id: strawberry.ID, delivery_id: strawberry.ID
) -> WebhookDelivery:
    account_id = _webhooks_allowed(info)
    if not str(delivery_id).isdigit():
        raise BadInput(f"deliveryId: {delivery_id!r} is not a delivery id")
    async with info.context.sessionmaker() as session, session.begin():
        message = await webhooks.send_again(session, account_id, str(endpoint_id), int(delivery_id))
    info.context.request.app.state.outbox.wake()
    return WebhookDelivery.of(message, [])


async def budgets_of_account(info: Info) -> list[Budget]:
    account_id = info.context.caller.require_account()
    async with info.context.sessionmaker() as session:
        return [Budget(row=b) for b in await budgets.list_budgets(session, account_id)]


async def set_budget(
    info: Info, monthly_cap: Decimal, key_id: strawberry.ID | None = None, thresholds: list[int] | None = None
) -> Budget:
    account_id = info.context.caller.require_account()
    async with info.context.sessionmaker() as session, session.begin():
        budget = await budgets.set_budget(
            session, account_id, monthly_cap, str(key_id) if key_id else None, thresholds, info.context.broker
        )
    return Budget(row=budget)


async def remove_budget(info: Info, key_id: strawberry.ID | None = None) -> bool:
    account_id = info.context.caller.require_account()
    async with info.context.sessionmaker() as session, session.begin():
        return await budgets.remove_budget(session, account_id, str(key_id) if key_id else None, info.context.broker)


async def alert_settings(info: Info) -> AlertSettings:
    account_id = info.context.caller.require_account()
    async with info.context.sessionmaker() as session:
        account = await accounts.get_account(session, account_id)
    return AlertSettings(email=account.email, low_balance=account.low_balance)


async def set_alert_settings(
    info: Info, email: str | None = strawberry.UNSET, low_balance: Decimal | None = strawberry.UNSET
) -> AlertSettings:
    """Set the account's e-mail address and/or its low-balance line (null clears either)."""
    account_id = info.context.caller.require_account()
    async with info.context.sessionmaker() as session, session.begin():
        if email is not strawberry.UNSET:
            await accounts.set_email(session, account_id, email or None)
        if low_balance is not strawberry.UNSET:
            await accounts.set_low_balance(session, account_id, budgets.parse_low_balance(low_balance))
        account = await accounts.get_account(session, account_id)
    return AlertSettings(email=account.email, low_balance=account.low_balance)


async def create_checkout(info: Info, amount: Decimal) -> Checkout:
    account_id = info.context.caller.require_account()
    async with info.context.sessionmaker() as session:
        made = await topups.checkout(session, info.context.request.app.state.polar, account_id, amount)
    return Checkout(id=made.id, url=made.url, amount=made.amount)


async def budget_alert(info: Info) -> AsyncGenerator[BudgetAlert, None]:
    account_id = info.context.caller.require_account()

    def accepts(event: Event) -> bool:
        return isinstance(event, AlertRaised) and event.account_id == account_id

    async for event in _events(info.context, accepts):
        assert isinstance(event, AlertRaised)
        yield BudgetAlert(row=event)
