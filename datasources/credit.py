"""Prepaid balance for requests in flight, exact across server processes without a round trip per request.

A process leases credit from an account: one transaction moves an amount from what is available
(`balance - held`) into a lease row of its own (`credit_leases`: the account, this process's id and an
expiry it keeps renewing; the amount counts in `accounts.held`). Holds for requests in flight are then
placed against the lease in memory. A request's real cost is charged from the lease when its usage is
settled (`datasources.recorder`); what the lease still holds goes back to the account when the account
has been idle for a moment, when the process stops, or, the process gone, when the sweeper finds the
lease expired. Neither the balance nor what is available ever goes below zero: every amount a process
may hold was first moved out of `available` by a guarded statement.

A lease is a whole number of the hold that asked for it, at most `multiple` of them and a quarter of
what the account has available, so that one process does not take everything; near the end only what
the requests waiting right now need. Equal requests therefore never leave an unusable remainder in
one process while another is refused.

The same leasing serves any pool with a guarded amount available: an account's credit (`ACCOUNT_CREDIT`)
and a budget's monthly cap (`datasources.budgets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import Column, Row, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.db.tables import ACCOUNTS, LEASES
from datasources.errors import DomainError, InsufficientBalance, NotFound
from datasources.instances import Instance
from datasources.money import price

log = logging.getLogger("pricegraph.credit")

ZERO = Decimal(0)
MULTIPLE = 20  # holds leased at once, far from the account's end
IDLE_SECONDS = 1.0  # an account idle this long gives its lease back


class Pool:
    """A table whose rows each have an amount available to lease (`held` counts what leases hold), and the
    table of the leases taken from it."""

    name = "account"
    table: Table = ACCOUNTS
    leases: Table = LEASES
    owner = "account_id"  # the lease table's column naming the pool row

    def touch(self) -> dict[str, Any]:
        """What the first statement of a lease writes to the pool row (making its transaction the row's
        writer); the row's other columns stay as they are."""
        return {"held": self.table.c.held}

    def returning(self) -> tuple[Column[Any], ...]:
        return (self.table.c.balance, self.table.c.held, self.table.c.owed)

    def available(self, row: Row[Any]) -> Decimal:
        if row.owed > 0:  # a refund left the account owing: nothing is leased until it is paid
            return ZERO
        return Decimal(row.balance - row.held)

    def refusal(self, amount: Decimal) -> DomainError:
        return InsufficientBalance(f"insufficient balance: {amount} USD needed")


ACCOUNT_CREDIT = Pool()


@dataclass
class AccountLease:
    """This process's lease on one pool row (an account, a budget) and what stands against it in memory."""

    account_id: int  # the pool row's id
    lease_id: int | None = None
    amount: Decimal = ZERO  # what the lease row holds: leased, not charged, not given back
    reserved: Decimal = ZERO  # held by requests in flight
    spent: Decimal = ZERO  # charged to answered requests, not settled in the database yet
    last: float = field(default_factory=time.monotonic)
    waiting: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def free(self) -> Decimal:
        return self.amount - self.reserved - self.spent

    @property
    def busy(self) -> bool:
        return bool(self.reserved or self.spent or self.waiting)


@dataclass
class Hold:
    """What one request in flight may cost, reserved against its account's lease."""

    lease: AccountLease
    amount: Decimal

    @property
    def account_id(self) -> int:
        return self.lease.account_id

    @property
    def lease_id(self) -> int | None:
        return self.lease.lease_id


class CreditBook:
    """This process's leases on one pool (`app.state.credit`: accounts' credit)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        instance: Instance,
        multiple: int = MULTIPLE,
        idle_seconds: float = IDLE_SECONDS,
        pool: Pool = ACCOUNT_CREDIT,
    ) -> None:
        self.pool = pool
        self.sessionmaker = sessionmaker
        self.instance = instance
        self.multiple = multiple
        self.idle_seconds = idle_seconds
        self.leases: dict[int, AccountLease] = {}
        self.round_trips = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._give_back_idle(), name=f"pricegraph: idle {self.pool.name} leases"),
            asyncio.create_task(self._renew_forever(), name=f"pricegraph: {self.pool.name} lease renewal"),
        ]

    async def stop(self) -> None:
        """Give every lease back (after the recorder has settled what was charged against them)."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for lease in list(self.leases.values()):
            with contextlib.suppress(Exception):
                await self.give_back(lease.account_id, force=True)

    def lease_of(self, account_id: int) -> AccountLease:
        lease = self.leases.get(account_id)
        if lease is None:
            lease = self.leases[account_id] = AccountLease(account_id)
        return lease

    # ---- holds ------------------------------------------------------------------------------------------

    async def hold(self, account_id: int, amount: Decimal) -> Hold:
        """Reserve `amount` for a request in flight, or raise InsufficientBalance."""
        amount = price(amount)
        lease = self.lease_of(account_id)
        if not await self._cover(lease, amount):
            raise self.pool.refusal(amount)
        lease.reserved += amount
        lease.last = time.monotonic()
        return Hold(lease, amount)

    async def top_up(self, hold: Hold, amount: Decimal) -> bool:
        """Raise a hold to `amount` (before falling back to a dearer provider); False when the account
        cannot cover it, and the hold stays as it was."""
        amount = price(amount)
        extra = amount - hold.amount
        if extra <= 0:
            return True
        if not await self._cover(hold.lease, extra):
            return False
        hold.lease.reserved += extra
        hold.amount = amount
        return True

    def release(self, hold: Hold) -> None:
        """The request cost nothing: its hold goes back to the lease."""
        hold.lease.reserved -= hold.amount
        hold.amount = ZERO
        hold.lease.last = time.monotonic()

    def spend(self, hold: Hold, cost: Decimal) -> tuple[Decimal, Decimal]:
        """The request was answered at `cost`: its hold becomes a charge on the lease, to be settled. A
        cost above the hold takes what the lease has free. Returns (charged from the lease, beyond it)."""
        lease = hold.lease
        cost = price(cost)
        lease.reserved -= hold.amount  # the hold is free again: the charge takes it, and more if it must
        from_lease = min(cost, max(ZERO, lease.free))
        lease.spent += from_lease
        hold.amount = ZERO
        lease.last = time.monotonic()
        return from_lease, cost - from_lease

    async def take(self, session: AsyncSession, account_id: int, amount: Decimal) -> bool:
        """In the caller's transaction, charge `amount` to this process's lease row on the pool row; False
        when the lease is gone (taken for dead and returned), so nothing was taken from it."""
        lease = self.leases.get(account_id)
        if lease is None or lease.lease_id is None:
            return False
        leases = self.pool.leases
        taken = await session.execute(
            update(leases)
            .where(leases.c.id == lease.lease_id, leases.c.amount >= amount)
            .values(amount=leases.c.amount - amount)
            .returning(leases.c.id)
        )
        return taken.scalar_one_or_none() is not None

    def settled(self, account_id: int, charged: Decimal) -> None:
        """The recorder committed `charged` of this account's lease as spent."""
        lease = self.leases.get(account_id)
        if lease is not None:
            lease.amount -= charged
            lease.spent -= charged

    async def _cover(self, lease: AccountLease, amount: Decimal) -> bool:
        if lease.free >= amount:
            return True
        lease.waiting += 1
        try:
            async with lease.lock:
                if lease.free >= amount:
                    return True
                await self._lease_more(lease, amount)
                return lease.free >= amount
        finally:
            lease.waiting -= 1

    def _block(self, lease: AccountLease, hold: Decimal, available: Decimal) -> Decimal | None:
        """How much to lease so that the lease's free part becomes a whole number of `hold`s."""
        free = max(ZERO, lease.free)
        if hold <= 0:
            return ZERO
        if available + free < hold:
            return None
        fits = int(((available + free) / (hold * 4)).to_integral_value(rounding=ROUND_FLOOR))
        count = max(1, min(self.multiple, fits))
        if count < self.multiple:  # near the account's end: only what is asked for right now
            count = min(count, max(1, lease.waiting))
        return min(available, price(hold * count - free))

    async def _lease_more(self, lease: AccountLease, hold: Decimal) -> None:
        pool, leases = self.pool.table, self.pool.leases
        async with self.sessionmaker() as session, session.begin():
            # Writing the row first makes this transaction its writer (a row lock on PostgreSQL, the
            # write lock on SQLite): what is available cannot change before the lease below.
            row = (
                await session.execute(
                    update(pool)
                    .where(pool.c.id == lease.account_id)
                    .values(**self.pool.touch())
                    .returning(*self.pool.returning())
                )
            ).one_or_none()
            if row is None:
                raise NotFound(f"{self.pool.name} {lease.account_id} not found")
            amount = self._block(lease, hold, self.pool.available(row))
            if amount is None or amount <= 0:
                return
            await session.execute(update(pool).where(pool.c.id == lease.account_id).values(held=pool.c.held + amount))
            expires = self.instance.expiry()
            renewed = None
            if lease.lease_id is not None:
                renewed = (
                    await session.execute(
                        update(leases)
                        .where(leases.c.id == lease.lease_id)
                        .values(amount=leases.c.amount + amount, expires_at=expires)
                        .returning(leases.c.id)
                    )
                ).scalar_one_or_none()
            if renewed is None:
                lease.lease_id = (
                    await session.execute(
                        insert(leases)
                        .values(
                            {
                                self.pool.owner: lease.account_id,
                                "instance_id": self.instance.id,
                                "amount": amount,
                                "expires_at": expires,
                                "created_at": datetime.now(UTC),
                            }
                        )
                        .returning(leases.c.id)
                    )
                ).scalar_one()
        self.round_trips += 1
        lease.amount += amount

    # ---- giving back --------------------------------------------------------------------------------------

    async def give_back(self, account_id: int, force: bool = False) -> None:
        """Return what this process's lease on the account holds, unless requests stand against it."""
        lease = self.leases.get(account_id)
        if lease is None:
            return
        async with lease.lock:
            if lease.busy or (not force and time.monotonic() - lease.last < self.idle_seconds):
                return
            del self.leases[account_id]
            if lease.lease_id is None:
                return
            pool, leases = self.pool.table, self.pool.leases
            async with self.sessionmaker() as session, session.begin():
                await session.execute(  # the pool row first (its writer, everywhere), then the lease
                    update(pool).where(pool.c.id == account_id).values(held=pool.c.held)
                )
                amount = (
                    await session.execute(
                        delete(leases).where(leases.c.id == lease.lease_id).returning(leases.c.amount)
                    )
                ).scalar_one_or_none()
                if amount:  # None: the sweeper took it already
                    await session.execute(update(pool).where(pool.c.id == account_id).values(held=pool.c.held - amount))
            self.round_trips += 1

    async def renew(self) -> None:
        """Extend this process's leases; a lease that is gone (taken for dead, the sweeper returned it)
        holds nothing any more: the next hold leases afresh."""
        leases = self.pool.leases
        async with self.sessionmaker() as session, session.begin():
            alive = set(
                (
                    await session.execute(
                        update(leases)
                        .where(leases.c.instance_id == self.instance.id)
                        .values(expires_at=self.instance.expiry())
                        .returning(leases.c.id)
                    )
                ).scalars()
            )
        for lease in self.leases.values():
            if lease.lease_id is not None and lease.lease_id not in alive:
                log.warning(
                    "the lease on %s %s expired and was returned; leasing afresh", self.pool.name, lease.account_id
                )
                lease.lease_id, lease.amount = None, ZERO

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.instance.ttl / 3)
            try:
                await self.renew()
            except Exception:  # the database is away: try again; a lease outlives a short outage
                log.warning("could not renew the credit leases", exc_info=True)

    async def _give_back_idle(self) -> None:
        while True:
            await asyncio.sleep(self.idle_seconds / 2)
            now = time.monotonic()
            for account_id, lease in list(self.leases.items()):
                if lease.busy or now - lease.last < self.idle_seconds:
                    continue
                try:
                    await self.give_back(account_id)
                except Exception:
                    log.warning("could not give back the lease on %s %s", self.pool.name, account_id, exc_info=True)


async def leased(session: AsyncSession, account_id: int) -> Decimal:
    """What every process's leases on the account hold (part of `accounts.held`)."""
    rows = (await session.execute(select(LEASES.c.amount).where(LEASES.c.account_id == account_id))).scalars()
    return sum(rows, ZERO)
