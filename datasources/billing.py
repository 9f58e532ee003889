"""An account's money: its balance, its billing history (the ledger, newest first) and operators' credits,
once per idempotency key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from datasources import ledger, paging
from datasources.db.models import Account, BalanceTransaction, UsageRecord
from datasources.errors import BadInput, NotFound
from datasources.events import BalanceChanged, Broker
from datasources.money import parse_amount
from datasources.notices import announce

DEFAULT_LIMIT = 100
MAX_IDEMPOTENCY_KEY = 128
TRANSACTION_ID = "txn_"


@dataclass(frozen=True)
class Balance:
    balance: Decimal
    held: Decimal

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


@dataclass(frozen=True)
class Transaction:
    row: BalanceTransaction
    request_id: str | None


@dataclass(frozen=True)
class Credited:
    transaction: BalanceTransaction
    balance: Balance
    replayed: bool  # the idempotency key had credited before: nothing moved this time


async def balance(session: AsyncSession, account_id: int) -> Balance:
    row = (await session.execute(select(Account.balance, Account.held).where(Account.id == account_id))).one_or_none()
    if row is None:
        raise NotFound(f"account {account_id} not found")
    return Balance(row.balance, row.held)


async def billing_history(
    session: AsyncSession,
    account_id: int,
    limit: int = DEFAULT_LIMIT,
    after: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = None,
) -> paging.Page[Transaction]:
    """Ledger rows, newest first, each with the request id of the usage it paid for (one join)."""
    statement = (
        select(BalanceTransaction, UsageRecord.request_id)
        .outerjoin(UsageRecord, UsageRecord.id == BalanceTransaction.usage_record_id)
        .where(BalanceTransaction.account_id == account_id)
    )
    if start is not None:
        statement = statement.where(BalanceTransaction.created_at >= start)
    if end is not None:
        statement = statement.where(BalanceTransaction.created_at < end)
    if kind is not None:
        statement = statement.where(BalanceTransaction.type == kind)
    if after is not None:
        cursor = await paging.cursor(session, BalanceTransaction, account_id, after, TRANSACTION_ID)
        statement = statement.where(paging.before(BalanceTransaction, cursor))
    statement = statement.order_by(BalanceTransaction.created_at.desc(), BalanceTransaction.id.desc()).limit(limit + 1)
    rows = (await session.execute(statement)).all()
    return paging.page([Transaction(row[0], row[1]) for row in rows], limit)


async def credit(
    session: AsyncSession,
    account_id: int,
    amount: Decimal,
    idempotency_key: str,
    description: str = "",
    broker: Broker | None = None,
) -> Credited:
    """An operator's credit, once per idempotency key, announced as `BalanceChanged` in its transaction.

    The same key again moves nothing and announces nothing (a different amount under a used key is an
    error). Two concurrent first uses of one key still credit once (the ledger's unique key); in that
    race both may announce the same transaction id, which listeners can de-duplicate on.
    """
    amount = parse_amount(amount)
    key = idempotency_key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise BadInput(f"invalid idempotency key: give 1 to {MAX_IDEMPOTENCY_KEY} characters")
    if len(description) > 256:
        raise BadInput("invalid description: at most 256 characters")
    earlier = await _credit_row(session, account_id, key)
    if earlier is None:
        await ledger.credit(session, account_id, amount, description, idempotency_key=key)
        row = await _credit_row(session, account_id, key)
        assert row is not None
        await announce(
            session,
            [BalanceChanged(account_id, row.id, row.type, row.amount, row.balance_after, row.created_at)],
            broker,
        )
    else:
        if earlier.amount != amount:
            raise BadInput(
                f"idempotency key {key!r} already credited {earlier.amount} USD "
                f"({TRANSACTION_ID}{earlier.id}); a credit of {amount} needs a new key"
            )
        row = earlier
    return Credited(row, await balance(session, account_id), replayed=earlier is not None)


async def _credit_row(session: AsyncSession, account_id: int, key: str) -> BalanceTransaction | None:
    return (
        await session.execute(
            select(BalanceTransaction)
            .where(BalanceTransaction.account_id == account_id, BalanceTransaction.idempotency_key == key)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
