"""What a routed request holds, records and is charged: a hold on the account's credit lease before a
platform key is used, the pending usage record committed before any answer leaves, and the settlement
that charges the cost (or gives the hold back)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from datasources import errors, pricing
from datasources.pricing import NO_COST, NO_USE, TokenUse
from datasources.recorder import Finished, Pending
from routing.gateway import metering
from routing.gateway.errors import GatewayError
from routing.gateway.exchange import Exchange
from routing.gateway.select import Candidate

RECORD_TIMEOUT = 10.0  # seconds an answer may wait for its pending usage record to be committed


def _key_id(x: Exchange) -> str | None:
    return x.principal.key_id if x.principal else None


async def first_affordable(x: Exchange, candidates: list[Candidate]) -> int:
    """The first candidate the request can be sent to: its most possible cost fits every budget covering the
    request, and for a platform key the account can hold it (the customer's own key needs no balance).
    Without one, the request is refused (402 `budget_exceeded` or `insufficient_balance`)."""
    shortfall: errors.InsufficientBalance | None = None
    over: errors.BudgetExceeded | None = None
    budgets = x.gateway.budgets
    covered = bool(budgets.covering(x.account_id, _key_id(x)))
    for index, candidate in enumerate(candidates):
        most = metering.max_cost(x.body, candidate, x.prompt_tokens)
        if covered:
            try:
                x.budget_holds = await budgets.hold(x.account_id, _key_id(x), most)
            except errors.BudgetExceeded as exc:
                over = over or exc
                continue
        if candidate.key_source != "platform":
            return index
        try:
            x.hold = await x.gateway.credit.hold(x.account_id, most)
            return index
        except errors.InsufficientBalance as exc:
            shortfall = exc
            budgets.release(x.budget_holds)
            x.budget_holds = []
    if over is not None and shortfall is None:
        raise GatewayError(402, f"budget exceeded: {over}", "budget_exceeded") from None
    raise GatewayError(
        402,
        f"insufficient balance for a request through Coaxiom's provider keys: {shortfall}; "
        "top up, or send your own provider keys in X-Provider-Keys",
        "insufficient_balance",
    ) from None


async def afford(x: Exchange, candidate: Candidate) -> bool:
    """Before a fallback to `candidate`: its own key needs nothing; a platform key needs the hold raised to
    its most possible cost (and the pending record to say so)."""
    amount = metering.max_cost(x.body, candidate, x.prompt_tokens)
    budgets = x.gateway.budgets
    if x.budget_holds:
        if not await budgets.top_up(x.budget_holds, amount):
            return False
    elif budgets.covering(x.account_id, _key_id(x)):
        try:
            x.budget_holds = await budgets.hold(x.account_id, _key_id(x), amount)
        except errors.BudgetExceeded:
            return False
    if candidate.key_source != "platform":
        return True
    if x.hold is None:
        try:
            x.hold = await x.gateway.credit.hold(x.account_id, amount)
        except errors.InsufficientBalance:
            return False
    elif not await x.gateway.credit.top_up(x.hold, amount):
        return False
    if x.recorded is not None:
        x.recorded = x.gateway.recorder.adjust(x.request_id, x.hold.amount, x.hold.lease_id)
    return True


def release(x: Exchange) -> None:
    """Give unused holds back to their leases."""
    if x.hold is not None:
        x.gateway.credit.release(x.hold)
        x.hold = None
    x.gateway.budgets.release(x.budget_holds)
    x.budget_holds = []


def begin(x: Exchange, candidate: Candidate, model_slug: str) -> None:
    """The pending usage record, queued before the first upstream call; its commit overlaps it."""
    x.recorded = x.gateway.recorder.begin(
        Pending(
            request_id=x.request_id,
            account_id=x.account_id,
            api_key_id=x.principal.key_id if x.principal else None,
            model_slug=model_slug,
            endpoint=x.scope["path"],
            held=x.hold.amount if x.hold else Decimal(0),
            lease_id=x.hold.lease_id if x.hold else None,
            provider_slug=candidate.slug,
            variant=candidate.variant,
            key_source=candidate.key_source,
            created_at=x.created_at,
        )
    )


async def durable(x: Exchange) -> None:
    """Nothing of an answer reaches the client before its pending usage record is committed."""
    if x.recorded is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(x.recorded), RECORD_TIMEOUT)
    except TimeoutError:
        raise GatewayError(
            503,
            "the request could not be recorded (the database does not answer); it was not delivered and is not charged",
            "recording_unavailable",
        ) from None


def settle(
    x: Exchange,
    model_slug: str,
    status: int,
    candidate: Candidate | None,
    use: TokenUse = NO_USE,
    estimated: bool = False,
    bill: bool = False,
) -> None:
    """Settle the pending usage record: what was used and cost; a platform key's cost is charged from the
    hold (and, past it, from what the lease has free), or the hold goes back unused."""
    if x.finished:
        return
    x.finished = True
    if not bill:
        use = NO_USE
    breakdown = pricing.cost(candidate.price, use) if bill and candidate is not None else NO_COST
    cost = breakdown.total
    if bill and candidate is not None:
        x.gateway.observer.metered(candidate.slug, candidate.model_slug, use, cost)
    from_lease, beyond = Decimal(0), Decimal(0)
    budgets: tuple[tuple[int, Decimal, Decimal], ...] = ()
    if x.budget_holds:
        if bill and candidate is not None:
            budgets = x.gateway.budgets.spend(x.budget_holds, cost)
        else:
            x.gateway.budgets.release(x.budget_holds)
        x.budget_holds = []
    if x.hold is not None:
        if candidate is not None and candidate.key_source == "platform" and bill:
            from_lease, beyond = x.gateway.credit.spend(x.hold, cost)
        else:
            x.gateway.credit.release(x.hold)
        x.hold = None
    x.gateway.recorder.finish(
        Finished(
            request_id=x.request_id,
            account_id=x.account_id,
            model_slug=model_slug,
            status=status,
            api_key_id=x.principal.key_id if x.principal else None,
            endpoint=x.scope["path"],
            created_at=x.created_at,
            provider_slug=candidate.slug if candidate else None,
            variant=candidate.variant if candidate else None,
            key_source=candidate.key_source if candidate else None,
            prompt_tokens=use.prompt,
            completion_tokens=use.completion,
            cache_read_tokens=use.cache_read,
            cache_write_tokens=use.cache_write + use.cache_write_1h,
            reasoning_tokens=use.reasoning,
            breakdown=breakdown,
            latency_ms=round((time.monotonic() - x.started) * 1000),
            estimated=estimated and bill,
            from_lease=from_lease,
            beyond=beyond,
            budgets=budgets,
        )
    )
