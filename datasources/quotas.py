"""Request quotas, exact across server processes without a database round trip per request.

The shared counter (`request_counters`, one row per subject and window bucket) counts the requests
*granted*, to whichever process asked. A process leases a block of them in one transaction (add the
block, read the window's total, give back whatever went over the plan) and spends the block in
memory, request by request. Blocks shrink as the quota nears its end, down to what the requests
waiting right now need, so the sum of what all processes grant never exceeds the plan and little is
left stranded in one process while another refuses. What a process leased and did not spend goes
back to the counter when the subject has been idle for a moment, when the window moves on, and when
the process stops. (This is the idea behind YouTube's Doorman and Envoy's quota-based rate limits.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.db.models import RequestCounter
from datasources.db.tables import COUNTERS
from datasources.errors import QuotaExceeded
from datasources.plans import PlanRules, Window

log = logging.getLogger("pricegraph.quotas")

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)
MAX_BLOCK = 50  # requests leased at once, far from the quota's end
IDLE_SECONDS = 2.0  # a subject unused this long gives its unspent requests back
REFUSAL_MEMO = 0.25  # seconds a spent quota is refused from memory before the counter is asked again


@dataclass(frozen=True)
class Admission:
    limit: int | None
    remaining: int | None
    reset_at: int | None  # Unix seconds
    subject: str | None = None
    bucket: datetime | None = None  # where the request was counted, to refund it


UNLIMITED = Admission(None, None, None)


def _bucket(window: Window, now: datetime) -> datetime:
    if window is Window.ROLLING_DAY:
        return now.replace(minute=0, second=0, microsecond=0)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


@dataclass
class _Lease:
    """What this process holds of one subject's quota in the current bucket."""

    subject: str
    bucket: datetime
    tokens: int = 0  # granted to this process, not spent yet
    used: int = 0  # the window's total grants (every process's), as of the last lease
    reset: datetime | None = None
    last: float = field(default_factory=time.monotonic)
    refused_at: float = -1.0  # when the counter last had nothing left to grant
    waiting: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class Granted:
    tokens: int
    used: int
    reset: datetime


class QuotaBook:
    """This process's share of every subject's quota (`app.state.quotas`)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        idle_seconds: float = IDLE_SECONDS,
        max_block: int = MAX_BLOCK,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.idle_seconds = idle_seconds
        self.max_block = max_block
        self.leases: dict[str, _Lease] = {}
        self.round_trips = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._give_back_idle(), name="pricegraph: idle quotas")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for lease in list(self.leases.values()):
            with contextlib.suppress(Exception):
                await self._give_back(lease)
        self.leases.clear()

    async def admit(self, subject: str, rules: PlanRules, now: datetime | None = None) -> Admission:
        """Spend one request of `subject`'s quota, or raise QuotaExceeded (spending nothing)."""
        if rules.requests is None:
            return UNLIMITED
        now = now or datetime.now(UTC)
        bucket = _bucket(rules.window, now)
        lease = self.leases.get(subject)
        if lease is not None and lease.bucket != bucket:  # the window moved on: what is left goes back
            del self.leases[subject]
            asyncio.get_running_loop().create_task(self._give_back(lease))
            lease = None
        if lease is None:
            lease = self.leases[subject] = _Lease(subject, bucket)
        if lease.tokens == 0:
            lease.waiting += 1
            try:
                async with lease.lock:
                    if lease.tokens == 0 and time.monotonic() - lease.refused_at >= REFUSAL_MEMO:
                        await self._lease(lease, rules, now)
            finally:
                lease.waiting -= 1
        if lease.tokens == 0:
            assert lease.reset is not None
            retry_after = max(1, math.ceil((lease.reset - now).total_seconds()))
            raise QuotaExceeded(
                f"rate limit exceeded: {rules.requests} requests per {rules.window.value} on the "
                f"{rules.plan.value} plan; retry after {retry_after} s",
                limit=rules.requests,
                retry_after=retry_after,
                reset_at=int(lease.reset.timestamp()),
            )
        lease.tokens -= 1
        lease.last = time.monotonic()
        assert lease.reset is not None
        remaining = max(0, rules.requests - lease.used + lease.tokens)
        return Admission(rules.requests, remaining, int(lease.reset.timestamp()), subject, bucket)

    def refund(self, admission: Admission) -> Admission:
        """Give back a request that was refused after admission (it answered nothing)."""
        if admission.subject is None or admission.bucket is None or admission.remaining is None:
            return admission
        lease = self.leases.get(admission.subject)
        if lease is not None and lease.bucket == admission.bucket:
            lease.tokens += 1
        else:
            stale = _Lease(admission.subject, admission.bucket, tokens=1)
            asyncio.get_running_loop().create_task(self._give_back(stale))
        return Admission(admission.limit, admission.remaining + 1, admission.reset_at, admission.subject, None)

    def _want(self, lease: _Lease, limit: int) -> int:
        remaining = max(0, limit - lease.used)
        want = max(1, min(self.max_block, remaining // 8))
        if remaining < 2 * self.max_block:  # near the end: only what is asked for right now
            want = min(want, max(1, lease.waiting))
        return want

    async def _lease(self, lease: _Lease, rules: PlanRules, now: datetime) -> None:
        assert rules.requests is not None
        want = self._want(lease, rules.requests)
        async with self.sessionmaker() as session:
            granted = await lease_requests(session, lease.subject, rules, lease.bucket, want, now)
            await session.commit()
        self.round_trips += 1
        lease.tokens += granted.tokens
        lease.used = granted.used
        lease.reset = granted.reset
        lease.refused_at = time.monotonic() if granted.tokens == 0 else -1.0

    async def _give_back(self, lease: _Lease) -> None:
        tokens, lease.tokens = lease.tokens, 0
        if tokens <= 0:
            return
        async with self.sessionmaker() as session:
            await _take_back(session, lease.subject, lease.bucket, tokens)
            await session.commit()

    async def _give_back_idle(self) -> None:
        while True:
            await asyncio.sleep(self.idle_seconds / 2)
            now = time.monotonic()
            for subject, lease in list(self.leases.items()):
                if lease.waiting or now - lease.last < self.idle_seconds:
                    continue
                del self.leases[subject]
                try:
                    await self._give_back(lease)
                except Exception:
                    log.warning("could not give back %d requests of %s", lease.tokens, subject, exc_info=True)


async def _increment(session: AsyncSession, subject: str, bucket: datetime, by: int) -> int:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(COUNTERS).values(subject=subject, window_start=bucket, count=by)
    statement = statement.on_conflict_do_update(
        index_elements=[COUNTERS.c.subject, COUNTERS.c.window_start],
        set_={"count": COUNTERS.c.count + by},
    )
    return int((await session.execute(statement.returning(COUNTERS.c.count))).scalar_one())


async def lease_requests(
    session: AsyncSession, subject: str, rules: PlanRules, bucket: datetime, want: int, now: datetime
) -> Granted:
    """Grant up to `want` requests of the window to the caller, in the caller's transaction: add them to
    the bucket (which locks its row until commit), read the window's total, take back what went over."""
    assert rules.requests is not None
    count = await _increment(session, subject, bucket, want)
    earlier, oldest = 0, bucket
    if rules.window is Window.ROLLING_DAY:
        row = (
            await session.execute(
                select(
                    func.coalesce(func.sum(RequestCounter.requests), 0), func.min(RequestCounter.window_start)
                ).where(
                    RequestCounter.subject == subject,
                    RequestCounter.requests > 0,
                    RequestCounter.window_start > bucket - DAY,
                    RequestCounter.window_start < bucket,
                )
            )
        ).one()
        earlier, oldest = int(row[0]), (row[1] or bucket)
        reset = oldest + DAY
    else:
        reset = _next_month(bucket)
    used = earlier + count
    over = min(want, max(0, used - rules.requests))
    if over:
        await _take_back(session, subject, bucket, over)
    return Granted(want - over, used - over, reset)


async def _take_back(session: AsyncSession, subject: str, bucket: datetime, count: int) -> None:
    await session.execute(
        update(RequestCounter)
        .where(RequestCounter.subject == subject, RequestCounter.window_start == bucket)
        .values(requests=RequestCounter.requests - count)
    )
