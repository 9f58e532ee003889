"""The gateway's account API (`/v1/...`): the caller's account, balance, usage and billing history.

Every endpoint needs an API key (any plan) and counts as one request. Answers follow the gateway
document's `usage.summary` and billing `list` shapes; the others are in the same style: an `object`
field, `"currency": "usd"`, money as JSON numbers written from exact decimals, times as Unix seconds.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from starlette.routing import BaseRoute, Route

from datasources import billing, paging, usage
from datasources.db.models import Account, ApiKey, BalanceTransaction, UsageRecord
from datasources.errors import BadInput
from datasources.pricing import COST_PARTS
from routing.rest.endpoint import Call, endpoint
from routing.rest.times import parse_time

CURRENCY = "usd"
TIME_PARAMETERS = {"start": ("start_time", "start", "after"), "end": ("end_time", "end", "before")}


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


# ---- parameters ------------------------------------------------------------------------------------


def _time(call: Call, which: str) -> datetime | None:
    given = [(name, raw) for name in TIME_PARAMETERS[which] if (raw := call.text(name)) is not None]
    if len(given) > 1:
        names = ", ".join(name for name, _ in given)
        raise BadInput(f"invalid parameter {given[1][0]}: give only one of {names}")
    return parse_time(given[0][1], given[0][0]) if given else None


def _filter(call: Call) -> usage.UsageFilter:
    return usage.UsageFilter(
        period=call.text("period"),
        start=_time(call, "start"),
        end=_time(call, "end"),
        model=call.text("model"),
        key_id=call.text("key_id"),
        endpoint=call.text("endpoint"),
    )


def _limit(call: Call) -> int:
    return call.integer("limit", usage.DEFAULT_LIMIT, 1, usage.MAX_LIMIT)


async def _scope(call: Call) -> usage.Scope:
    """The caller's account (401 without a key) and its checked filters (400 naming the parameter)."""
    account_id = call.principal.require_account()
    flt = _filter(call)
    async with call.sessionmaker() as session:
        return await usage.resolve(session, account_id, flt)


# ---- shapes ----------------------------------------------------------------------------------------


def window_fields(scope: usage.Scope) -> dict[str, Any]:
    return {"period": scope.period, "start_time": unix(scope.start), "end_time": unix(scope.end)}


def totals_fields(totals: usage.Totals) -> dict[str, Any]:
    return {
        "total_requests": totals.requests,
        "successful_requests": totals.successful,
        "failed_requests": totals.failed,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "total_tokens": totals.total_tokens,
        "cached_tokens": totals.cached_tokens,
        "cache_write_tokens": totals.cache_write_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "total_cost": totals.cost,
        "cost_breakdown": totals.breakdown.parts(),
    }


def model_entry(group: usage.Group) -> dict[str, Any]:
    return {"object": "usage.model", "model": group.key, **totals_fields(group.totals)}


def endpoint_entry(group: usage.Group) -> dict[str, Any]:
    return {"object": "usage.endpoint", "endpoint": group.key, **totals_fields(group.totals)}


def key_entry(group: usage.KeyGroup) -> dict[str, Any]:
    return {
        "object": "usage.key",
        "key_id": group.key,
        "name": group.name,
        "prefix": group.prefix,
        "revoked": group.revoked_at is not None,
        **totals_fields(group.totals),
    }


def day_entry(group: usage.Group) -> dict[str, Any]:
    day: date = group.key
    start = datetime.combine(day, time(), UTC)
    return {
        "object": "usage.cost",
        "date": day.isoformat(),
        "start_time": int(start.timestamp()),
        "end_time": int(start.timestamp()) + 86_400,
        **totals_fields(group.totals),
    }


def summary_object(scope: usage.Scope, summary: usage.Summary) -> dict[str, Any]:
    return {
        "object": "usage.summary",
        **totals_fields(summary.totals),
        "currency": CURRENCY,
        "by_model": [model_entry(g) for g in summary.by_model],
        "by_endpoint": [endpoint_entry(g) for g in summary.by_endpoint],
        **window_fields(scope),
    }


def log_entry(record: UsageRecord) -> dict[str, Any]:
    return {
        "object": "usage.log",
        "id": f"{usage.USAGE_ID}{record.id}",
        "request_id": record.request_id,
        "created": unix(record.created_at),
        "model": record.model_slug,
        "provider": record.provider_slug,
        "variant": record.variant,
        "endpoint": record.endpoint,
        "key_id": record.api_key_id,
        "key_source": record.key_source,
        "status": record.status,
        "success": usage.succeeded(record.status),
        "input_tokens": record.prompt_tokens,
        "output_tokens": record.completion_tokens,
        "total_tokens": record.prompt_tokens + record.completion_tokens,
        "cached_tokens": record.cache_read_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "estimated": record.estimated,
        "cost": record.cost,
        "cost_breakdown": {part: getattr(record, f"cost_{part}") for part in COST_PARTS},
        "currency": CURRENCY,
        "latency_ms": record.latency_ms,
    }


def logs_list(page: paging.Page[UsageRecord]) -> dict[str, Any]:
    return {"object": "list", "data": [log_entry(r) for r in page.items], "has_more": page.has_more}


def grouped_list(scope: usage.Scope, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "currency": CURRENCY, **window_fields(scope)}


def transaction_entry(item: billing.Transaction) -> dict[str, Any]:
    row: BalanceTransaction = item.row
    metadata: dict[str, Any] = {}
    if row.usage_record_id is not None:
        metadata["usage_id"] = f"{usage.USAGE_ID}{row.usage_record_id}"
    if item.request_id is not None:
        metadata["request_id"] = item.request_id
    return {
        "object": "balance_transaction",
        "id": f"{billing.TRANSACTION_ID}{row.id}",
        "created": unix(row.created_at),
        "type": row.type,
        "amount": row.amount,
        "currency": CURRENCY,
        "balance_after": row.balance_after,
        "description": row.description,
        "metadata": metadata,
    }


def balance_object(balance: billing.Balance) -> dict[str, Any]:
    return {
        "object": "balance",
        "balance": balance.balance,
        "held": balance.held,
        "available": balance.available,
        "currency": CURRENCY,
    }


# ---- endpoints -------------------------------------------------------------------------------------


@endpoint
async def me(call: Call) -> dict[str, Any]:
    account_id = call.principal.require_account()
    await call.admit(None)
    await call.caught_up()
    async with call.sessionmaker() as session:
        account = await session.get(Account, account_id)
        key = await session.get(ApiKey, call.principal.key_id) if call.principal.key_id else None
    assert account is not None
    admission = call.admission
    assert admission is not None
    return {
        "object": "me",
        "account": {
            "object": "account",
            "id": str(account.id),
            "name": account.name,
            "plan": account.plan.value,
            "created": unix(account.created_at),
        },
        "api_key": None
        if key is None
        else {
            "object": "api_key",
            "id": key.id,
            "name": key.name,
            "prefix": key.prefix,
            "created": unix(key.created_at),
            "last_used": unix(key.last_used_at),
        },
        "customer": {
            "object": "customer",
            "id": str(account.id),
            "name": account.name,
            "plan": account.plan.value,
            "balance": account.balance,
            "held": account.held,
            "available": account.balance - account.held,
            "currency": CURRENCY,
        },
        "quota": {"limit": admission.limit, "remaining": admission.remaining, "reset": admission.reset_at},
    }


@endpoint
async def get_balance(call: Call) -> dict[str, Any]:
    account_id = call.principal.require_account()
    await call.admit(None)
    await call.caught_up()
    async with call.sessionmaker() as session:
        return balance_object(await billing.balance(session, account_id))


@endpoint
async def get_usage(call: Call) -> dict[str, Any]:
    """Request logs (newest first, `limit` of them) plus the summary over the same filters."""
    scope, limit = await _scope(call), _limit(call)
    after = _after(call, usage.USAGE_ID)
    await call.admit(None)
    await call.caught_up()
    async with call.sessionmaker() as session:
        summary = await usage.summary(session, scope)
        page = await usage.logs(session, scope, limit, after)
    return {
        "object": "usage",
        **window_fields(scope),
        "summary": summary_object(scope, summary),
        "logs": logs_list(page),
    }


@endpoint
async def usage_logs(call: Call) -> dict[str, Any]:
    scope, limit = await _scope(call), _limit(call)
    after = _after(call, usage.USAGE_ID)
    await call.admit(None)
    await call.caught_up()
    async with call.sessionmaker() as session:
        page = await usage.logs(session, scope, limit, after)
    return {**logs_list(page), **window_fields(scope)}


@endpoint
async def usage_summary(call: Call) -> dict[str, Any]:
    scope = await _scope(call)
    await call.admit(None)
    await call.caught_up()
    async with call.sessionmaker() as session:
        return summary_object(scope, await usage.summary(session, scope))


@endpoint
async def usage_costs(call: Call) -> dict[str, Any]:
    """Spend per UTC day with usage, oldest first; `limit` keeps the most recent days."""
    scope, limit = await _scope(call), _limit(call)
    await call.admit(None)
    await call.caught_up()
    async with call.sessionmaker() as session:
        page = await usage.by_day(session, scope, limit)
    return grouped_list(scope, [day_entry(g) for g in page.items], page.has_more)


def _grouped(query: Any, entry: Any, name: str) -> Any:
    """An endpoint listing usage totals per group (model, key, endpoint), most expensive first."""

    async def handler(call: Call) -> dict[str, Any]:
        scope, limit = await _scope(call), _limit(call)
        await call.admit(None)
        await call.caught_up()
        async with call.sessionmaker() as session:
            page = await query(session, scope, limit)
        return grouped_list(scope, [entry(g) for g in page.items], page.has_more)

    handler.__name__ = name
    return endpoint(handler)


usage_models = _grouped(usage.by_model, model_entry, "usage_models")
usage_keys = _grouped(usage.by_key, key_entry, "usage_keys")
usage_endpoints = _grouped(usage.by_endpoint, endpoint_entry, "usage_endpoints")


@endpoint
async def billing_history(call: Call) -> dict[str, Any]:
    """Ledger rows, newest first: `limit`, `starting_after=txn_...`, the time filters and `type`."""
    account_id = call.principal.require_account()
    start, end = usage.window(
        usage.UsageFilter(period=call.text("period"), start=_time(call, "start"), end=_time(call, "end"))
    )
    limit, after, kind = _limit(call), _after(call, billing.TRANSACTION_ID), call.text("type")
    await call.admit(None)
    await call.caught_up()
    async with call.sessionmaker() as session:
        page = await billing.billing_history(session, account_id, limit, after, start, end, kind)
    return {"object": "list", "data": [transaction_entry(t) for t in page.items], "has_more": page.has_more}


def _after(call: Call, prefix: str) -> int | None:
    raw = call.text("starting_after")
    return paging.parse_id(raw, prefix) if raw is not None else None


routes: list[BaseRoute] = [
    Route("/me", me),
    Route("/balance", get_balance),
    Route("/usage", get_usage),
    Route("/usage/logs", usage_logs),
    Route("/usage/summary", usage_summary),
    Route("/usage/costs", usage_costs),
    Route("/usage/models", usage_models),
    Route("/usage/keys", usage_keys),
    Route("/usage/endpoints", usage_endpoints),
    Route("/billing/history", billing_history),
]
