"""Usage records and their charges, written in group commits.

Every request that goes upstream gets a *pending* usage record first, holding what the request may
cost; the gateway releases the answer to its client only once that record is committed, and the commit
overlaps the upstream call (a provider takes far longer than a commit). When the request is done its
record is *settled* to what it really used and cost, and the cost is charged from the account's lease
(`datasources.credit`) as one `usage` ledger row. A process that dies with records still pending leaves
them to the sweeper, which settles them at what they held.

One writer task takes whatever has been queued, writes it in one transaction, and starts over; what
arrives during a commit goes into the next one. Nothing queued is dropped: a failed batch is retried,
with its callers still waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import bindparam, case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.budgets import crossed, period_of
from datasources.credit import ZERO, CreditBook
from datasources.db.models import UsageState
from datasources.db.tables import ACCOUNTS, BUDGETS, LEDGER, RECORDS
from datasources.events import AlertRaised, BalanceChanged, Broker, Event, UsageRecorded
from datasources.notices import announce
from datasources.pricing import COST_PARTS, NO_COST, Cost

log = logging.getLogger("pricegraph.recorder")

MAX_BATCH = 500


@dataclass
class Pending:
    """A request about to go upstream: who asked, for what, and what it may cost."""

    request_id: str
    account_id: int
    api_key_id: str | None
    model_slug: str
    endpoint: str
    held: Decimal = ZERO
    lease_id: int | None = None
    provider_slug: str | None = None
    variant: str | None = None
    key_source: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Finished:
    """The same request, done: what it used, what it cost, what of that the account pays."""

    request_id: str
    account_id: int
    model_slug: str
    status: int
    api_key_id: str | None = None
    endpoint: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    provider_slug: str | None = None
    variant: str | None = None
    key_source: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    breakdown: Cost = NO_COST  # what it cost, by part
    latency_ms: int | None = None
    estimated: bool = False
    from_lease: Decimal = ZERO  # charged from this process's lease
    beyond: Decimal = ZERO  # charged from what is available beyond the lease, if it covers it
    budgets: tuple[tuple[int, Decimal, Decimal], ...] = ()  # (budget id, from its lease, beyond it)

    @property
    def cost(self) -> Decimal:
        return self.breakdown.total


@dataclass
class _Adjust:
    request_id: str
    held: Decimal
    lease_id: int | None


@dataclass
class _Item:
    work: Pending | Finished | _Adjust | None  # None: a barrier (flush)
    done: asyncio.Future[None]


class Recorder:
    """This process's writer of usage and charges (`app.state.recorder`)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: Broker,
        credit: CreditBook,
        instance_id: str,
        budgets: CreditBook | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.credit = credit
        self.budgets = budgets  # the budget pool's leases (datasources.budgets)
        self.instance_id = instance_id
        self.queue: list[_Item] = []
        self.ids: dict[str, int] = {}  # request id → usage record id, while the record is pending
        self.commits = 0
        self.written = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pricegraph: recorder")

    async def stop(self) -> None:
        """Write everything queued, then stop."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self.queue:
            await self._write_batch()

    def _submit(self, work: Pending | Finished | _Adjust | None) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append(_Item(work, done))
        self._wake.set()
        return done

    def begin(self, pending: Pending) -> asyncio.Future[None]:
        """Queue the pending record; the future is done once it is committed."""
        return self._submit(pending)

    def adjust(self, request_id: str, held: Decimal, lease_id: int | None) -> asyncio.Future[None]:
        """A hold that grew (a fallback to a dearer provider): the pending record holds that much."""
        return self._submit(_Adjust(request_id, held, lease_id))

    def finish(self, finished: Finished) -> asyncio.Future[None]:
        return self._submit(finished)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (read-your-writes, shutdown)."""
        if self.queue or (self._task is not None and not self._task.done()):
            await asyncio.shield(self._submit(None))

    async def caught_up(self, account_id: int) -> None:
        """Everything this process answered for the account is committed, and the account's lease (if no
        request stands against it) given back, so that its balance reads as it is."""
        await self.flush()
        await self.credit.give_back(account_id, force=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                await self._write_batch()

    async def _write_batch(self) -> None:
        batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
        delay = 0.05
        while True:
            try:
                settled, budgeted = await self._write([item.work for item in batch if item.work is not None])
                break
            except asyncio.CancelledError:
                self.queue[:0] = batch
                raise
            except Exception:
                log.exception("writing %d usage items failed; retrying in %.2f s", len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.commits += 1
        self.written += len(batch)
        for account_id, charged in settled.items():
            self.credit.settled(account_id, charged)
        for budget_id, charged in budgeted.items():
            if self.budgets is not None:
                self.budgets.settled(budget_id, charged)
        for item in batch:
            if not item.done.done():
                item.done.set_result(None)

    async def _write(
        self, works: Sequence[Pending | Finished | _Adjust]
    ) -> tuple[dict[int, Decimal], dict[int, Decimal]]:
        pending = [w for w in works if isinstance(w, Pending)]
        adjusts = [w for w in works if isinstance(w, _Adjust)]
        finished = [w for w in works if isinstance(w, Finished)]
        events: list[Event] = []
        charged: dict[int, Decimal] = defaultdict(lambda: ZERO)
        budgeted: dict[int, Decimal] = defaultdict(lambda: ZERO)
        async with self.sessionmaker() as session, session.begin():
            ids = dict(self.ids)
            if pending:
                rows = (
                    await session.execute(
                        insert(RECORDS).returning(RECORDS.c.id, RECORDS.c.request_id),
                        [
                            {
                                "account_id": p.account_id,
                                "api_key_id": p.api_key_id,
                                "model_slug": p.model_slug,
                                "provider_slug": p.provider_slug,
                                "endpoint": p.endpoint,
                                "prompt_tokens": 0,
                                "completion_tokens": 0,
                                "cost": ZERO,
                                "status": 0,
                                "key_source": p.key_source,
                                "created_at": p.created_at,
                                "request_id": p.request_id,
                                "variant": p.variant,
                                "estimated": False,
                                "state": UsageState.PENDING,
                                "held": p.held,
                                "lease_id": p.lease_id,
                                "instance_id": self.instance_id,
                            }
                            for p in pending
                        ],
                    )
                ).all()
                ids.update({str(request_id): usage_id for usage_id, request_id in rows})
            if adjusts:
                await session.execute(
                    update(RECORDS)
                    .where(RECORDS.c.id == bindparam("usage_id"))
                    .values(held=bindparam("new_held"), lease_id=bindparam("new_lease")),
                    [
                        {"usage_id": ids[a.request_id], "new_held": a.held, "new_lease": a.lease_id}
                        for a in adjusts
                        if a.request_id in ids
                    ],
                )
            if finished:
                settled = await self._settle(session, finished, ids, events, charged, budgeted)
                for request_id in settled:
                    ids.pop(request_id, None)
            await announce(session, events, self.broker)
        self.ids = ids
        return charged, budgeted

    async def _settle(
        self,
        session: AsyncSession,
        finished: list[Finished],
        ids: dict[str, int],
        events: list[Event],
        charged: dict[int, Decimal],
        budgeted: dict[int, Decimal],
    ) -> list[str]:
        known = [f for f in finished if f.request_id in ids]
        if len(known) < len(finished):
            log.error("%d finished requests have no pending usage record", len(finished) - len(known))
        if not known:
            return []
        still = set(
            (
                await session.execute(  # a record the sweeper recovered is not settled (or charged) again
                    select(RECORDS.c.id)
                    .where(RECORDS.c.id.in_([ids[f.request_id] for f in known]), RECORDS.c.state == UsageState.PENDING)
                    .with_for_update()
                )
            ).scalars()
        )
        if len(still) < len(known):
            log.error("%d usage records were recovered before they settled: not charged again", len(known) - len(still))
        done = [f.request_id for f in known]
        known = [f for f in known if ids[f.request_id] in still]
        if not known:
            return done
        await session.execute(
            update(RECORDS)
            .where(RECORDS.c.id == bindparam("usage_id"))
            .values(
                status=bindparam("new_status"),
                provider_slug=bindparam("new_provider"),
                variant=bindparam("new_variant"),
                key_source=bindparam("new_key_source"),
                prompt_tokens=bindparam("new_prompt"),
                completion_tokens=bindparam("new_completion"),
                cache_read_tokens=bindparam("new_cache_read"),
                cache_write_tokens=bindparam("new_cache_write"),
                reasoning_tokens=bindparam("new_reasoning"),
                cost=bindparam("new_cost"),
                **{f"cost_{part}": bindparam(f"new_cost_{part}") for part in COST_PARTS},
                latency_ms=bindparam("new_latency"),
                estimated=bindparam("new_estimated"),
                state=UsageState.SETTLED,
            ),
            [
                {
                    "usage_id": ids[f.request_id],
                    "new_status": f.status,
                    "new_provider": f.provider_slug,
                    "new_variant": f.variant,
                    "new_key_source": f.key_source,
                    "new_prompt": f.prompt_tokens,
                    "new_completion": f.completion_tokens,
                    "new_cache_read": f.cache_read_tokens,
                    "new_cache_write": f.cache_write_tokens,
                    "new_reasoning": f.reasoning_tokens,
                    "new_cost": f.cost,
                    **{f"new_cost_{part}": value for part, value in f.breakdown.parts().items()},
                    "new_latency": f.latency_ms,
                    "new_estimated": f.estimated,
                }
                for f in known
            ],
        )
        for f in known:
            events.append(
                UsageRecorded(
                    usage_id=ids[f.request_id],
                    account_id=f.account_id,
                    api_key_id=f.api_key_id,
                    model=f.model_slug,
                    provider=f.provider_slug,
                    endpoint=f.endpoint,
                    prompt_tokens=f.prompt_tokens,
                    completion_tokens=f.completion_tokens,
                    cost=f.cost,
                    status=f.status,
                    estimated=f.estimated,
                    created_at=f.created_at,
                    cached_tokens=f.cache_read_tokens,
                    reasoning_tokens=f.reasoning_tokens,
                )
            )
        by_account: dict[int, list[Finished]] = defaultdict(list)
        for f in known:
            if f.from_lease or f.beyond:
                by_account[f.account_id].append(f)
        for account_id in sorted(by_account):  # one account row at a time, in id order: no lock cycles
            await self._charge(session, account_id, by_account[account_id], ids, events, charged)
        spend: dict[int, list[tuple[Decimal, Decimal]]] = defaultdict(list)
        for f in known:
            for budget_id, from_lease, beyond in f.budgets:
                spend[budget_id].append((from_lease, beyond))
        for budget_id in sorted(spend):  # after the accounts, in id order
            await self._spend_budget(session, budget_id, spend[budget_id], events, budgeted)
        return done

    async def _spend_budget(
        self,
        session: AsyncSession,
        budget_id: int,
        items: list[tuple[Decimal, Decimal]],
        events: list[Event],
        budgeted: dict[int, Decimal],
    ) -> None:
        """Add what the requests cost to the budget's month; what their holds took comes off its lease.
        The statement records the highest threshold crossed, so each alerts once per period."""
        from_lease = sum((item[0] for item in items), ZERO)
        cost = from_lease + sum((item[1] for item in items), ZERO)
        period = period_of()
        fresh = BUDGETS.c.period == period
        row = (
            await session.execute(
                update(BUDGETS)
                .where(BUDGETS.c.id == budget_id)
                .values(
                    spent=case((fresh, BUDGETS.c.spent), else_=ZERO) + cost,
                    alerted=case((fresh, BUDGETS.c.alerted), else_=0),
                    period=period,
                    held=BUDGETS.c.held - from_lease,
                )
                .returning(
                    BUDGETS.c.account_id,
                    BUDGETS.c.scope,
                    BUDGETS.c.spent,
                    BUDGETS.c.monthly_cap,
                    BUDGETS.c.thresholds,
                    BUDGETS.c.alerted,
                )
            )
        ).one_or_none()
        if row is None:  # the budget was removed meanwhile: its leases went with it
            return
        if from_lease:
            if self.budgets is not None and await self.budgets.take(session, budget_id, from_lease):
                budgeted[budget_id] += from_lease
            else:  # the lease is gone (taken for dead, given back to the budget): its part of held went with it
                await session.execute(
                    update(BUDGETS).where(BUDGETS.c.id == budget_id).values(held=BUDGETS.c.held + from_lease)
                )
        marks = tuple(int(t) for t in row.thresholds.split(",") if t)
        reached = crossed(marks, row.spent, row.monthly_cap, row.alerted)
        if not reached:
            return
        raised = (
            await session.execute(
                update(BUDGETS)
                .where(BUDGETS.c.id == budget_id, BUDGETS.c.alerted < reached[-1])
                .values(alerted=reached[-1])
                .returning(BUDGETS.c.id)
            )
        ).scalar_one_or_none()
        if raised is None:
            return
        for percent in reached:
            events.append(
                AlertRaised(
                    account_id=row.account_id,
                    type="budget.threshold",
                    raised_at=datetime.now(UTC),
                    scope=row.scope,
                    percent=percent,
                    spent=row.spent,
                    cap=row.monthly_cap,
                    period=period,
                )
            )

    async def _low_balance(self, session: AsyncSession, account_id: int, events: list[Event]) -> None:
        """The balance fell below the account's low-balance line: one alert, until a credit lifts it again."""
        row = (
            await session.execute(
                update(ACCOUNTS)
                .where(
                    ACCOUNTS.c.id == account_id,
                    ACCOUNTS.c.low_balance.is_not(None),
                    ACCOUNTS.c.balance < ACCOUNTS.c.low_balance,
                    ACCOUNTS.c.low_balance_alerted.is_(False),
                )
                .values(low_balance_alerted=True)
                .returning(ACCOUNTS.c.balance, ACCOUNTS.c.low_balance)
            )
        ).one_or_none()
        if row is not None:
            events.append(
                AlertRaised(
                    account_id=account_id,
                    type="balance.low",
                    raised_at=datetime.now(UTC),
                    balance=row.balance,
                    threshold=row.low_balance,
                )
            )

    async def _charge(
        self,
        session: AsyncSession,
        account_id: int,
        items: list[Finished],
        ids: dict[str, int],
        events: list[Event],
        charged: dict[int, Decimal],
    ) -> None:
        from_lease = sum((f.from_lease for f in items), ZERO)
        balance: Decimal | None = None
        if from_lease:  # the account row first (its writer, everywhere), then the lease
            balance = (
                await session.execute(
                    update(ACCOUNTS)
                    .where(ACCOUNTS.c.id == account_id)
                    .values(balance=ACCOUNTS.c.balance - from_lease, held=ACCOUNTS.c.held - from_lease)
                    .returning(ACCOUNTS.c.balance)
                )
            ).scalar_one()
            if await self.credit.take(session, account_id, from_lease):
                charged[account_id] += from_lease
            else:  # the lease these were held on is gone (taken for dead): undo, charge what is available
                log.warning("account %s: the lease of these charges is gone; charging what is available", account_id)
                await session.execute(
                    update(ACCOUNTS)
                    .where(ACCOUNTS.c.id == account_id)
                    .values(balance=ACCOUNTS.c.balance + from_lease, held=ACCOUNTS.c.held + from_lease)
                )
                items = [replace(f, from_lease=ZERO, beyond=f.beyond + f.from_lease) for f in items]
                balance = None
        beyond = sum((f.beyond for f in items), ZERO)
        if beyond:  # more than was held: from what the account has available, if it covers it
            covered = (
                await session.execute(
                    update(ACCOUNTS)
                    .where(ACCOUNTS.c.id == account_id, ACCOUNTS.c.balance - ACCOUNTS.c.held >= beyond)
                    .values(balance=ACCOUNTS.c.balance - beyond)
                    .returning(ACCOUNTS.c.balance)
                )
            ).scalar_one_or_none()
            if covered is None:
                log.warning(
                    "account %s: %s USD beyond its holds was not covered and is not charged", account_id, beyond
                )
                items = [replace(f, beyond=ZERO) for f in items]
            else:
                balance = covered
        if balance is None:
            balance = (
                await session.execute(select(ACCOUNTS.c.balance).where(ACCOUNTS.c.id == account_id))
            ).scalar_one()
        after = balance
        rows = []
        for f in reversed(items):
            rows.append(
                {
                    "account_id": account_id,
                    "type": "usage",
                    "amount": -(f.from_lease + f.beyond),
                    "balance_after": after,
                    "description": f"{f.model_slug} via {f.provider_slug}",
                    "usage_record_id": ids[f.request_id],
                    "created_at": datetime.now(UTC),
                }
            )
            after += f.from_lease + f.beyond
        rows.reverse()
        inserted = (
            await session.execute(
                insert(LEDGER).returning(LEDGER.c.id, LEDGER.c.amount, LEDGER.c.balance_after, LEDGER.c.created_at),
                rows,
            )
        ).all()
        for transaction_id, amount, balance_after, created_at in inserted:
            events.append(
                BalanceChanged(
                    account_id=account_id,
                    transaction_id=transaction_id,
                    type="usage",
                    amount=amount,
                    balance=balance_after,
                    created_at=created_at,
                )
            )
        await self._low_balance(session, account_id, events)
