"""Request quotas, counted in the database so every server process shares them exactly.

A request is admitted by one atomic upsert that returns the bucket's new count; a request that
finds the quota spent takes its count back, so refused requests use no quota.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.db.models import RequestCounter
from datasources.errors import QuotaExceeded
from datasources.plans import PlanRules, Window

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)


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


async def _increment(session: AsyncSession, subject: str, bucket: datetime, by: int) -> int:
    dialect = session.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(RequestCounter).values(subject=subject, window_start=bucket, requests=by)
    statement = statement.on_conflict_do_update(
        index_elements=[RequestCounter.subject, RequestCounter.window_start],
        set_={"count": RequestCounter.requests + by},
    ).returning(RequestCounter.requests)
    return (await session.execute(statement)).scalar_one()


async def admit(session: AsyncSession, subject: str, rules: PlanRules, now: datetime | None = None) -> Admission:
    """Count one request for `subject`, or raise QuotaExceeded (and count nothing). Commits."""
    if rules.requests is None:
        return UNLIMITED
    now = now or datetime.now(UTC)
    bucket = _bucket(rules.window, now)
    count = await _increment(session, subject, bucket, 1)
    earlier, oldest = 0, bucket
    if rules.window is Window.ROLLING_DAY:
        row = (await session.execute(
            select(func.coalesce(func.sum(RequestCounter.requests), 0), func.min(RequestCounter.window_start))
            .where(RequestCounter.subject == subject, RequestCounter.requests > 0,
                   RequestCounter.window_start > bucket - DAY, RequestCounter.window_start < bucket)
        )).one()
        earlier, oldest = int(row[0]), (row[1] or bucket)
        reset = oldest + DAY
    else:
        reset = _next_month(bucket)
    used = earlier + count
    if used > rules.requests:
        await _take_back(session, subject, bucket)
        await session.commit()
        retry_after = max(1, math.ceil((reset - now).total_seconds()))
        raise QuotaExceeded(
            f"rate limit exceeded: {rules.requests} requests per {rules.window.value} on the "
            f"{rules.plan.value} plan; retry after {retry_after} s",
            limit=rules.requests, retry_after=retry_after, reset_at=int(reset.timestamp()),
        )
    await session.commit()
    return Admission(rules.requests, rules.requests - used, int(reset.timestamp()), subject, bucket)


async def refund(session: AsyncSession, admission: Admission) -> Admission:
    """Give back a request that was refused after admission (it answered nothing). Commits."""
    if admission.subject is None or admission.bucket is None or admission.remaining is None:
        return admission
    await _take_back(session, admission.subject, admission.bucket)
    await session.commit()
    return replace(admission, remaining=admission.remaining + 1, bucket=None)


async def _take_back(session: AsyncSession, subject: str, bucket: datetime) -> None:
    await session.execute(
        update(RequestCounter)
        .where(RequestCounter.subject == subject, RequestCounter.window_start == bucket)
        .values(requests=RequestCounter.requests - 1)
    )
