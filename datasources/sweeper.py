"""What dead server processes left behind, settled: their pending usage records and their credit leases.

A process that stops renewing its row (`datasources.instances`: killed, or cut off from the database for
longer than its ttl) is taken for dead once the row, and with it its leases, has expired. The sweeper
(on PostgreSQL one process at a time, the holder of an advisory lock; on SQLite the one process) then,
one lease at a time and each in one transaction:

- settles every usage record still pending against the lease at the amount it held, as `recovered`
  and estimated: a request that went upstream is paid for, at most at what it could have cost;
- gives what the lease still holds back to the account;

and marks the dead process's other pending records (requests on the customer's own provider keys,
which hold nothing) recovered, then deletes its row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources import ledger
from datasources.credit import ZERO
from datasources.db.models import Account, Budget, BudgetLease, CreditLease, ServerInstance, UsageRecord, UsageState
from datasources.events import BalanceChanged, Broker, Event
from datasources.sources.leader import Leader

log = logging.getLogger("pricegraph.sweeper")

INTERVAL_SECONDS = 2.0


@dataclass
class Swept:
    leases: int = 0
    records: int = 0
    charged: Decimal = ZERO
    returned: Decimal = ZERO
    instances: int = 0


class Sweeper:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: Broker,
        leader: Leader,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.leader = leader
        self.interval = interval
        self.total = Swept()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pricegraph: sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.leader.release()

    async def _run(self) -> None:
        while True:
            try:
                if await self.leader.acquire():
                    found = await self.sweep()
                    if found.leases or found.records or found.instances:
                        log.warning(
                            "recovered what dead instances left: %d leases (%s USD charged, %s USD "
                            "returned), %d usage records, %d instances",
                            found.leases,
                            found.charged,
                            found.returned,
                            found.records,
                            found.instances,
                        )
            except Exception:
                log.warning("the sweep failed; trying again", exc_info=True)
            await asyncio.sleep(self.interval)

    async def sweep(self, now: datetime | None = None) -> Swept:
        now = now or datetime.now(UTC)
        found = Swept()
        async with self.sessionmaker() as session:
            expired = (
                await session.execute(
                    select(CreditLease.id, CreditLease.account_id)
                    .where(CreditLease.expires_at < now)
                    .order_by(CreditLease.account_id, CreditLease.id)
                )
            ).all()
        for lease_id, account_id in expired:
            async with self.sessionmaker() as session, session.begin():
                await self._recover_lease(session, lease_id, account_id, now, found)
        await self._return_budget_leases(now, found)
        async with self.sessionmaker() as session, session.begin():
            dead = list(
                (await session.execute(select(ServerInstance.id).where(ServerInstance.expires_at < now))).scalars()
            )
            alive = select(ServerInstance.id).where(ServerInstance.expires_at >= now)
            leases = select(CreditLease.id)
            orphans = (
                (
                    await session.execute(
                        update(UsageRecord)
                        .where(
                            UsageRecord.state == UsageState.PENDING,
                            UsageRecord.instance_id.not_in(alive),
                            (UsageRecord.lease_id.is_(None)) | UsageRecord.lease_id.not_in(leases),
                        )
                        .values(state=UsageState.RECOVERED)
                        .returning(UsageRecord.id)
                    )
                )
                .scalars()
                .all()
            )
            found.records += len(orphans)
            if dead:
                await session.execute(delete(ServerInstance).where(ServerInstance.id.in_(dead)))
            found.instances = len(dead)
        self.total.leases += found.leases
        self.total.records += found.records
        self.total.charged += found.charged
        self.total.returned += found.returned
        self.total.instances += found.instances
        return found

    async def _return_budget_leases(self, now: datetime, found: Swept) -> None:
        """A dead instance's budget leases go back to their budgets (what they held counts as held no more)."""
        async with self.sessionmaker() as session:
            expired = (
                await session.execute(
                    select(BudgetLease.id, BudgetLease.budget_id)
                    .where(BudgetLease.expires_at < now)
                    .order_by(BudgetLease.budget_id, BudgetLease.id)
                )
            ).all()
        for lease_id, budget_id in expired:
            async with self.sessionmaker() as session, session.begin():
                await session.execute(update(Budget).where(Budget.id == budget_id).values(held=Budget.held))
                amount = (
                    await session.execute(
                        delete(BudgetLease)
                        .where(BudgetLease.id == lease_id, BudgetLease.expires_at < now)
                        .returning(BudgetLease.amount)
                    )
                ).scalar_one_or_none()
                if amount:
                    await session.execute(
                        update(Budget).where(Budget.id == budget_id).values(held=Budget.held - amount)
                    )
                    found.leases += 1

    async def _recover_lease(
        self, session: AsyncSession, lease_id: int, account_id: int, now: datetime, found: Swept
    ) -> None:
        # The account row first (its writer, as everywhere), then the lease, taken only if still expired.
        await session.execute(update(Account).where(Account.id == account_id).values(held=Account.held))
        amount = (
            await session.execute(
                delete(CreditLease)
                .where(CreditLease.id == lease_id, CreditLease.expires_at < now)
                .returning(CreditLease.amount)
            )
        ).scalar_one_or_none()
        if amount is None:
            return  # renewed meanwhile, or already taken
        records = (
            await session.execute(
                select(UsageRecord.id, UsageRecord.held, UsageRecord.model_slug, UsageRecord.provider_slug)
                .where(UsageRecord.lease_id == lease_id, UsageRecord.state == UsageState.PENDING)
                .order_by(UsageRecord.id)
            )
        ).all()
        charges: list[tuple[int, Decimal, str]] = []
        left = amount
        for record_id, held, model, provider in records:
            charge = min(held, left)
            left -= charge
            charges.append((record_id, charge, f"{model} via {provider} (recovered at the amount held)"))
            await session.execute(
                update(UsageRecord)
                .where(UsageRecord.id == record_id)
                .values(
                    state=UsageState.RECOVERED,
                    cost=charge,
                    estimated=True,
                )
            )
        total = amount - left
        balance = (
            await session.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(balance=Account.balance - total, held=Account.held - amount)
                .returning(Account.balance)
            )
        ).scalar_one()
        events: list[Event] = []
        after = balance + total
        for record_id, charge, description in charges:
            after -= charge
            transaction_id = await ledger.usage_row(session, account_id, charge, after, description, record_id)
            events.append(BalanceChanged(account_id, transaction_id, "usage", -charge, after, now))
        await self.broker.publish(session, events)
        found.leases += 1
        found.records += len(records)
        found.charged += total
        found.returned += left
