"""The root types: each field of Query, Mutation and Subscription and the resolver that answers it, and the
executable schema built from them."""

from __future__ import annotations

from pathlib import Path

import strawberry

from resolvers import accounts, admin, alerts, catalog, history, live_candles, subscriptions
from resolvers import sources as price_sources
from resolvers import usage as usage_resolvers
from schema.accounts import Account, ApiKey, CreatedAccount, CreatedApiKey
from schema.alerts import (
    AlertSettings,
    Budget,
    BudgetAlert,
    Checkout,
    CreatedWebhookEndpoint,
    WebhookDelivery,
    WebhookEndpoint,
)
from schema.candles import CANDLES, Candle
from schema.catalog import Model, Price, Provider
from schema.compare import Comparison
from schema.executable import build
from schema.sources import PriceSource
from schema.subscriptions import OfferStatusChange
from schema.ticks import PriceTick, RecordedPrices
from schema.usage import (
    Balance,
    BalanceEvent,
    BalanceTransactionConnection,
    CreditedBalance,
    Usage,
    UsageEvent,
)


@strawberry.type
class Query:
    models: list[Model] = strawberry.field(
        resolver=catalog.models,
        description="Models by slug; filter by family, provider, capability or text.",
        extensions=[catalog.MODELS],
    )
    model: Model | None = strawberry.field(
        resolver=catalog.model, description="One model by canonical slug or any known spelling."
    )
    providers: list[Provider] = strawberry.field(
        resolver=catalog.providers, description="Providers with offers.", extensions=[catalog.PROVIDERS]
    )
    provider: Provider | None = strawberry.field(resolver=catalog.provider)
    prices: list[Price] = strawberry.field(
        resolver=catalog.prices,
        description="Current prices, for a model and/or a provider, cheapest first.",
        extensions=[catalog.PRICES],
    )
    candles: list[Candle] | None = strawberry.field(
        resolver=history.candles,
        description="OHLC candles of a model at a provider (developer plan; hourly and over 30 days: team).",
        extensions=[CANDLES],
    )
    compare: list[Comparison] | None = strawberry.field(
        resolver=catalog.compare, description="Up to 5 models side by side (team plan).", extensions=[catalog.COMPARED]
    )
    me: Account | None = strawberry.field(resolver=accounts.me, description="The account of the calling API key.")
    api_keys: list[ApiKey] | None = strawberry.field(
        resolver=accounts.api_keys, description="The account's API keys.", extensions=[accounts.KEYS]
    )
    sources: list[PriceSource] = strawberry.field(
        resolver=price_sources.sources,
        description="Price sources the server polls, and how their last polls went.",
        extensions=[price_sources.SOURCES],
    )
    balance: Balance | None = strawberry.field(
        resolver=usage_resolvers.balance, description="The account's balance, what is held and what is available."
    )
    usage: Usage | None = strawberry.field(
        resolver=usage_resolvers.usage_of_account,
        description="The account's usage: summary, by day, model, key and endpoint, and request logs.",
    )
    billing_history: BalanceTransactionConnection | None = strawberry.field(
        resolver=usage_resolvers.billing_history,
        description="The account's ledger rows, newest first.",
        extensions=[usage_resolvers.LOGS],
    )
    webhook_endpoints: list[WebhookEndpoint] = strawberry.field(
        resolver=alerts.webhook_endpoints,
        description="The account's webhook endpoints (team plan).",
        extensions=[alerts.ENDPOINTS],
    )
    webhook_deliveries: list[WebhookDelivery] = strawberry.field(
        resolver=alerts.webhook_deliveries,
        description="An endpoint's latest deliveries, newest first, with every attempt (team plan).",
        extensions=[alerts.DELIVERIES],
    )
    budgets: list[Budget] = strawberry.field(
        resolver=alerts.budgets_of_account,
        description="Monthly spend caps on the account and its keys.",
        extensions=[alerts.BUDGETS],
    )
    alert_settings: AlertSettings = strawberry.field(
        resolver=alerts.alert_settings, description="Where alerts are e-mailed, and the low-balance line."
    )


@strawberry.type
class Mutation:
    create_api_key: CreatedApiKey = strawberry.field(resolver=accounts.create_api_key)
    revoke_api_key: ApiKey = strawberry.field(resolver=accounts.revoke_api_key)
    record_prices: RecordedPrices = strawberry.field(
        resolver=admin.record_prices,
        description="Operators: observed prices; only changes become ticks.",
        extensions=[admin.RECORDED],
    )
    create_account: CreatedAccount = strawberry.field(resolver=admin.create_account, description="Operators.")
    set_plan: Account = strawberry.field(resolver=admin.set_plan, description="Operators.")
    credit_balance: CreditedBalance = strawberry.field(
        resolver=usage_resolvers.credit_balance,
        description="Operators: add USD to an account's balance, once per idempotency key.",
    )
    create_webhook_endpoint: CreatedWebhookEndpoint = strawberry.field(
        resolver=alerts.create_webhook_endpoint, description="A new endpoint; its signing secret is shown once."
    )
    update_webhook_endpoint: WebhookEndpoint = strawberry.field(resolver=alerts.update_webhook_endpoint)
    delete_webhook_endpoint: bool = strawberry.field(resolver=alerts.delete_webhook_endpoint)
    rotate_webhook_secret: CreatedWebhookEndpoint = strawberry.field(resolver=alerts.rotate_webhook_secret)
    resend_webhook_delivery: WebhookDelivery = strawberry.field(
        resolver=alerts.resend_webhook_delivery, description="Send a delivery again (the same webhook id)."
    )
    set_budget: Budget = strawberry.field(
        resolver=alerts.set_budget, description="Set the monthly cap (USD) of the account, or of one key."
    )
    remove_budget: bool = strawberry.field(resolver=alerts.remove_budget)
    set_alert_settings: AlertSettings = strawberry.field(resolver=alerts.set_alert_settings)
    create_checkout: Checkout = strawberry.field(
        resolver=alerts.create_checkout, description="A Polar checkout for a top-up of `amount` USD."
    )


@strawberry.type
class Subscription:
    # strawberry.subscription() is typed as its resolver's async generator, not the field's item type.
    price_changed: PriceTick = strawberry.subscription(  # type: ignore[assignment]
        resolver=subscriptions.price_changed,
        description="Each committed price change, filtered by model, provider and size of the move (percent).",
    )
    offer_status_changed: OfferStatusChange = strawberry.subscription(  # type: ignore[assignment]
        resolver=subscriptions.offer_status_changed,
        description="Offers moving between live, stale and unavailable.",
    )
    usage_recorded: UsageEvent = strawberry.subscription(  # type: ignore[assignment]
        resolver=usage_resolvers.usage_recorded, description="Each metered request of the caller's account."
    )
    balance_changed: BalanceEvent = strawberry.subscription(  # type: ignore[assignment]
        resolver=usage_resolvers.balance_changed, description="Each change of the caller's balance."
    )
    budget_alert: BudgetAlert = strawberry.subscription(  # type: ignore[assignment]
        resolver=alerts.budget_alert,
        description="The caller's budget thresholds and low-balance line as they are crossed.",
    )
    candle_updated: Candle = strawberry.subscription(  # type: ignore[assignment]
        resolver=live_candles.candle_updated,
        description="The forming candle of one offer's blended price: the current interval's OHLC when the "
        "subscription starts, on every tick that moves it, and when the next interval opens (developer plan; "
        "hourly: team).",
    )


schema = build(Query, Mutation, Subscription)

SDL_PATH = Path(__file__).resolve().parents[1] / "schema.graphql"  # the checked-in SDL, kept equal to the code


def schema_sdl() -> str:
    return schema.as_str() + "\n"
