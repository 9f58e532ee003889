"""The only code that moves money: every balance change is one conditional UPDATE plus one ledger row."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.db.models import Account, BalanceTransaction
from datasources.errors import BadInput, InsufficientBalance, NotFound
from datasources.money import price


async def credit(session: AsyncSession, account_id: int, amount: Decimal, description: str = "") -> Decimal:
    """Add a positive amount; returns the new balance."""
    amount = price(amount)
    if amount <= 0:
        raise BadInput(f"credit must be a positive amount, got {amount}")
    return await _move(session, account_id, amount, "credit", description)


async def debit(
    session: AsyncSession,
    account_id: int,
    amount: Decimal,
    kind: str = "usage",
    description: str = "",
    usage_record_id: int | None = None,
) -> Decimal:
    """Take a positive amount if the balance covers it; never lets the balance go below zero."""
    amount = price(amount)
    if amount < 0:
        raise BadInput(f"debit must not be negative, got {amount}")
    return await _move(session, account_id, -amount, kind, description, usage_record_id)


async def _move(
    session: AsyncSession,
    account_id: int,
    delta: Decimal,
    kind: str,
    description: str,
    usage_record_id: int | None = None,
) -> Decimal:
    statement = (
        update(Account)
        .where(Account.id == account_id)
        .values(balance=Account.balance + delta)
        .returning(Account.balance)
    )
    if delta < 0:
        statement = statement.where(Account.balance >= -delta)
    balance = (await session.execute(statement)).scalar_one_or_none()
    if balance is None:
        if await session.get(Account, account_id) is None:
            raise NotFound(f"account {account_id} not found")
        raise InsufficientBalance(f"balance does not cover {-delta} USD")
    await session.execute(
        insert(BalanceTransaction).values(
            account_id=account_id,
            type=kind,
            amount=delta,
            balance_after=balance,
            description=description,
            usage_record_id=usage_record_id,
        )
    )
    return balance
