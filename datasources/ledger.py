"""The only code that moves money. Every balance change is one conditional UPDATE plus one ledger row.

Requests in flight reserve what they may cost at most (`hold`): the reservation lowers what is
available (balance - held) without being a change of balance, so it is not a ledger row. Settling
releases the reservation and takes the real cost as one `usage` row. Neither the balance nor what is
available ever goes below zero, whatever runs concurrently: both are guarded in the UPDATE itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.db.models import Account, BalanceTransaction
from datasources.errors import BadInput, InsufficientBalance, NotFound
from datasources.money import price


@dataclass(frozen=True)
class Settlement:
    charged: Decimal  # what the usage row took
    unbilled: Decimal  # what the cost exceeded the available balance by (never charged)
    balance: Decimal
    transaction_id: int | None


async def credit(
    session: AsyncSession,
    account_id: int,
    amount: Decimal,
    description: str = "",
    idempotency_key: str | None = None,
) -> Decimal:
    """Add a positive amount; returns the new balance. With an idempotency key, the same key credits once."""
    amount = price(amount)
    if amount <= 0:
        raise BadInput(f"credit must be a positive amount, got {amount}")
    if idempotency_key is not None:
        if await _seen(session, account_id, idempotency_key):
            return await balance_of(session, account_id)
        try:
            async with session.begin_nested():
                return await _move(session, account_id, amount, "credit", description, idempotency_key=idempotency_key)
        except IntegrityError:  # the same key, credited concurrently
            return await balance_of(session, account_id)
    return await _move(session, account_id, amount, "credit", description)


async def debit(
    session: AsyncSession,
    account_id: int,
    amount: Decimal,
    kind: str = "debit",
    description: str = "",
    usage_record_id: int | None = None,
) -> Decimal:
    """Take a positive amount if the available balance covers it."""
    amount = price(amount)
    if amount < 0:
        raise BadInput(f"debit must not be negative, got {amount}")
    return await _move(session, account_id, -amount, kind, description, usage_record_id)


async def hold(session: AsyncSession, account_id: int, amount: Decimal) -> None:
    """Reserve `amount` of the available balance for a request in flight, or raise InsufficientBalance."""
    amount = price(amount)
    if amount < 0:
        raise BadInput(f"a hold must not be negative, got {amount}")
    done = (
        await session.execute(
            update(Account)
            .where(Account.id == account_id, Account.balance - Account.held >= amount)
            .values(held=Account.held + amount)
            .returning(Account.id)
        )
    ).scalar_one_or_none()
    if done is None:
        await _missing_or_short(session, account_id, amount)


async def release(session: AsyncSession, account_id: int, amount: Decimal) -> None:
    """Give a reservation back unused (the request failed before it cost anything)."""
    await session.execute(update(Account).where(Account.id == account_id).values(held=Account.held - price(amount)))


async def settle(
    session: AsyncSession,
    account_id: int,
    held: Decimal,
    cost: Decimal,
    description: str = "",
    usage_record_id: int | None = None,
) -> Settlement:
    """Release a reservation and take the real cost, as one `usage` ledger row.

    A cost above what the account has left beyond other reservations is charged only up to that,
    and the rest is reported as unbilled: the balance never goes below zero.
    """
    held, cost = price(held), price(cost)
    # Releasing first makes this transaction the row's writer (a row lock on PostgreSQL, the write
    # lock on SQLite), so the balance read back cannot change before the charge below.
    row = (
        await session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(held=Account.held - held)
            .returning(Account.balance, Account.held)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"account {account_id} not found")
    charged = min(cost, max(row.balance - row.held, Decimal(0)))
    balance = (
        await session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(balance=Account.balance - charged)
            .returning(Account.balance)
        )
    ).scalar_one()
    transaction_id = None
    if charged or cost:
        transaction_id = await usage_row(session, account_id, charged, balance, description, usage_record_id)
    return Settlement(charged, cost - charged, balance, transaction_id)


async def usage_row(
    session: AsyncSession,
    account_id: int,
    charged: Decimal,
    balance_after: Decimal,
    description: str,
    usage_record_id: int | None,
) -> int:
    """The ledger row of a usage charge (the balance already moved); its id."""
    return (
        await session.execute(
            insert(BalanceTransaction)
            .values(
                account_id=account_id,
                type="usage",
                amount=-charged,
                balance_after=balance_after,
                description=description,
                usage_record_id=usage_record_id,
            )
            .returning(BalanceTransaction.id)
        )
    ).scalar_one()


async def balance_of(session: AsyncSession, account_id: int) -> Decimal:
    value = (await session.execute(select(Account.balance).where(Account.id == account_id))).scalar_one_or_none()
    if value is None:
        raise NotFound(f"account {account_id} not found")
    return value


async def _seen(session: AsyncSession, account_id: int, key: str) -> bool:
    found = await session.execute(
        select(func.count())
        .select_from(BalanceTransaction)
        .where(BalanceTransaction.account_id == account_id, BalanceTransaction.idempotency_key == key)
    )
    return bool(found.scalar_one())


async def _missing_or_short(session: AsyncSession, account_id: int, amount: Decimal) -> None:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    available = account.balance - account.held
    raise InsufficientBalance(f"insufficient balance: {amount} USD needed, {available} USD available")


async def _move(
    session: AsyncSession,
    account_id: int,
    delta: Decimal,
    kind: str,
    description: str,
    usage_record_id: int | None = None,
    idempotency_key: str | None = None,
) -> Decimal:
    values: dict[str, Any] = {"balance": Account.balance + delta}
    if delta > 0:  # a credit that lifts the balance to its low-balance line re-arms the alert
        values["low_balance_alerted"] = case(
            (and_(Account.low_balance.is_not(None), Account.balance + delta >= Account.low_balance), False),
            else_=Account.low_balance_alerted,
        )
    statement = update(Account).where(Account.id == account_id).values(**values).returning(Account.balance)
    if delta < 0:
        statement = statement.where(Account.balance - Account.held >= -delta)
    balance = (await session.execute(statement)).scalar_one_or_none()
    if balance is None:
        await _missing_or_short(session, account_id, -delta)
    await session.execute(
        insert(BalanceTransaction).values(
            account_id=account_id,
            type=kind,
            amount=delta,
            balance_after=balance,
            description=description,
            usage_record_id=usage_record_id,
            idempotency_key=idempotency_key,
        )
    )
    assert balance is not None  # _missing_or_short raised otherwise
    return Decimal(balance)


@dataclass(frozen=True)
class Refunded:
    taken: Decimal  # from the balance
    owed: Decimal  # beyond what the balance had available: owed until a credit pays it
    transaction_id: int | None


async def refund(
    session: AsyncSession, account_id: int, amount: Decimal, description: str, idempotency_key: str
) -> Refunded | None:
    """Money paid in and given back: take what the balance has available, record the rest as owed. One ledger
    row (type `refund`, the amount taken); None when the idempotency key was used already."""
    amount = price(amount)
    if amount <= 0:
        raise BadInput(f"a refund must be a positive amount, got {amount}")
    if await _seen(session, account_id, idempotency_key):
        return None
    row = (
        await session.execute(  # the account row's writer first: what is available cannot move under us
            update(Account)
            .where(Account.id == account_id)
            .values(held=Account.held)
            .returning(Account.balance, Account.held)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"account {account_id} not found")
    taken = min(amount, max(Decimal(0), row.balance - row.held))
    owed = amount - taken
    balance = (
        await session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(balance=Account.balance - taken, owed=Account.owed + owed)
            .returning(Account.balance)
        )
    ).scalar_one()
    text = f"{description}: {taken} USD from the balance" + (f", {owed} USD owed" if owed else "")
    transaction_id = (
        await session.execute(
            insert(BalanceTransaction)
            .values(
                account_id=account_id,
                type="refund",
                amount=-taken,
                balance_after=balance,
                description=text[:256],
                idempotency_key=idempotency_key,
            )
            .returning(BalanceTransaction.id)
        )
    ).scalar_one()
    return Refunded(taken, owed, transaction_id)


async def pay_owed(session: AsyncSession, account_id: int) -> Decimal:
    """After a credit: what a refund left owed is paid from the balance first (a `debit` row); returns it."""
    row = (
        await session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(held=Account.held)
            .returning(Account.balance, Account.held, Account.owed)
        )
    ).one_or_none()
    if row is None or row.owed <= 0:
        return Decimal(0)
    paid = min(row.owed, max(Decimal(0), row.balance - row.held))
    if paid <= 0:
        return Decimal(0)
    await session.execute(update(Account).where(Account.id == account_id).values(owed=Account.owed - paid))
    await _move(session, account_id, -paid, "debit", f"owed from a refund, paid: {paid} USD")
    return Decimal(paid)
