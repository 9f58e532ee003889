"""OHLC candles of an offer's price, per UTC day or hour, derived from its price ticks: of the blended
price (input + output) / 2 by default, or of one dimension (input, output, cache read: a tick without a
cache-read price reads at its input price, as it is billed).

open is the price in force when the interval starts (the previous close), so change_pct compares
close with open. Intervals without a tick carry the last close forward; there is no candle before
an offer's first tick.

`candles_for_offers` reads the hourly and daily rollups (datasources/rollups.py, table candle_rollups);
`candles_from_ticks` aggregates the raw ticks in SQL and gives the same candles, slower: it is the
reference the rollups are tested against, and what stitches the interval holding `now` when the rollup
of that interval already counts ticks observed after `now`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, func, literal, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from datasources.db.models import CandleRollup, Money, Offer, PriceTick, UTCDateTime
from datasources.errors import BadInput
from datasources.money import blended, percent_change, price
from datasources.plans import MAX_HISTORY_DAYS

UNCHANGED = percent_change(Decimal(1), Decimal(1))  # what percent_change(p, p) gives for any price p


class Interval(enum.StrEnum):
    DAY = "1d"
    HOUR = "1h"

    @property
    def step(self) -> timedelta:
        return timedelta(days=1) if self is Interval.DAY else timedelta(hours=1)

    def floor(self, moment: datetime) -> datetime:
        """The start of the interval holding `moment`, in UTC."""
        if moment.tzinfo is None:
            raise ValueError(f"naive datetime {moment!r}: pass an aware UTC datetime")
        moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return moment.replace(hour=0) if self is Interval.DAY else moment


class Dimension(enum.StrEnum):
    BLENDED = "blended"
    INPUT = "input"
    OUTPUT = "output"
    CACHE_READ = "cache_read"

    def measure(self, tick: Any) -> ColumnElement[Decimal]:
        """What a tick row is measured by, in SQL (blended: the sum, halved by `reading`)."""
        if self is Dimension.INPUT:
            return tick.input_per_1m  # type: ignore[no-any-return]
        if self is Dimension.OUTPUT:
            return tick.output_per_1m  # type: ignore[no-any-return]
        if self is Dimension.CACHE_READ:
            return func.coalesce(tick.cache_read_per_1m, tick.input_per_1m)
        return tick.input_per_1m + tick.output_per_1m  # type: ignore[no-any-return]

    def reading(self, measured: Decimal) -> Decimal:
        return blended(measured, Decimal(0)) if self is Dimension.BLENDED else price(measured)


@dataclass(frozen=True)
class Candle:
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    change_pct: Decimal
    ticks: int


def window(days: int, interval: Interval, now: datetime) -> tuple[datetime, datetime]:
    """[start, end): end closes the interval holding `now`; start is `days` days before end."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_HISTORY_DAYS:
        raise BadInput(f"days must be an integer from 1 to {MAX_HISTORY_DAYS}, got {days!r}")
    end = interval.floor(now) + interval.step
    return end - timedelta(days=days), end


def build_candles(
    prior: Decimal | None,
    ticks: Sequence[tuple[datetime, Decimal]],
    start: datetime,
    end: datetime,
    interval: Interval,
) -> list[Candle]:
    """Candles over [start, end) in one pass; `ticks` sorted by time and inside [start, end),
    `prior` the price of the last tick before `start` (None when there is none)."""
    if ticks and not (start <= ticks[0][0] and ticks[-1][0] < end):
        raise ValueError(f"ticks must lie inside [{start}, {end})")
    step = interval.step
    count = -((start - end) // step)  # intervals in the window, a partial last one included
    last = prior
    first = 0
    if last is None:
        if not ticks:
            return []
        first, last = (ticks[0][0] - start) // step, ticks[0][1]

    candles: list[Candle] = []
    i, n = 0, len(ticks)
    for k in range(first, count):
        opened = start + k * step
        closes = opened + step
        open_ = high = low = last
        inside = 0
        while i < n and ticks[i][0] < closes:
            last = ticks[i][1]
            if last > high:
                high = last
            elif last < low:
                low = last
            inside += 1
            i += 1
        candles.append(Candle(opened, open_, high, low, last, percent_change(last, open_), inside))
    return candles


@dataclass(frozen=True)
class Bucket:
    """What the database reports for one interval that holds ticks: `k` counts intervals from the window's
    start; prices are sums input + output (blended = sum / 2); first and close by (observed_at, id)."""

    k: int
    ticks: int
    low: Decimal
    high: Decimal
    first: Decimal
    close: Decimal


def candles_from_buckets(
    prior: Decimal | None, buckets: Sequence[Bucket], start: datetime, end: datetime, interval: Interval
) -> list[Candle]:
    """The candles `build_candles` makes from the ticks summarized by `buckets` (sorted by k)."""
    step = interval.step
    count = -((start - end) // step)
    last = prior
    first = 0
    if last is None:
        if not buckets:
            return []
        first, last = buckets[0].k, buckets[0].first
    candles: list[Candle] = []
    i, n = 0, len(buckets)
    for k in range(first, count):
        open_ = last
        if i < n and buckets[i].k == k:
            b = buckets[i]
            i += 1
            last = b.close
            high, low = max(open_, b.high), min(open_, b.low)
            candles.append(Candle(start + k * step, open_, high, low, last, percent_change(last, open_), b.ticks))
        else:
            candles.append(Candle(start + k * step, open_, open_, open_, open_, UNCHANGED, 0))
    return candles


def _bucket_bounds(dialect: str, start: datetime, step: timedelta, count: int):  # type: ignore[no-untyped-def]
    """A recursive CTE of the window's intervals: (k, lo, hi) with lo <= observed_at < hi for interval k."""
    seconds = int(step.total_seconds())
    if dialect == "sqlite":
        # UTCDateTime stores naive UTC text ('YYYY-MM-DD HH:MM:SS.ffffff'); datetime() writes the same
        # prefix without the fraction, which sorts before any stored value of that second.
        base: Any = literal(start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))

        def at(offset: ColumnElement[Any]) -> ColumnElement[Any]:
            return func.datetime(base, literal("+").op("||")(cast(offset * seconds, String)).op("||")(" seconds"))
    else:
        base = cast(literal(start, UTCDateTime()), UTCDateTime())

        def at(offset: ColumnElement[Any]) -> ColumnElement[Any]:
            bound: ColumnElement[Any] = base + func.make_interval(0, 0, 0, 0, 0, 0, offset * seconds)
            return bound

    seed = select(literal(0).label("k"))
    ks = seed.cte("candle_k", recursive=True)
    ks = ks.union_all(select((ks.c.k + 1).label("k")).where(ks.c.k < count - 1))
    # MATERIALIZED: the bounds are computed once per interval, not once per tick compared against them
    return (
        select(ks.c.k, at(ks.c.k).label("lo"), at(ks.c.k + 1).label("hi"))
        .cte("candle_buckets")
        .prefix_with("MATERIALIZED")
    )


async def _tick_priors(
    session: AsyncSession, ids: Sequence[int], start: datetime, dimension: Dimension
) -> dict[int, Decimal]:
    """Each offer's price by the last tick before `start` (offers without one are left out)."""
    last_before = (
        select(PriceTick.id)
        .where(PriceTick.offer_id == Offer.id, PriceTick.observed_at < start)
        .order_by(PriceTick.observed_at.desc(), PriceTick.id.desc())
        .limit(1)
        .correlate(Offer)
        .scalar_subquery()
    )
    latest = select(last_before.label("tick_id")).select_from(Offer).where(Offer.id.in_(ids)).subquery()
    rows = await session.execute(
        select(PriceTick.offer_id, type_coerce(dimension.measure(PriceTick), Money)).join(
            latest, PriceTick.id == latest.c.tick_id
        )
    )
    return {offer_id: dimension.reading(measured) for offer_id, measured in rows}


async def _tick_buckets(
    session: AsyncSession,
    ids: Sequence[int],
    start: datetime,
    count: int,
    interval: Interval,
    now: datetime,
    dimension: Dimension,
) -> dict[int, list[Bucket]]:
    """Each offer's intervals holding ticks observed by `now`, of the `count` from `start`, aggregated
    from the raw ticks in one statement."""
    bounds = _bucket_bounds(session.get_bind().dialect.name, start, interval.step, count)
    tick = aliased(PriceTick, name="t")
    edge = aliased(PriceTick, name="e")
    total = dimension.measure(tick)
    inside = and_(
        edge.offer_id == tick.offer_id,
        edge.observed_at >= bounds.c.lo,
        edge.observed_at < bounds.c.hi,
        edge.observed_at <= now,
    )

    def edge_price(*order: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[Decimal]:
        return type_coerce(
            select(dimension.measure(edge)).where(inside).order_by(*order).limit(1).scalar_subquery(),
            Money,
        )

    rows = await session.execute(
        select(
            tick.offer_id,
            bounds.c.k,
            func.count(),
            type_coerce(func.min(total), Money),
            type_coerce(func.max(total), Money),
            edge_price(edge.observed_at, edge.id),
            edge_price(edge.observed_at.desc(), edge.id.desc()),
        )
        .select_from(bounds)
        .join(
            tick,
            and_(
                tick.offer_id.in_(ids),
                tick.observed_at >= bounds.c.lo,
                tick.observed_at < bounds.c.hi,
                tick.observed_at <= now,
            ),
        )
        .group_by(tick.offer_id, bounds.c.k, bounds.c.lo, bounds.c.hi)
        .order_by(tick.offer_id, bounds.c.k)
    )
    series: dict[int, list[Bucket]] = {offer_id: [] for offer_id in ids}
    value = dimension.reading
    for offer_id, k, n, low, high, first, close in rows:
        series[offer_id].append(Bucket(k, n, value(low), value(high), value(first), value(close)))
    return series


async def candles_from_ticks(
    session: AsyncSession,
    offer_ids: Sequence[int],
    days: int,
    interval: Interval,
    now: datetime | None = None,
    dimension: Dimension = Dimension.BLENDED,
) -> dict[int, list[Candle]]:
    """`candles_for_offers` computed from the raw ticks, without the rollups (in two SQL statements: the
    last tick before the window per offer, then one row per offer and interval that holds ticks). The
    reference for the rollups; not for serving (365 days of a minute-dense offer take about a second)."""
    now = now or datetime.now(UTC)
    start, end = window(days, interval, now)
    ids = sorted(set(offer_ids))
    if not ids:
        return {}
    priors = await _tick_priors(session, ids, start, dimension)
    count = -((start - end) // interval.step)
    series = await _tick_buckets(session, ids, start, count, interval, now, dimension)
    return {
        offer_id: candles_from_buckets(priors.get(offer_id), buckets, start, end, interval)
        for offer_id, buckets in series.items()
    }


async def candles_for_offers(
    session: AsyncSession,
    offer_ids: Sequence[int],
    days: int,
    interval: Interval,
    now: datetime | None = None,
    dimension: Dimension = Dimension.BLENDED,
) -> dict[int, list[Candle]]:
    """Candles for each offer (an offer without ticks gets []), from the rollups in two SQL statements
    whatever the count: the close of the last rollup before the window per offer, then the window's
    rollups. The view is as of `now`: ticks observed after it are left out, so when the rollup of the
    interval holding `now` has a later tick, that interval is aggregated from its raw ticks instead (a
    third statement, only then)."""
    now = now or datetime.now(UTC)
    start, end = window(days, interval, now)
    ids = sorted(set(offer_ids))
    if not ids:
        return {}
    rollup = aliased(CandleRollup, name="r")
    kind = and_(rollup.period == interval.value, rollup.dimension == dimension.value)

    last_close = (
        select(rollup.close)
        .where(rollup.offer_id == Offer.id, kind, rollup.bucket < start)
        .order_by(rollup.bucket.desc())
        .limit(1)
        .correlate(Offer)
        .scalar_subquery()
    )
    value = dimension.reading
    priors = {
        offer_id: value(close)
        for offer_id, close in await session.execute(
            select(Offer.id, type_coerce(last_close, Money)).where(Offer.id.in_(ids))
        )
        if close is not None
    }

    rows = await session.execute(
        select(
            rollup.offer_id,
            rollup.bucket,
            rollup.ticks,
            rollup.low,
            rollup.high,
            rollup.open,
            rollup.close,
            rollup.last_at,
        )
        .where(rollup.offer_id.in_(ids), kind, rollup.bucket >= start, rollup.bucket < end)
        .order_by(rollup.offer_id, rollup.bucket)
    )
    step = interval.step
    current = interval.floor(now)
    series: dict[int, list[Bucket]] = {offer_id: [] for offer_id in ids}
    unseen: list[int] = []  # offers whose current interval holds ticks observed after `now`
    for offer_id, bucket, n, low, high, first, close, last_at in rows:
        if bucket == current and last_at > now:
            unseen.append(offer_id)
            continue
        series[offer_id].append(
            Bucket((bucket - start) // step, n, value(low), value(high), value(first), value(close))
        )
    if unseen:
        k = (current - start) // step
        stitched = await _tick_buckets(session, unseen, current, 1, interval, now, dimension)
        for offer_id, buckets in stitched.items():
            series[offer_id].extend(replace(b, k=k) for b in buckets)

    return {
        offer_id: candles_from_buckets(priors.get(offer_id), buckets, start, end, interval)
        for offer_id, buckets in series.items()
    }


async def candles_for_offer(
    session: AsyncSession,
    offer_id: int,
    days: int,
    interval: Interval,
    now: datetime | None = None,
    dimension: Dimension = Dimension.BLENDED,
) -> list[Candle]:
    return (await candles_for_offers(session, [offer_id], days, interval, now, dimension))[offer_id]
