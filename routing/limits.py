"""Admission for every surface: the plan gate first (refusals use no quota), then the quota."""

from __future__ import annotations

from datasources import quotas
from datasources.errors import QuotaExceeded
from datasources.plans import Feature, require
from routing.auth import Principal


async def admit(
    book: quotas.QuotaBook,
    principal: Principal,
    feature: Feature | None = None,
    history_days: int | None = None,
) -> quotas.Admission:
    if feature is not None:
        require(principal.rules, feature, history_days)
    return await book.admit(principal.subject, principal.rules)


def refund(book: quotas.QuotaBook, admission: quotas.Admission) -> quotas.Admission:
    return book.refund(admission)


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
