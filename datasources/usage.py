"""Usage and money as an account sees them: filters, request logs, totals and groupings, the ledger.

A filter (`UsageFilter`) is what a caller asked; `resolve` turns it into a `Scope` for one account
(the model reference and the key checked once), and every query below takes that scope. Each
aggregation is one GROUP BY statement, so an answer costs a fixed number of statements whatever the
volume. Money is summed in SQL at the column's own type (`Money`): exact on both backends (integer
1e-10 USD on SQLite, NUMERIC on PostgreSQL) and read back as Decimal.

Time windows are half-open: `start <= created_at < end`. A request counts as successful when its
status is 2xx or 3xx; anything else (4xx, 5xx, 0 for a dropped stream) is a failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from datasources import ledger
from datasources.db.models import Account, ApiKey, BalanceTransaction, Money, UsageRecord
from datasources.errors import BadInput, NotFound
from datasources.events import BalanceChanged, Broker
from datasources.money import parse_amount, price
from datasources.prices import find_model_ref

T = TypeVar("T")

PERIODS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_IDEMPOTENCY_KEY = 128
USAGE_ID = "usage_"
TRANSACTION_ID = "txn_"
_MS_THRESHOLD = 100_000_000_000  # a Unix time this large is milliseconds (as seconds it is the year 5138)
_DATE_FORMATS = ("%Y/%m/%d", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%d %b %Y", "%b %d %Y", "%B %d, %Y")
_NUMBER = re.compile(r"\d+(\.\d+)?")


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


# Parameter names for error messages; GraphQL passes its own spelling.
REST_NAMES = {"period": "period", "start": "start_time", "end": "end_time", "model": "model",
              "key_id": "key_id", "endpoint": "endpoint"}


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
            where.append(or_(*(
                UsageRecord.model_slug == slug if provider is None
                else and_(UsageRecord.model_slug == slug, UsageRecord.provider_slug == provider)
                for slug, provider in self.models
            )))
        if self.key_id is not None:
            where.append(UsageRecord.api_key_id == self.key_id)
        if self.endpoints:
            where.append(UsageRecord.endpoint.in_(self.endpoints))
        return where


def parse_time(raw: str, name: str) -> datetime:
    """Unix seconds, Unix milliseconds, or a date string (ISO 8601, RFC 2822, 2024/07/02...); naive is UTC."""
    text = raw.strip()
    if _NUMBER.fullmatch(text):
        seconds = Decimal(text)
        if seconds >= _MS_THRESHOLD:
            seconds /= 1000
        try:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=float(seconds))
        except OverflowError:
            raise BadInput(f"invalid parameter {name}: {raw!r} is out of range") from None
    moment = _parse_date(text)
    if moment is None:
        raise BadInput(
            f"invalid parameter {name}: {raw!r} is not Unix seconds, Unix milliseconds or a date "
            "(e.g. 1719878400, 1719878400000, 2024-07-02 or 2024-07-02T00:00:00Z)"
        )
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _parse_date(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def window(
    flt: UsageFilter, now: datetime | None = None, names: Mapping[str, str] = REST_NAMES
) -> tuple[datetime | None, datetime | None]:
    """The half-open window a filter names: a period ends at `end` (default now); none at all is all time."""
    start, end = flt.start, flt.end
    if flt.period is not None:
        length = PERIODS.get(flt.period.strip().lower())
        if length is None:
            raise BadInput(f"invalid parameter {names['period']}: must be one of {', '.join(PERIODS)}, "
                           f"got {flt.period!r}")
        if start is not None:
            raise BadInput(f"invalid parameter {names['start']}: give {names['period']} or "
                           f"{names['start']}, not both")
        end = end or now or datetime.now(UTC)
        start = end - length
    if start is not None and end is not None and end <= start:
        raise BadInput(f"invalid parameter {names['end']}: must be after {names['start']}")
    return start, end


async def resolve(
    session: AsyncSession,
    account_id: int,
    flt: UsageFilter,
    now: datetime | None = None,
    names: Mapping[str, str] = REST_NAMES,
) -> Scope:
    """Check a filter and resolve it for one account; raises BadInput naming the parameter."""
    start, end = window(flt, now, names)
    period = flt.period.strip().lower() if flt.period is not None else None
    models: tuple[tuple[str, str | None], ...] = ()
    if flt.model is not None:
        models = await _model_matches(session, flt.model.strip())
        if not models:
            raise BadInput(f"invalid parameter {names['model']}: must not be empty")
    key_id = flt.key_id.strip() if flt.key_id is not None else None
    if key_id is not None:
        owner = (await session.execute(select(ApiKey.account_id).where(ApiKey.id == key_id))).scalar_one_or_none()
        if owner != account_id:
            raise BadInput(f"invalid parameter {names['key_id']}: no API key {key_id!r} on this account")
    endpoints: tuple[str, ...] = ()
    if flt.endpoint is not None:
        endpoints = _endpoint_spellings(flt.endpoint, names["endpoint"])
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


def _endpoint_spellings(raw: str, name: str) -> tuple[str, ...]:
    """`/v1/chat/completions`, `/chat/completions` and `chat/completions` name the same endpoint."""
    path = "/" + raw.strip().strip("/")
    if path == "/":
        raise BadInput(f"invalid parameter {name}: must be a path such as /v1/chat/completions")
    bare = path[3:] if path.startswith("/v1/") else path
    return tuple(dict.fromkeys((path, bare, "/v1" + bare)))


def parse_id(raw: str, prefix: str, name: str) -> int:
    """`usage_12` / `txn_12` (or the bare number) as the row id."""
    text = raw.strip()
    number = text[len(prefix):] if text.startswith(prefix) else text
    if not number.isdigit():
        raise BadInput(f"invalid parameter {name}: {raw!r} is not a {prefix}... id")
    return int(number)


# ---- answers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    requests: int
    successful: int
    input_tokens: int
    output_tokens: int
    cost: Decimal

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
class Page(Generic[T]):
    items: list[T]
    has_more: bool


@dataclass(frozen=True)
class Summary:
    totals: Totals
    by_model: list[Group]
    by_endpoint: list[Group]


@dataclass(frozen=True)
class Balance:
    balance: Decimal
    held: Decimal

    @property
    def available(self) -> Decimal:
        return self.balance - self.held


@dataclass(frozen=True)
class Transaction:
    row: BalanceTransaction
    request_id: str | None


@dataclass(frozen=True)
class Credited:
    transaction: BalanceTransaction
    balance: Balance
    replayed: bool  # the idempotency key had credited before: nothing moved this time


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
        # Summed at the column's type: integer 1e-10 USD on SQLite, NUMERIC on PostgreSQL; Decimal back.
        type_coerce(func.coalesce(func.sum(UsageRecord.cost), 0), Money).label("total_cost"),
    ]


def _totals(row: Any) -> Totals:
    return Totals(int(row.requests), int(row.successful), int(row.input_tokens), int(row.output_tokens),
                  price(row.total_cost))


def _page(rows: Sequence[T], limit: int) -> Page[T]:
    return Page(list(rows[:limit]), len(rows) > limit)


async def totals(session: AsyncSession, scope: Scope) -> Totals:
    row = (await session.execute(select(*_totals_columns()).where(*scope.conditions()))).one()
    return _totals(row)


async def _grouped(
    session: AsyncSession, scope: Scope, column: ColumnElement[Any] | InstrumentedAttribute[Any], limit: int | None
) -> Page[Group]:
    """One GROUP BY: the most expensive first (then the most requests, then by name)."""
    key = column.label("key")
    statement = (
        select(key, *_totals_columns()).where(*scope.conditions()).group_by(column)
        .order_by(literal_column("total_cost").desc(), literal_column("requests").desc(), column)
    )
    if limit is not None:
        statement = statement.limit(limit + 1)
    rows = (await session.execute(statement)).all()
    groups = [Group(row.key, _totals(row)) for row in rows]
    return _page(groups, limit) if limit is not None else Page(groups, False)


async def by_model(session: AsyncSession, scope: Scope, limit: int | None = None) -> Page[Group]:
    return await _grouped(session, scope, UsageRecord.model_slug, limit)


async def by_endpoint(session: AsyncSession, scope: Scope, limit: int | None = None) -> Page[Group]:
    return await _grouped(session, scope, UsageRecord.endpoint, limit)


async def by_key(session: AsyncSession, scope: Scope, limit: int | None = None) -> Page[KeyGroup]:
    """Usage per API key, with the key's name and display prefix (one statement: grouped, then joined)."""
    grouped = (
        select(UsageRecord.api_key_id.label("key"), *_totals_columns())
        .where(*scope.conditions()).group_by(UsageRecord.api_key_id).subquery()
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
    return _page(groups, limit) if limit is not None else Page(groups, False)


def _utc_day(dialect: str) -> ColumnElement[str]:
    """The UTC date of a usage record as `YYYY-MM-DD` text (constants inline, so GROUP BY matches SELECT)."""
    if dialect == "postgresql":
        return func.to_char(func.timezone(literal_column("'UTC'"), UsageRecord.created_at),
                            literal_column("'YYYY-MM-DD'"))
    return func.date(UsageRecord.created_at)  # SQLite keeps naive UTC text


async def by_day(session: AsyncSession, scope: Scope, limit: int | None = None) -> Page[Group]:
    """Usage per UTC day with any usage, oldest first; a limit keeps the most recent days."""
    day = _utc_day(session.get_bind().dialect.name)
    statement = (
        select(day.label("key"), *_totals_columns()).where(*scope.conditions())
        .group_by(day).order_by(day.desc())
    )
    if limit is not None:
        statement = statement.limit(limit + 1)
    rows = (await session.execute(statement)).all()
    groups = [Group(date.fromisoformat(row.key), _totals(row)) for row in rows]
    page = _page(groups, limit) if limit is not None else Page(groups, False)
    return Page(page.items[::-1], page.has_more)


async def summary(session: AsyncSession, scope: Scope) -> Summary:
    """Totals, per model and per endpoint: three statements."""
    return Summary(
        await totals(session, scope),
        (await by_model(session, scope)).items,
        (await by_endpoint(session, scope)).items,
    )


async def logs(
    session: AsyncSession, scope: Scope, limit: int = DEFAULT_LIMIT, after: int | None = None,
    after_name: str = "starting_after",
) -> Page[UsageRecord]:
    """Request logs, newest first; `after` is the id of the last record of the previous page."""
    statement = select(UsageRecord).where(*scope.conditions())
    if after is not None:
        cursor = await _cursor(session, UsageRecord, scope.account_id, after, USAGE_ID, after_name)
        statement = statement.where(_before(UsageRecord, cursor))
    statement = statement.order_by(UsageRecord.created_at.desc(), UsageRecord.id.desc()).limit(limit + 1)
    return _page((await session.execute(statement)).scalars().all(), limit)


async def _cursor(
    session: AsyncSession, table: type[UsageRecord] | type[BalanceTransaction], account_id: int, row_id: int,
    prefix: str, name: str,
) -> tuple[datetime, int]:
    found = (await session.execute(
        select(table.created_at).where(table.id == row_id, table.account_id == account_id)
    )).scalar_one_or_none()
    if found is None:
        raise BadInput(f"invalid parameter {name}: no {prefix}{row_id} on this account")
    return found, row_id


def _before(table: type[UsageRecord] | type[BalanceTransaction], cursor: tuple[datetime, int]) -> ColumnElement[bool]:
    created, row_id = cursor
    return or_(table.created_at < created, and_(table.created_at == created, table.id < row_id))


# ---- money -----------------------------------------------------------------------------------------


async def balance(session: AsyncSession, account_id: int) -> Balance:
    row = (await session.execute(
        select(Account.balance, Account.held).where(Account.id == account_id)
    )).one_or_none()
    if row is None:
        raise NotFound(f"account {account_id} not found")
    return Balance(row.balance, row.held)


async def billing_history(
    session: AsyncSession,
    account_id: int,
    limit: int = DEFAULT_LIMIT,
    after: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = None,
    after_name: str = "starting_after",
) -> Page[Transaction]:
    """Ledger rows, newest first, each with the request id of the usage it paid for (one join)."""
    statement = (
        select(BalanceTransaction, UsageRecord.request_id)
        .outerjoin(UsageRecord, UsageRecord.id == BalanceTransaction.usage_record_id)
        .where(BalanceTransaction.account_id == account_id)
    )
    if start is not None:
        statement = statement.where(BalanceTransaction.created_at >= start)
    if end is not None:
        statement = statement.where(BalanceTransaction.created_at < end)
    if kind is not None:
        statement = statement.where(BalanceTransaction.type == kind)
    if after is not None:
        cursor = await _cursor(session, BalanceTransaction, account_id, after, TRANSACTION_ID, after_name)
        statement = statement.where(_before(BalanceTransaction, cursor))
    statement = statement.order_by(BalanceTransaction.created_at.desc(), BalanceTransaction.id.desc()).limit(limit + 1)
    rows = (await session.execute(statement)).all()
    return _page([Transaction(row[0], row[1]) for row in rows], limit)


async def credit(
    session: AsyncSession,
    account_id: int,
    amount: Decimal,
    idempotency_key: str,
    description: str = "",
    broker: Broker | None = None,
) -> Credited:
    """An operator's credit, once per idempotency key, announced as `BalanceChanged` in its transaction.

    The same key again moves nothing and announces nothing (a different amount under a used key is an
    error). Two concurrent first uses of one key still credit once (the ledger's unique key); in that
    race both may announce the same transaction id, which listeners can de-duplicate on.
    """
    amount = parse_amount(amount)
    key = idempotency_key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise BadInput(f"invalid idempotency key: give 1 to {MAX_IDEMPOTENCY_KEY} characters")
    if len(description) > 256:
        raise BadInput("invalid description: at most 256 characters")
    earlier = await _credit_row(session, account_id, key)
    if earlier is None:
        await ledger.credit(session, account_id, amount, description, idempotency_key=key)
        row = await _credit_row(session, account_id, key)
        assert row is not None
        if broker is not None:
            await broker.publish(session, [BalanceChanged(
                account_id, row.id, row.type, row.amount, row.balance_after, row.created_at,
            )])
    else:
        if earlier.amount != amount:
            raise BadInput(f"idempotency key {key!r} already credited {earlier.amount} USD "
                           f"({TRANSACTION_ID}{earlier.id}); a credit of {amount} needs a new key")
        row = earlier
    return Credited(row, await balance(session, account_id), replayed=earlier is not None)


async def _credit_row(session: AsyncSession, account_id: int, key: str) -> BalanceTransaction | None:
    return (await session.execute(
        select(BalanceTransaction)
        .where(BalanceTransaction.account_id == account_id, BalanceTransaction.idempotency_key == key)
        .execution_options(populate_existing=True)
    )).scalar_one_or_none()
