"""Admission for every surface: the plan gate first (refusals use no quota), then the quota."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources import quotas
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


def rate_limit_headers(admission: quotas.Admission) -> dict[str, str]:
    if admission.limit is None:
        return {}
    return {
        "X-RateLimit-Limit": str(admission.limit),
        "X-RateLimit-Remaining": str(admission.remaining),
        "X-RateLimit-Reset": str(admission.reset_at),
    }
