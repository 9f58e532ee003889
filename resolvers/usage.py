"""The caller's balance, usage and billing history; operators' credits; live usage and balance events."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from decimal import Decimal

import strawberry

from datasources import billing, paging, usage
from datasources.errors import BadInput
from datasources.events import BalanceChanged, Event, UsageRecorded
from datasources.money import parse_amount
from resolvers.subscriptions import _events
from schema.context import Info
from schema.usage import (
    LOGS,
    Balance,
    BalanceEvent,
    BalanceTransaction,
    BalanceTransactionConnection,
    CreditedBalance,
    PageInfo,
    Usage,
    UsageEvent,
    UsageFilter,
)


async def balance(info: Info) -> Balance | None:
    account_id = info.context.caller.require_account()
    await info.context.recorder.caught_up(account_id)
    async with info.context.sessionmaker() as session:
        return Balance.of(await billing.balance(session, account_id))


async def usage_of_account(info: Info, filter: UsageFilter | None = None) -> Usage | None:  # noqa: A002
    account_id = info.context.caller.require_account()
    await info.context.recorder.caught_up(account_id)
    asked = (filter or UsageFilter()).to_filter()
    async with info.context.sessionmaker() as session:
        return Usage(scope=await usage.resolve(session, account_id, asked))


async def billing_history(
    info: Info, first: int = LOGS.default, after: str | None = None
) -> BalanceTransactionConnection | None:
    account_id = info.context.caller.require_account()
    LOGS.check(first)
    await info.context.recorder.caught_up(account_id)
    cursor = paging.parse_id(after, billing.TRANSACTION_ID) if after is not None else None
    async with info.context.sessionmaker() as session:
        page = await billing.billing_history(session, account_id, first, cursor)
    nodes = [BalanceTransaction(row=t) for t in page.items]
    return BalanceTransactionConnection(
        nodes=nodes,
        page_info=PageInfo(
            has_next_page=page.has_more,
            end_cursor=str(nodes[-1].id()) if nodes else None,
        ),
    )


async def credit_balance(
    info: Info, account_id: strawberry.ID, amount: Decimal, idempotency_key: str, description: str = ""
) -> CreditedBalance:
    info.context.caller.require_admin()
    try:
        numeric_id = int(account_id)
    except ValueError:
        raise BadInput(f"accountId: {account_id!r} is not an account id") from None
    async with info.context.sessionmaker() as session, session.begin():
        credited = await billing.credit(
            session,
            numeric_id,
            parse_amount(amount),
            idempotency_key,
            description.strip(),
            info.context.broker,
        )
    return CreditedBalance(
        transaction=BalanceTransaction(row=billing.Transaction(credited.transaction, None)),
        balance=Balance.of(credited.balance),
        replayed=credited.replayed,
    )


async def usage_recorded(info: Info) -> AsyncGenerator[UsageEvent, None]:
    account_id = info.context.caller.require_account()

    def accepts(event: Event) -> bool:
        return isinstance(event, UsageRecorded) and event.account_id == account_id

    async for event in _events(info.context, accepts):
        assert isinstance(event, UsageRecorded)
        yield UsageEvent(row=event)


async def balance_changed(info: Info) -> AsyncGenerator[BalanceEvent, None]:
    account_id = info.context.caller.require_account()

    def accepts(event: Event) -> bool:
        return isinstance(event, BalanceChanged) and event.account_id == account_id

    async for event in _events(info.context, accepts):
        assert isinstance(event, BalanceChanged)
        yield BalanceEvent(row=event)
