"""Usage, balance and billing history of the caller's account, and their live events."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import NewType, TypedDict

import strawberry

from datasources import billing, paging, pricing, usage
from datasources.db.models import UsageRecord
from datasources.errors import BadInput
from datasources.events import BalanceChanged, UsageRecorded
from schema.bounds import Page, Sized
from schema.context import Info

BigInt = NewType("BigInt", int)
SCALARS = {  # for the schema's StrawberryConfig(scalar_map=...)
    BigInt: strawberry.scalar(
        name="BigInt",
        serialize=int,
        parse_value=int,
        description="A whole number that may exceed 32 bits (token counts), as a JSON number.",
    ),
}

GROUPS = Page(default=usage.DEFAULT_LIMIT, maximum=usage.MAX_LIMIT)  # byDay, byModel, byKey, byEndpoint
LOGS = Page(default=50, maximum=usage.MAX_LIMIT)  # usage logs and billing history


@strawberry.type(description="The account's money in USD.")
class Balance:
    balance: Decimal = strawberry.field(description="The prepaid balance.")
    held: Decimal = strawberry.field(description="Reserved by requests in flight (their most possible cost).")
    available: Decimal = strawberry.field(description="What new requests may spend: balance - held.")
    currency: str = "usd"

    @classmethod
    def of(cls, value: billing.Balance) -> Balance:
        return cls(balance=value.balance, held=value.held, available=value.available)


@strawberry.input(description="Usage filters; all optional. Without a period or times: all time.")
class UsageFilter:
    period: str | None = strawberry.field(
        default=None, description="24h, 7d, 30d or 90d, ending at endTime (default now); excludes startTime."
    )
    start_time: datetime | None = strawberry.field(default=None, description="Inclusive.")
    end_time: datetime | None = strawberry.field(default=None, description="Exclusive.")
    model: str | None = strawberry.field(
        default=None,
        description="A model slug (any provider) or provider/model (that provider), e.g. openai/gpt-4o-mini.",
    )
    key_id: strawberry.ID | None = strawberry.field(default=None, description="One of the account's API keys.")
    endpoint: str | None = strawberry.field(default=None, description="e.g. /v1/chat/completions")

    def to_filter(self) -> usage.UsageFilter:
        for name, moment in (("startTime", self.start_time), ("endTime", self.end_time)):
            if moment is not None and moment.tzinfo is None:
                raise BadInput(f"{name}: give a time zone (e.g. 2026-05-12T14:32:00Z)")
        return usage.UsageFilter(
            period=self.period,
            start=self.start_time,
            end=self.end_time,
            model=self.model,
            key_id=str(self.key_id) if self.key_id is not None else None,
            endpoint=self.endpoint,
        )


@strawberry.type(description="What requests cost, by part, in USD; the parts add up to the cost.")
class CostBreakdown:
    input: Decimal = strawberry.field(description="Uncached prompt tokens.")
    cache_read: Decimal = strawberry.field(description="Prompt tokens read from the provider's cache.")
    cache_write: Decimal = strawberry.field(description="Prompt tokens written to the provider's cache.")
    output: Decimal = strawberry.field(description="Completion tokens (reasoning ones too, unless priced apart).")
    reasoning: Decimal = strawberry.field(description="Reasoning tokens, where priced apart from output.")
    request: Decimal = strawberry.field(description="Per-request fees.")
    search: Decimal = strawberry.field(description="Per-search fees.")

    @classmethod
    def of(cls, parts: pricing.Cost) -> CostBreakdown:
        return cls(**parts.parts())


class TotalsFields(TypedDict):
    """UsageTotals' fields, as keyword arguments."""

    requests: int
    successful_requests: int
    failed_requests: int
    input_tokens: BigInt
    output_tokens: BigInt
    total_tokens: BigInt
    cached_tokens: BigInt
    cache_write_tokens: BigInt
    reasoning_tokens: BigInt
    cost: Decimal
    cost_breakdown: CostBreakdown


@strawberry.type(description="Totals over the usage records a filter selects; cost in USD.")
class UsageTotals:
    requests: int
    successful_requests: int = strawberry.field(description="Status 2xx or 3xx.")
    failed_requests: int
    input_tokens: BigInt = strawberry.field(description="Every prompt token, cached ones included.")
    output_tokens: BigInt = strawberry.field(description="Every completion token, reasoning included.")
    total_tokens: BigInt
    cached_tokens: BigInt = strawberry.field(description="Prompt tokens read from the provider's cache.")
    cache_write_tokens: BigInt = strawberry.field(description="Prompt tokens written to the provider's cache.")
    reasoning_tokens: BigInt = strawberry.field(description="Completion tokens spent on reasoning.")
    cost: Decimal
    cost_breakdown: CostBreakdown

    @staticmethod
    def values(totals: usage.Totals) -> TotalsFields:
        return {
            "requests": totals.requests,
            "successful_requests": totals.successful,
            "failed_requests": totals.failed,
            "input_tokens": BigInt(totals.input_tokens),
            "output_tokens": BigInt(totals.output_tokens),
            "total_tokens": BigInt(totals.total_tokens),
            "cached_tokens": BigInt(totals.cached_tokens),
            "cache_write_tokens": BigInt(totals.cache_write_tokens),
            "reasoning_tokens": BigInt(totals.reasoning_tokens),
            "cost": totals.cost,
            "cost_breakdown": CostBreakdown.of(totals.breakdown),
        }

    @classmethod
    def of(cls, totals: usage.Totals) -> UsageTotals:
        return cls(**UsageTotals.values(totals))


@strawberry.type(description="Usage of one model (all providers).")
class ModelUsage(UsageTotals):
    model: str


@strawberry.type(description="Usage of one endpoint.")
class EndpointUsage(UsageTotals):
    endpoint: str


@strawberry.type(description="Usage through one API key (keyId null: requests without a key).")
class KeyUsage(UsageTotals):
    key_id: strawberry.ID | None
    name: str | None
    prefix: str | None
    revoked: bool


@strawberry.type(description="Usage of one UTC day.")
class DailyUsage(UsageTotals):
    date: date


@strawberry.type(description="One metered request.")
class UsageLog:
    row: strawberry.Private[UsageRecord]

    @strawberry.field(description="usage_N; the cursor for logs(after:).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(f"{usage.USAGE_ID}{self.row.id}")

    @strawberry.field
    def request_id(self) -> str | None:
        return self.row.request_id

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field
    def model(self) -> str:
        return self.row.model_slug

    @strawberry.field
    def provider(self) -> str | None:
        return self.row.provider_slug

    @strawberry.field
    def variant(self) -> str | None:
        return self.row.variant

    @strawberry.field
    def endpoint(self) -> str:
        return self.row.endpoint

    @strawberry.field
    def key_id(self) -> strawberry.ID | None:
        return strawberry.ID(self.row.api_key_id) if self.row.api_key_id else None

    @strawberry.field
    def key_source(self) -> str | None:
        return self.row.key_source

    @strawberry.field
    def status(self) -> int:
        return self.row.status

    @strawberry.field
    def success(self) -> bool:
        return usage.succeeded(self.row.status)

    @strawberry.field
    def input_tokens(self) -> int:
        return self.row.prompt_tokens

    @strawberry.field
    def output_tokens(self) -> int:
        return self.row.completion_tokens

    @strawberry.field(description="Prompt tokens read from the provider's cache (part of inputTokens).")
    def cached_tokens(self) -> int:
        return self.row.cache_read_tokens

    @strawberry.field(description="Prompt tokens written to the provider's cache (part of inputTokens).")
    def cache_write_tokens(self) -> int:
        return self.row.cache_write_tokens

    @strawberry.field(description="Completion tokens spent on reasoning (part of outputTokens).")
    def reasoning_tokens(self) -> int:
        return self.row.reasoning_tokens

    @strawberry.field(description="True when the upstream reported no usage and the tokens were counted here.")
    def estimated(self) -> bool:
        return self.row.estimated

    @strawberry.field(description="USD.")
    def cost(self) -> Decimal:
        return self.row.cost

    @strawberry.field(description="The cost by part, USD.")
    def cost_breakdown(self) -> CostBreakdown:
        return CostBreakdown(**{part: getattr(self.row, f"cost_{part}") for part in pricing.COST_PARTS})

    @strawberry.field
    def latency_ms(self) -> int | None:
        return self.row.latency_ms


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None = strawberry.field(description="Pass as `after` for the next page.")


@strawberry.type
class UsageLogConnection:
    nodes: list[UsageLog] = strawberry.field(extensions=[Sized.BY_PARENT])
    page_info: PageInfo


@strawberry.type(description="One ledger row: a top-up (positive amount) or a deduction (negative).")
class BalanceTransaction:
    row: strawberry.Private[billing.Transaction]

    @strawberry.field(description="txn_N; the cursor for billingHistory(after:).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(f"{billing.TRANSACTION_ID}{self.row.row.id}")

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.row.created_at

    @strawberry.field(description="credit, usage, debit...")
    def type(self) -> str:
        return self.row.row.type

    @strawberry.field(description="USD, signed.")
    def amount(self) -> Decimal:
        return self.row.row.amount

    @strawberry.field
    def balance_after(self) -> Decimal:
        return self.row.row.balance_after

    @strawberry.field
    def description(self) -> str:
        return self.row.row.description

    @strawberry.field
    def currency(self) -> str:
        return "usd"

    @strawberry.field(description="The usage log this deduction paid for.")
    def usage_id(self) -> strawberry.ID | None:
        record = self.row.row.usage_record_id
        return strawberry.ID(f"{usage.USAGE_ID}{record}") if record is not None else None

    @strawberry.field
    def request_id(self) -> str | None:
        return self.row.request_id


@strawberry.type
class BalanceTransactionConnection:
    nodes: list[BalanceTransaction] = strawberry.field(extensions=[Sized.BY_PARENT])
    page_info: PageInfo


@strawberry.type(description="An operator's credit: the ledger row and the balance after it.")
class CreditedBalance:
    transaction: BalanceTransaction
    balance: Balance
    replayed: bool = strawberry.field(
        description="True when this idempotency key had already credited: nothing moved this time."
    )


@strawberry.type(description="The caller's usage over one filter; each field is its own query.")
class Usage:
    scope: strawberry.Private[usage.Scope]

    @strawberry.field(description="The period asked for, if any.")
    def period(self) -> str | None:
        return self.scope.period

    @strawberry.field(description="Start of the window (inclusive); null: from the first record.")
    def start_time(self) -> datetime | None:
        return self.scope.start

    @strawberry.field(description="End of the window (exclusive); null: up to now.")
    def end_time(self) -> datetime | None:
        return self.scope.end

    @strawberry.field
    async def summary(self, info: Info) -> UsageTotals:
        async with info.context.sessionmaker() as session:
            return UsageTotals.of(await usage.totals(session, self.scope))

    @strawberry.field(
        description="Per UTC day with usage, oldest first; `first` keeps the most recent days.", extensions=[GROUPS]
    )
    async def by_day(self, info: Info, first: int = GROUPS.default) -> list[DailyUsage]:
        GROUPS.check(first)
        async with info.context.sessionmaker() as session:
            page = await usage.by_day(session, self.scope, first)
        return [DailyUsage(date=g.key, **UsageTotals.values(g.totals)) for g in page.items]

    @strawberry.field(description="Per model, most expensive first.", extensions=[GROUPS])
    async def by_model(self, info: Info, first: int = GROUPS.default) -> list[ModelUsage]:
        GROUPS.check(first)
        async with info.context.sessionmaker() as session:
            page = await usage.by_model(session, self.scope, first)
        return [ModelUsage(model=g.key, **UsageTotals.values(g.totals)) for g in page.items]

    @strawberry.field(description="Per API key, most expensive first.", extensions=[GROUPS])
    async def by_key(self, info: Info, first: int = GROUPS.default) -> list[KeyUsage]:
        GROUPS.check(first)
        async with info.context.sessionmaker() as session:
            page = await usage.by_key(session, self.scope, first)
        return [
            KeyUsage(
                key_id=strawberry.ID(g.key) if g.key else None,
                name=g.name,
                prefix=g.prefix,
                revoked=g.revoked_at is not None,
                **UsageTotals.values(g.totals),
            )
            for g in page.items
        ]

    @strawberry.field(description="Per endpoint, most expensive first.", extensions=[GROUPS])
    async def by_endpoint(self, info: Info, first: int = GROUPS.default) -> list[EndpointUsage]:
        GROUPS.check(first)
        async with info.context.sessionmaker() as session:
            page = await usage.by_endpoint(session, self.scope, first)
        return [EndpointUsage(endpoint=g.key, **UsageTotals.values(g.totals)) for g in page.items]

    @strawberry.field(description="Request logs, newest first.", extensions=[LOGS])
    async def logs(self, info: Info, first: int = LOGS.default, after: str | None = None) -> UsageLogConnection:
        LOGS.check(first)
        cursor = paging.parse_id(after, usage.USAGE_ID) if after is not None else None
        async with info.context.sessionmaker() as session:
            page = await usage.logs(session, self.scope, first, cursor)
        nodes = [UsageLog(row=r) for r in page.items]
        return UsageLogConnection(
            nodes=nodes,
            page_info=PageInfo(
                has_next_page=page.has_more,
                end_cursor=str(nodes[-1].id()) if nodes else None,
            ),
        )


@strawberry.type(description="A metered request of the caller's account, as it is recorded.")
class UsageEvent:
    row: strawberry.Private[UsageRecorded]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(f"{usage.USAGE_ID}{self.row.usage_id}")

    @strawberry.field
    def model(self) -> str:
        return self.row.model

    @strawberry.field
    def provider(self) -> str | None:
        return self.row.provider

    @strawberry.field
    def endpoint(self) -> str:
        return self.row.endpoint

    @strawberry.field
    def key_id(self) -> strawberry.ID | None:
        return strawberry.ID(self.row.api_key_id) if self.row.api_key_id else None

    @strawberry.field
    def status(self) -> int:
        return self.row.status

    @strawberry.field
    def input_tokens(self) -> int:
        return self.row.prompt_tokens

    @strawberry.field
    def output_tokens(self) -> int:
        return self.row.completion_tokens

    @strawberry.field(description="Prompt tokens read from the provider's cache (part of inputTokens).")
    def cached_tokens(self) -> int:
        return self.row.cached_tokens

    @strawberry.field(description="Completion tokens spent on reasoning (part of outputTokens).")
    def reasoning_tokens(self) -> int:
        return self.row.reasoning_tokens

    @strawberry.field
    def estimated(self) -> bool:
        return self.row.estimated

    @strawberry.field(description="USD.")
    def cost(self) -> Decimal:
        return self.row.cost

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at


@strawberry.type(description="The caller's balance moved: one ledger row.")
class BalanceEvent:
    row: strawberry.Private[BalanceChanged]

    @strawberry.field(description="txn_N of the ledger row (de-duplicate on it).")
    def transaction_id(self) -> strawberry.ID | None:
        txn = self.row.transaction_id
        return strawberry.ID(f"{billing.TRANSACTION_ID}{txn}") if txn is not None else None

    @strawberry.field
    def type(self) -> str:
        return self.row.type

    @strawberry.field(description="USD, signed.")
    def amount(self) -> Decimal:
        return self.row.amount

    @strawberry.field(description="The balance after this change.")
    def balance(self) -> Decimal:
        return self.row.balance

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at
