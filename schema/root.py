"""The schema: root types assembled from per-domain resolvers, with the limits every operation obeys."""

from __future__ import annotations

import asyncio
from typing import Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types.graphql import OperationType

from resolvers import accounts, admin, catalog, history, subscriptions
from resolvers import sources as price_sources
from resolvers import usage as usage_resolvers
from schema.accounts import Account, ApiKey, CreatedAccount, CreatedApiKey
from schema.candles import Candle
from schema.catalog import Model, Price, Provider
from schema.compare import Comparison
from schema.documents import CachedDocuments
from schema.guard import Guard
from schema.pacing import Pacing
from schema.sources import PriceSource
from schema.subscriptions import OfferStatusChange
from schema.ticks import PriceTick, RecordedPrices
from schema.usage import SCALARS as USAGE_SCALARS
from schema.usage import (
    Balance,
    BalanceEvent,
    BalanceTransactionConnection,
    CreditedBalance,
    Usage,
    UsageEvent,
)

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000


@strawberry.type
class Query:
    models: list[Model] = strawberry.field(
        resolver=catalog.models, description="Models by slug; filter by family, provider, capability or text.",
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
        resolver=catalog.prices, description="Current prices, for a model and/or a provider, cheapest first.",
        extensions=[catalog.PRICES],
    )
    candles: list[Candle] | None = strawberry.field(
        resolver=history.candles,
        description="OHLC candles of a model at a provider (developer plan; hourly and over 30 days: team).",
        extensions=[history.CANDLES],
    )
    compare: list[Comparison] | None = strawberry.field(
        resolver=catalog.compare, description="Up to 5 models side by side (team plan).", extensions=[catalog.COMPARED]
    )
    me: Account | None = strawberry.field(resolver=accounts.me, description="The account of the calling API key.")
    api_keys: list[ApiKey] | None = strawberry.field(
        resolver=accounts.api_keys, description="The account's API keys.", extensions=[accounts.KEYS]
    )
    sources: list[PriceSource] = strawberry.field(
        resolver=price_sources.sources, description="Price sources the server polls, and how their last polls went.",
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
        resolver=usage_resolvers.billing_history, description="The account's ledger rows, newest first.",
        extensions=[usage_resolvers.LOGS],
    )


@strawberry.type
class Mutation:
    create_api_key: CreatedApiKey = strawberry.field(resolver=accounts.create_api_key)
    revoke_api_key: ApiKey = strawberry.field(resolver=accounts.revoke_api_key)
    record_prices: RecordedPrices = strawberry.field(
        resolver=admin.record_prices, description="Operators: observed prices; only changes become ticks.",
        extensions=[admin.RECORDED],
    )
    create_account: CreatedAccount = strawberry.field(resolver=admin.create_account, description="Operators.")
    set_plan: Account = strawberry.field(resolver=admin.set_plan, description="Operators.")
    credit_balance: CreditedBalance = strawberry.field(
        resolver=usage_resolvers.credit_balance,
        description="Operators: add USD to an account's balance, once per idempotency key.",
    )


@strawberry.type
class Subscription:
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


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:  # type: ignore[no-untyped-def]
        """Errors are logged where they are coded (schema/guard.py): only unexpected ones, once."""

    async def _execute_operation(self, execution_context: Any, *args: Any, **kwargs: Any) -> Any:
        """A query (over HTTP or a websocket) that runs past the deadline is cancelled and answers one
        `DEADLINE_EXCEEDED` error; the pacer makes sure the loop gets to cancel it. Mutations run to
        their end: their input is bounded, and one cancelled after its commit would answer an error for
        a change that was made."""
        if execution_context.operation_type is not OperationType.QUERY:
            return await super()._execute_operation(execution_context, *args, **kwargs)
        deadline = execution_context.context.limits.deadline
        timeout = asyncio.timeout(deadline)
        try:
            async with timeout:
                return await super()._execute_operation(execution_context, *args, **kwargs)
        except TimeoutError:
            if not timeout.expired():
                raise
        message = f"the operation ran longer than {deadline:g} s and was stopped; ask for less"
        result = GraphQLExecutionResult(data=None, errors=[
            GraphQLError(message, extensions={"code": "DEADLINE_EXCEEDED"})
        ])
        execution_context.result = result
        return result


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        CachedDocuments,
        Guard,
        Pacing,
    ],
    config=StrawberryConfig(scalar_map={**USAGE_SCALARS}),  # type: ignore[dict-item]
)
