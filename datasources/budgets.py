"""Monthly spend caps on an account or one of its keys, exact across server processes, and their alerts.

A budget is a row with a cap, what was spent in its month (`period`, UTC "YYYY-MM") and what leases hold
(`held`). Requests hold what they may cost against every budget that covers them, in memory, on leases taken
from the row by the same guarded statements as credit (`datasources.credit`, the `BUDGET` pool): the sum
held and spent never passes the cap, so a request that would pass it is refused before it goes upstream.
The first lease in a new month starts the period afresh. When a request is settled, its cost is added to
`spent` in the recorder's transaction, which also records the highest threshold crossed (`alerted`): each
threshold alerts once per period.

Which budgets cover a request is known in memory (`BudgetBook.covering`), read at start and again on
`BudgetChanged` from any process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Row, case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.credit import ZERO, CreditBook, Hold, Pool
from datasources.db.models import ApiKey, Budget
from datasources.db.tables import BUDGET_LEASES, BUDGETS
from datasources.errors import BadInput, BudgetExceeded, DomainError, NotFound
from datasources.events import BudgetChanged, Event, MemoryBroker
from datasources.instances import Instance
from datasources.money import parse_amount

log = logging.getLogger("pricegraph.budgets")

ACCOUNT_SCOPE = "account"
DEFAULT_THRESHOLDS = (50, 80, 100)
MAX_THRESHOLDS = 10
MAX_BUDGETS = 1000  # per account (one per key and the account's own)
CHECK_SECONDS = 5.0


def period_of(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m")


def parse_thresholds(raw: Sequence[int] | str | None) -> tuple[int, ...]:
    if raw is None:
        return DEFAULT_THRESHOLDS
    values: list[int] = []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    for item in items:
        try:
            value = int(str(item).strip())
        except ValueError:
            raise BadInput(f"{item!r} is not a whole percentage", field="thresholds") from None
        if not 1 <= value <= 1000:
            raise BadInput(f"each threshold must be from 1 to 1000 percent, got {value}", field="thresholds")
        values.append(value)
    if len(values) > MAX_THRESHOLDS:
        raise BadInput(f"at most {MAX_THRESHOLDS} thresholds", field="thresholds")
    return tuple(sorted(set(values)))


def thresholds_of(budget: Budget) -> tuple[int, ...]:
    return tuple(int(t) for t in budget.thresholds.split(",") if t)


def crossed(thresholds: Sequence[int], spent: Decimal, cap: Decimal, alerted: int) -> list[int]:
    """The thresholds above `alerted` that `spent` reaches, lowest first (each alerts once)."""
    return sorted(t for t in thresholds if t > alerted and spent * 100 >= cap * t)


class BudgetPool(Pool):
    name = "budget"
    table = BUDGETS
    leases = BUDGET_LEASES
    owner = "budget_id"

    def touch(self) -> dict[str, Any]:
        period = period_of()
        fresh = BUDGETS.c.period == period
        return {
            "spent": case((fresh, BUDGETS.c.spent), else_=ZERO),
            "alerted": case((fresh, BUDGETS.c.alerted), else_=0),
            "period": period,
        }

    def returning(self) -> tuple[Column[Any], ...]:
        return (BUDGETS.c.monthly_cap, BUDGETS.c.spent, BUDGETS.c.held)

    def available(self, row: Row[Any]) -> Decimal:
        return max(ZERO, Decimal(row.monthly_cap - row.spent - row.held))

    def refusal(self, amount: Decimal) -> DomainError:
        return BudgetExceeded(f"the request may cost {amount} USD, more than the budget has left this month")


BUDGET = BudgetPool()


@dataclass(frozen=True)
class Covering:
    budget_id: int
    scope: str  # "account" or the key id


class BudgetBook:
    """This process's budget leases and which budgets cover which keys (`app.state.budgets`)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: MemoryBroker,
        instance: Instance,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.leases = CreditBook(sessionmaker, instance, pool=BUDGET)
        self.check_seconds = check_seconds
        self.by_account: dict[int, tuple[Covering, ...]] = {}
        self._stale: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reload()
        self.broker.watch(self._heard)
        await self.leases.start()
        self._task = asyncio.create_task(self._keep_current(), name="pricegraph: budgets")

    async def stop(self) -> None:
        self.broker.unwatch(self._heard)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.leases.stop()

    def covering(self, account_id: int, key_id: str | None) -> list[Covering]:
        return [c for c in self.by_account.get(account_id, ()) if c.scope in (ACCOUNT_SCOPE, key_id)]

    async def hold(self, account_id: int, key_id: str | None, amount: Decimal) -> list[Hold]:
        """Hold `amount` against every budget covering the request, or raise BudgetExceeded (holding none)."""
        holds: list[Hold] = []
        for cover in self.covering(account_id, key_id):
            try:
                holds.append(await self.leases.hold(cover.budget_id, amount))
            except BudgetExceeded as exc:
                for taken in holds:
                    self.leases.release(taken)
                what = "the account's" if cover.scope == ACCOUNT_SCOPE else f"key {cover.scope}'s"
                raise BudgetExceeded(f"{what} monthly budget: {exc}") from None
        return holds

    async def top_up(self, holds: list[Hold], amount: Decimal) -> bool:
        raised: list[tuple[Hold, Decimal]] = []
        for hold in holds:
            before = hold.amount
            if not await self.leases.top_up(hold, amount):
                for taken, previous in raised:  # back to what they were
                    taken.lease.reserved -= taken.amount - previous
                    taken.amount = previous
                return False
            raised.append((hold, before))
        return True

    def release(self, holds: list[Hold]) -> None:
        for hold in holds:
            self.leases.release(hold)

    def spend(self, holds: list[Hold], cost: Decimal) -> tuple[tuple[int, Decimal, Decimal], ...]:
        """Each hold becomes a charge at `cost`: (budget id, from its lease, beyond it)."""
        return tuple((hold.account_id, *self.leases.spend(hold, cost)) for hold in holds)

    def settled(self, budget_id: int, charged: Decimal) -> None:
        self.leases.settled(budget_id, charged)

    async def reload(self, account_ids: set[int] | None = None) -> None:
        query = select(Budget.id, Budget.account_id, Budget.scope)
        if account_ids is not None:
            query = query.where(Budget.account_id.in_(account_ids))
        async with self.sessionmaker() as session:
            rows = (await session.execute(query.order_by(Budget.id))).all()
        found: dict[int, list[Covering]] = {}
        for row in rows:
            found.setdefault(row.account_id, []).append(Covering(row.id, row.scope))
        if account_ids is None:
            self.by_account = {k: tuple(v) for k, v in found.items()}
            return
        for account_id in account_ids:
            self.by_account[account_id] = tuple(found.get(account_id, ()))

    def _heard(self, events: Sequence[Event]) -> None:
        changed = {e.account_id for e in events if isinstance(e, BudgetChanged)}
        if changed:
            self._stale |= changed
            self._wake.set()

    async def _keep_current(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_seconds)
            self._wake.clear()
            stale, self._stale = self._stale, set()
            try:
                await self.reload(stale or None)
            except Exception:
                self._stale |= stale
                log.warning("could not read the budgets", exc_info=True)


# ---- use cases --------------------------------------------------------------------------------------------


async def _scope_for(session: AsyncSession, account_id: int, key_id: str | None) -> str:
    if key_id is None:
        return ACCOUNT_SCOPE
    key = await session.get(ApiKey, key_id)
    if key is None or key.account_id != account_id:
        raise NotFound(f"API key {key_id!r} not found", field="key_id")
    return key_id


async def set_budget(
    session: AsyncSession,
    account_id: int,
    monthly_cap: object,
    key_id: str | None = None,
    thresholds: Sequence[int] | str | None = None,
    broker: MemoryBroker | None = None,
) -> Budget:
    """Set (or change) the account's or a key's monthly cap in USD and its alert thresholds."""
    cap = parse_amount(monthly_cap, "monthly_cap")
    marks = ",".join(str(t) for t in parse_thresholds(thresholds))
    scope = await _scope_for(session, account_id, key_id)
    now = datetime.now(UTC)
    budget = (
        await session.execute(select(Budget).where(Budget.account_id == account_id, Budget.scope == scope))
    ).scalar_one_or_none()
    if budget is None:
        count = len((await session.execute(select(Budget.id).where(Budget.account_id == account_id))).all())
        if count >= MAX_BUDGETS:
            raise BadInput(f"an account may have at most {MAX_BUDGETS} budgets", field="key_id")
        budget = Budget(
            account_id=account_id, scope=scope, monthly_cap=cap, thresholds=marks, period=period_of(now), spent=ZERO
        )
        budget.held, budget.alerted, budget.created_at, budget.updated_at = ZERO, 0, now, now
        session.add(budget)
        await session.flush()
    else:
        await session.execute(
            update(Budget).where(Budget.id == budget.id).values(monthly_cap=cap, thresholds=marks, updated_at=now)
        )
        await session.refresh(budget)
    if broker is not None:
        await broker.publish(session, [BudgetChanged(account_id)])
    return budget


async def remove_budget(
    session: AsyncSession, account_id: int, key_id: str | None = None, broker: MemoryBroker | None = None
) -> bool:
    scope = await _scope_for(session, account_id, key_id)
    gone = (
        await session.execute(
            delete(Budget).where(Budget.account_id == account_id, Budget.scope == scope).returning(Budget.id)
        )
    ).scalar_one_or_none()
    if gone is not None and broker is not None:
        await broker.publish(session, [BudgetChanged(account_id)])
    return gone is not None


async def list_budgets(session: AsyncSession, account_id: int) -> list[Budget]:
    rows = await session.execute(select(Budget).where(Budget.account_id == account_id).order_by(Budget.id))
    return list(rows.scalars())


def spent_this_period(budget: Budget) -> Decimal:
    """What the budget's month has spent (nothing yet when its row still holds an earlier month)."""
    return budget.spent if budget.period == period_of() else ZERO


def parse_low_balance(raw: object) -> Decimal | None:
    if raw is None:
        return None
    return parse_amount(raw, "low_balance", allow_zero=False)
