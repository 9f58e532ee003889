"""Admission for every surface: the plan gate first (refusals use no quota), then the quota."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources import quotas
from datasources.errors import QuotaExceeded
from datasources.plans import Feature, require
from routing.auth import Principal


async def admit(
    sessionmaker: async_sessionmaker[AsyncSession],
    principal: Principal,
    feature: Feature | None = None,
    history_days: int | None = None,
) -> quotas.Admission:
    if feature is not None:
        require(principal.rules, feature, history_days)
    async with sessionmaker() as session:
        return await quotas.admit(session, principal.subject, principal.rules)


async def refund(sessionmaker: async_sessionmaker[AsyncSession], admission: quotas.Admission) -> quotas.Admission:
    async with sessionmaker() as session:
        return await quotas.refund(session, admission)


def rate_limit_headers(admission: quotas.Admission) -> dict[str, str]:
    if admission.limit is None:
        return {}
    return {
        "X-RateLimit-Limit": str(admission.limit),
        "X-RateLimit-Remaining": str(admission.remaining),
        "X-RateLimit-Reset": str(admission.reset_at),
    }


def refusal_headers(exc: QuotaExceeded) -> dict[str, str]:
    return {
        "Retry-After": str(exc.retry_after),
        "X-RateLimit-Limit": str(exc.limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(exc.reset_at),
    }
