"""OHLC candles of an offer's blended price, per UTC day or hour, derived from its price ticks.

open is the price in force when the interval starts (the previous close), so change_pct compares
close with open. Intervals without a tick carry the last close forward; there is no candle before
an offer's first tick.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.db.models import Offer, PriceTick
from datasources.errors import BadInput
from datasources.money import blended, percent_change

MAX_DAYS = 365


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
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise BadInput(f"days must be an integer from 1 to {MAX_DAYS}, got {days!r}")
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


async def candles_for_offers(
    session: AsyncSession,
    offer_ids: Sequence[int],
    days: int,
    interval: Interval,
    now: datetime | None = None,
) -> dict[int, list[Candle]]:
    """Candles for each offer (an offer without ticks gets []), in two SQL statements whatever the count:
    the last tick before the window per offer, then the ticks inside the window. The view is as of
    `now`: ticks observed after it are left out."""
    now = now or datetime.now(UTC)
    start, end = window(days, interval, now)
    ids = sorted(set(offer_ids))
    if not ids:
        return {}

    last_before = (
        select(PriceTick.id)
        .where(PriceTick.offer_id == Offer.id, PriceTick.observed_at < start)
        .order_by(PriceTick.observed_at.desc(), PriceTick.id.desc())
        .limit(1)
        .correlate(Offer)
        .scalar_subquery()
    )
    latest = select(last_before.label("tick_id")).select_from(Offer).where(Offer.id.in_(ids)).subquery()
    prior_rows = await session.execute(
        select(PriceTick.offer_id, PriceTick.input_per_1m, PriceTick.output_per_1m)
        .join(latest, PriceTick.id == latest.c.tick_id)
    )
    priors = {offer_id: blended(i, o) for offer_id, i, o in prior_rows}

    tick_rows = await session.execute(
        select(PriceTick.offer_id, PriceTick.observed_at, PriceTick.input_per_1m, PriceTick.output_per_1m)
        .where(PriceTick.offer_id.in_(ids), PriceTick.observed_at >= start, PriceTick.observed_at <= now)
        .order_by(PriceTick.offer_id, PriceTick.observed_at, PriceTick.id)
    )
    series: dict[int, list[tuple[datetime, Decimal]]] = {offer_id: [] for offer_id in ids}
    for offer_id, observed_at, i, o in tick_rows:
        series[offer_id].append((observed_at, blended(i, o)))

    return {
        offer_id: build_candles(priors.get(offer_id), ticks, start, end, interval)
        for offer_id, ticks in series.items()
    }


async def candles_for_offer(
    session: AsyncSession,
    offer_id: int,
    days: int,
    interval: Interval,
    now: datetime | None = None,
) -> list[Candle]:
    return (await candles_for_offers(session, [offer_id], days, interval, now))[offer_id]
