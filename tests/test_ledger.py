from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from datasources import accounts, ledger
from datasources.db.models import Account, ApiKey, BalanceTransaction, Plan
from datasources.errors import BadInput, InsufficientBalance


async def _account(sessions, credit: str = "10") -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session, session.begin():
        account, _ = await accounts.create_account(session, Plan.DEVELOPER, Decimal(credit), "t")
    return account.id


async def test_initial_credit_is_a_ledger_row(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions, "12.50")
    async with sessions() as session:
        account = await session.get(Account, account_id)
        rows = (await session.execute(select(BalanceTransaction))).scalars().all()
    assert account is not None and account.balance == Decimal("12.5")
    assert [(r.type, r.amount, r.balance_after) for r in rows] == [("credit", Decimal("12.5"), Decimal("12.5"))]


async def test_debit_never_goes_below_zero(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions, "1")
    async with sessions() as session, session.begin():
        assert await ledger.debit(session, account_id, Decimal("0.4")) == Decimal("0.6")
    with pytest.raises(InsufficientBalance):
        async with sessions() as session, session.begin():
            await ledger.debit(session, account_id, Decimal("0.61"))
    with pytest.raises(BadInput):
        async with sessions() as session, session.begin():
            await ledger.credit(session, account_id, Decimal("-1"))
    async with sessions() as session:
        account = await session.get(Account, account_id)
        amounts = (await session.execute(select(BalanceTransaction.amount).order_by(BalanceTransaction.id))).scalars()
        assert account is not None and account.balance == Decimal("0.6")
        assert list(amounts) == [Decimal("1"), Decimal("-0.4")]


async def test_concurrent_debits_never_overdraw(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions, "1")

    async def spend() -> bool:
        try:
            async with sessions() as session, session.begin():
                await ledger.debit(session, account_id, Decimal("0.3"))
            return True
        except InsufficientBalance:
            return False

    results = await asyncio.gather(*(spend() for _ in range(8)))
    assert sum(results) == 3
    async with sessions() as session:
        account = await session.get(Account, account_id)
        total = sum((await session.execute(select(BalanceTransaction.amount))).scalars())
    assert account is not None and account.balance == Decimal("0.1") == total


async def test_keys_are_stored_as_hashes_only(sessions) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as session, session.begin():
        _, issued = await accounts.create_account(session, Plan.TEAM, Decimal(0), "t")
    assert issued.secret.startswith("cxm_") and len(issued.secret) > 40
    async with sessions() as session:
        key = (await session.execute(select(ApiKey))).scalar_one()
        assert await accounts.key_for_secret(session, issued.secret) is not None
        assert await accounts.key_for_secret(session, issued.secret + "x") is None
    stored = " ".join(str(getattr(key, c.key)) for c in ApiKey.__table__.columns)
    assert issued.secret not in stored
    assert key.prefix == issued.secret[:12]
    async with sessions() as session, session.begin():
        await accounts.revoke_key(session, key.id)
    async with sessions() as session:
        assert await accounts.key_for_secret(session, issued.secret) is None


def test_unknown_plan_lists_the_valid_ones() -> None:
    with pytest.raises(BadInput, match="free, developer, team, enterprise"):
        accounts.parse_plan("gold")


async def test_holds_reserve_and_settlements_charge_the_real_cost(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions, "1")
    async with sessions() as session, session.begin():
        await ledger.hold(session, account_id, Decimal("0.7"))
    with pytest.raises(InsufficientBalance):  # 0.3 available
        async with sessions() as session, session.begin():
            await ledger.hold(session, account_id, Decimal("0.31"))
    async with sessions() as session, session.begin():
        settled = await ledger.settle(session, account_id, Decimal("0.7"), Decimal("0.25"), "chat")
    assert (settled.charged, settled.unbilled, settled.balance) == (Decimal("0.25"), 0, Decimal("0.75"))
    async with sessions() as session:
        account = await session.get(Account, account_id)
        rows = (
            await session.execute(
                select(BalanceTransaction.type, BalanceTransaction.amount).order_by(BalanceTransaction.id)
            )
        ).all()
    assert account is not None and (account.balance, account.held) == (Decimal("0.75"), 0)
    assert rows == [("credit", Decimal("1")), ("usage", Decimal("-0.25"))]


async def test_a_cost_above_the_balance_is_capped_never_negative(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions, "1")
    async with sessions() as session, session.begin():
        await ledger.hold(session, account_id, Decimal("0.5"))
        await ledger.hold(session, account_id, Decimal("0.3"))
    async with sessions() as session, session.begin():
        settled = await ledger.settle(session, account_id, Decimal("0.5"), Decimal("0.9"))
    # 0.3 stays reserved for the other request: only 0.7 could be charged.
    assert (settled.charged, settled.unbilled, settled.balance) == (Decimal("0.7"), Decimal("0.2"), Decimal("0.3"))
    async with sessions() as session, session.begin():
        await ledger.release(session, account_id, Decimal("0.3"))
    async with sessions() as session:
        account = await session.get(Account, account_id)
    assert account is not None and (account.balance, account.held) == (Decimal("0.3"), 0)


async def test_concurrent_holds_and_settlements_balance_exactly(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions, "3")

    async def request() -> bool:
        try:
            async with sessions() as session, session.begin():
                await ledger.hold(session, account_id, Decimal("0.2"))
        except InsufficientBalance:
            return False
        await asyncio.sleep(0)
        async with sessions() as session, session.begin():
            await ledger.settle(session, account_id, Decimal("0.2"), Decimal("0.2"))
        return True

    results = await asyncio.gather(*(request() for _ in range(40)))
    assert sum(results) == 15
    async with sessions() as session:
        account = await session.get(Account, account_id)
        usage = (
            await session.execute(
                select(func.count()).select_from(BalanceTransaction).where(BalanceTransaction.type == "usage")
            )
        ).scalar_one()
    assert account is not None and (account.balance, account.held, usage) == (0, 0, 15)


async def test_idempotent_credit_credits_once(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions, "0")

    async def top_up() -> None:
        async with sessions() as session, session.begin():
            await ledger.credit(session, account_id, Decimal("10"), "top-up", idempotency_key="order-42")

    await asyncio.gather(*(top_up() for _ in range(5)))
    await top_up()
    async with sessions() as session:
        account = await session.get(Account, account_id)
        credits = (await session.execute(select(BalanceTransaction.amount))).scalars().all()
    assert account is not None and account.balance == Decimal("10") and credits == [Decimal("10")]
