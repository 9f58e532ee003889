"""Operator mutations: they need `Authorization: Bearer <ADMIN_TOKEN>`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from datasources import accounts
from datasources.catalog.record import Observation
from datasources.catalog.record import record_prices as record
from datasources.db.models import Plan as DbPlan
from datasources.errors import BadInput
from datasources.money import parse_amount
from datasources.notices import announce
from schema.accounts import Account, ApiKey, CreatedAccount, Plan
from schema.bounds import Sized
from schema.context import Info
from schema.ticks import PriceTick, RecordedPrices

MAX_OBSERVATIONS = 1000
RECORDED = Sized(
    lambda arguments: min(len(arguments.get("prices") or ()), MAX_OBSERVATIONS) or MAX_OBSERVATIONS,
    "a tick per observation",
)


@strawberry.input(description="An observed price of a model at a provider (and variant).")
class PriceInput:
    model: str
    provider: str
    input_per_1m: Decimal
    output_per_1m: Decimal
    variant: str = ""
    provider_model_id: str | None = None
    context_window: int | None = None
    supports_vision: bool | None = None
    supports_tools: bool | None = None


async def record_prices(info: Info, prices: list[PriceInput], observed_at: datetime | None = None) -> RecordedPrices:
    info.context.caller.require_admin()
    if not 1 <= len(prices) <= MAX_OBSERVATIONS:
        raise BadInput(f"prices: give 1 to {MAX_OBSERVATIONS} observations, got {len(prices)}")
    if observed_at is not None and observed_at.tzinfo is None:
        raise BadInput("observedAt: give a time zone (e.g. 2026-05-12T14:32:00Z)")
    observations = [Observation(**vars(p)) for p in prices]
    async with info.context.sessionmaker() as session, session.begin():
        result = await record(session, observations, observed_at)
        await announce(session, result.events, info.context.broker)
    if result.changed:
        await info.context.book.reload()  # read our own writes at once
    return RecordedPrices(
        ticks=[PriceTick(row=t) for t in result.ticks],
        unchanged=result.unchanged,
        offers_created=result.offers_created,
    )


async def create_account(info: Info, plan: Plan, credit: Decimal = Decimal(0), name: str = "") -> CreatedAccount:
    info.context.caller.require_admin()
    credit = parse_amount(credit, "credit", allow_zero=True)
    async with info.context.sessionmaker() as session, session.begin():
        account, issued = await accounts.create_account(session, DbPlan(plan.value), credit, name, info.context.broker)
    return CreatedAccount(account=Account(row=account), key=ApiKey(row=issued.key), secret=issued.secret)


async def set_plan(info: Info, account_id: strawberry.ID, plan: Plan) -> Account:
    info.context.caller.require_admin()
    try:
        numeric_id = int(account_id)
    except ValueError:
        raise BadInput(f"accountId: {account_id!r} is not an account id") from None
    async with info.context.sessionmaker() as session, session.begin():
        return Account(row=await accounts.set_plan(session, numeric_id, DbPlan(plan.value), info.context.broker))
