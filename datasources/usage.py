"""Usage as an account sees it: filters, request logs, totals and groupings (its money: `billing`).

A filter (`UsageFilter`) is what a caller asked; `resolve` turns it into a `Scope` for one account
(the model reference and the key checked once), and every query below takes that scope. Each
aggregation is one GROUP BY statement, so an answer costs a fixed number of statements whatever the
volume. Money is summed in SQL at the column's own type (`Money`): exact on both backends (integer
1e-10 USD on SQLite, NUMERIC on PostgreSQL) and read back as Decimal.

Time windows are half-open: `start <= created_at < end`. A request counts as successful when its
status is 2xx or 3xx; anything else (4xx, 5xx, 0 for a dropped stream) is a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from datasources import paging
from datasources.db.models import ApiKey, Money, UsageRecord
from datasources.errors import BadInput, NotFound
from datasources.money import price
from datasources.prices import find_model_ref
from datasources.pricing import COST_PARTS, NO_COST, Cost

T = TypeVar("T")

PERIODS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
USAGE_ID = "usage_"


# ---- filters ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageFilter:
    """What a caller asked for; every field optional. `period` and `start` exclude each other."""

    period: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    model: str | None = None  # a canonical slug, a known spelling, or `provider/model`
    key_id: str | None = None
    endpoint: str | None = None


@dataclass(frozen=True)
class Scope:
    """A filter resolved for one account: plain values, nothing more to look up."""

    account_id: int
    start: datetime | None
    end: datetime | None
    period: str | None = None
    models: tuple[tuple[str, str | None], ...] = ()  # (model slug, provider slug or None: any provider)
    key_id: str | None = None
    endpoints: tuple[str, ...] = ()

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [UsageRecord.account_id == self.account_id]
        if self.start is not None:
            where.append(UsageRecord.created_at >= self.start)
        if self.end is not None:
            where.append(UsageRecord.created_at < self.end)
        if self.models:
            where.append(
                or_(
                    *(
                        UsageRecord.model_slug == slug
                        if provider is None
                        else and_(UsageRecord.model_slug == slug, UsageRecord.provider_slug == provider)
                        for slug, provider in self.models
                    )
                )
            )
        if self.key_id is not None:
            where.append(UsageRecord.api_key_id == self.key_id)
        if self.endpoints:
            where.append(UsageRecord.endpoint.in_(self.endpoints))
        return where


def window(flt: UsageFilter, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """The half-open window a filter names: a period ends at `end` (default now); none at all is all time."""
    start, end = flt.start, flt.end
    if flt.period is not None:
        length = PERIODS.get(flt.period.strip().lower())
        if length is None:
            raise BadInput(f"must be one of {', '.join(PERIODS)}, got {flt.period!r}", field="period")
        if start is not None:
            raise BadInput("give a period or a start time, not both", field="start_time")
        end = end or now or datetime.now(UTC)
        start = end - length
    if start is not None and end is not None and end <= start:
        raise BadInput("must be after the start time", field="end_time")
    return start, end


async def resolve(
    session: AsyncSession,
    account_id: int,
    flt: UsageFilter,
    now: datetime | None = None,
) -> Scope:
    """Check a filter and resolve it for one account; raises BadInput naming the field."""
    start, end = window(flt, now)
    period = flt.period.strip().lower() if flt.period is not None else None
    models: tuple[tuple[str, str | None], ...] = ()
    if flt.model is not None:
        models = await _model_matches(session, flt.model.strip())
        if not models:
            raise BadInput("must not be empty", field="model")
    key_id = flt.key_id.strip() if flt.key_id is not None else None
    if key_id is not None:
        owner = (await session.execute(select(ApiKey.account_id).where(ApiKey.id == key_id))).scalar_one_or_none()
        if owner != account_id:
            raise BadInput(f"no API key {key_id!r} on this account", field="key_id")
    endpoints: tuple[str, ...] = ()
    if flt.endpoint is not None:
        endpoints = _endpoint_spellings(flt.endpoint)
    return Scope(account_id, start, end, period, models, key_id, endpoints)


async def _model_matches(session: AsyncSession, text: str) -> tuple[tuple[str, str | None], ...]:
    """Usage of a model reference: the canonical model (at one provider for `provider/model`), and
    records that carry the text itself as their model (a model the catalog no longer knows)."""
    if not text:
        return ()
    matches: list[tuple[str, str | None]] = []
    try:
        model, provider = await find_model_ref(session, text)
        matches.append((model.slug, provider.slug if provider is not None else None))
    except NotFound:
        head, sep, tail = text.partition("/")
        if sep and tail:
            matches.append((tail.lower(), head.lower()))
    for literal in dict.fromkeys((text, text.lower())):
        if (literal, None) not in matches:
            matches.append((literal, None))
    return tuple(matches)


def _endpoint_spellings(raw: str) -> tuple[str, ...]:
    """`/v1/chat/completions`, `/chat/completions` and `chat/completions` name the same endpoint."""
    path = "/" + raw.strip().strip("/")
    if path == "/":
        raise BadInput("must be a path such as /v1/chat/completions", field="endpoint")
    bare = path[3:] if path.startswith("/v1/") else path
    return tuple(dict.fromkeys((path, bare, "/v1" + bare)))


# ---- answers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    requests: int
    successful: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    cached_tokens: int = 0  # prompt tokens read from the provider's cache (part of input_tokens)
    cache_write_tokens: int = 0  # prompt tokens written to it (part of input_tokens)
    reasoning_tokens: int = 0  # part of output_tokens
    breakdown: Cost = NO_COST  # the cost by part (records from before the split count under none)

    @property
    def failed(self) -> int:
        return self.requests - self.successful

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Group:
    """Totals of one value of a grouping: a model, an endpoint, a key (id None: no key) or a UTC day."""

    key: Any
    totals: Totals


@dataclass(frozen=True)
class KeyGroup(Group):
    name: str | None = None
    prefix: str | None = None
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Summary:
    totals: Totals
    by_model: list[Group]
    by_endpoint: list[Group]


ZERO = Totals(0, 0, 0, 0, Decimal(0))
SUCCESS = range(200, 400)  # the statuses that count as a successful request


def succeeded(status: int) -> bool:
    return status in SUCCESS


def _totals_columns() -> list[ColumnElement[Any]]:
    ok = case((and_(UsageRecord.status >= SUCCESS.start, UsageRecord.status < SUCCESS.stop), 1), else_=0)
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(ok), 0).label("successful"),
        func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("output_tokens"),
        func.coalesce(func.sum(UsageRecord.cache_read_tokens), 0).label("cached_tokens"),
        func.coalesce(func.sum(UsageRecord.cache_write_tokens), 0).label("cache_write_tokens"),
        func.coalesce(func.sum(UsageRecord.reasoning_tokens), 0).label("reasoning_tokens"),
        # Summed at the column's type: integer 1e-10 USD on SQLite, NUMERIC on PostgreSQL; Decimal back.
        type_coerce(func.coalesce(func.sum(UsageRecord.cost), 0), Money).label("total_cost"),
        *(
            type_coerce(func.coalesce(func.sum(getattr(UsageRecord, f"cost_{part}")), 0), Money).label(f"cost_{part}")
            for part in COST_PARTS
        ),
    ]


def _totals(row: Any) -> Totals:
    return Totals(
        int(row.requests),
        int(row.successful),
        int(row.input_tokens),
        int(row.output_tokens),
        price(row.total_cost),
        int(row.cached_tokens),
        int(row.cache_write_tokens),
        int(row.reasoning_tokens),
        Cost(**{part: price(getattr(row, f"cost_{part}")) for part in COST_PARTS}),
    )


async def totals(session: AsyncSession, scope: Scope) -> Totals:
    row = (await session.execute(select(*_totals_columns()).where(*scope.conditions()))).one()
    return _totals(row)


async def _grouped(
    session: AsyncSession, scope: Scope, column: ColumnElement[Any] | InstrumentedAttribute[Any], limit: int | None
) -> paging.Page[Group]:
    """One GROUP BY: the most expensive first (then the most requests, then by name)."""
    key = column.label("key")
    statement = (
        select(key, *_totals_columns())
        .where(*scope.conditions())
        .group_by(column)
        .order_by(literal_column("total_cost").desc(), literal_column("requests").desc(), column)
    )
    if limit is not None:
        statement = statement.limit(limit + 1)
    rows = (await session.execute(statement)).all()
    groups = [Group(row.key, _totals(row)) for row in rows]
    return paging.page(groups, limit) if limit is not None else paging.Page(groups, False)


async def by_model(session: AsyncSession, scope: Scope, limit: int | None = None) -> paging.Page[Group]:
    return await _grouped(session, scope, UsageRecord.model_slug, limit)


async def by_endpoint(session: AsyncSession, scope: Scope, limit: int | None = None) -> paging.Page[Group]:
    return await _grouped(session, scope, UsageRecord.endpoint, limit)


async def by_key(session: AsyncSession, scope: Scope, limit: int | None = None) -> paging.Page[KeyGroup]:
    """Usage per API key, with the key's name and display prefix (one statement: grouped, then joined)."""
    grouped = (
        select(UsageRecord.api_key_id.label("key"), *_totals_columns())
        .where(*scope.conditions())
        .group_by(UsageRecord.api_key_id)
        .subquery()
    )
    statement = (
        select(grouped, ApiKey.name, ApiKey.prefix, ApiKey.revoked_at)
        .outerjoin(ApiKey, ApiKey.id == grouped.c.key)
        .order_by(grouped.c.total_cost.desc(), grouped.c.requests.desc(), grouped.c.key)
    )
    if limit is not None:
        statement = statement.limit(limit + 1)
    rows = (await session.execute(statement)).all()
    groups = [KeyGroup(row.key, _totals(row), row.name, row.prefix, row.revoked_at) for row in rows]
    return paging.page(groups, limit) if limit is not None else paging.Page(groups, False)


def _utc_day(dialect: str) -> ColumnElement[str]:
    """The UTC date of a usage record as `YYYY-MM-DD` text (constants inline, so GROUP BY matches SELECT)."""
    if dialect == "postgresql":
        return func.to_char(
            func.timezone(literal_column("'UTC'"), UsageRecord.created_at), literal_column("'YYYY-MM-DD'")
        )
    return func.date(UsageRecord.created_at)  # SQLite keeps naive UTC text


async def by_day(session: AsyncSession, scope: Scope, limit: int | None = None) -> paging.Page[Group]:
    """Usage per UTC day with any usage, oldest first; a limit keeps the most recent days."""
    day = _utc_day(session.get_bind().dialect.name)
    statement = (
        select(day.label("key"), *_totals_columns()).where(*scope.conditions()).group_by(day).order_by(day.desc())
    )
    if limit is not None:
        statement = statement.limit(limit + 1)
    rows = (await session.execute(statement)).all()
    groups = [Group(date.fromisoformat(row.key), _totals(row)) for row in rows]
    page = paging.page(groups, limit) if limit is not None else paging.Page(groups, False)
    return paging.Page(page.items[::-1], page.has_more)


async def summary(session: AsyncSession, scope: Scope) -> Summary:
    """Totals, per model and per endpoint: three statements."""
    return Summary(
        await totals(session, scope),
        (await by_model(session, scope)).items,
        (await by_endpoint(session, scope)).items,
    )


async def logs(
    session: AsyncSession, scope: Scope, limit: int = DEFAULT_LIMIT, after: int | None = None
) -> paging.Page[UsageRecord]:
    """Request logs, newest first; `after` is the id of the last record of the previous page."""
    statement = select(UsageRecord).where(*scope.conditions())
    if after is not None:
        cursor = await paging.cursor(session, UsageRecord, scope.account_id, after, USAGE_ID)
        statement = statement.where(paging.before(UsageRecord, cursor))
    statement = statement.order_by(UsageRecord.created_at.desc(), UsageRecord.id.desc()).limit(limit + 1)
    return paging.page((await session.execute(statement)).scalars().all(), limit)
