"""Candles, from the root field or from a price."""

from __future__ import annotations

from datasources import prices
from datasources.candles import Interval, candles_for_offer
from datasources.errors import BadInput
from datasources.plans import Feature, require
from schema.bounds import Arguments, Sized
from schema.candles import Candle, CandleInterval
from schema.context import Info

MAX_DAYS = 365


def _candle_count(arguments: Arguments) -> int:
    """One candle per day or hour of the window, and the current one."""
    days = arguments.get("days")
    days = days if isinstance(days, int) and 1 <= days <= MAX_DAYS else MAX_DAYS
    return days * (24 if arguments.get("interval") is CandleInterval.HOUR else 1) + 1


CANDLES = Sized(_candle_count, "days, times 24 for hourly candles")


def _admit(info: Info, days: int, interval: CandleInterval) -> Interval:
    if not 1 <= days <= MAX_DAYS:
        raise BadInput(f"days: must be from 1 to {MAX_DAYS}, got {days}")
    window = Interval(interval.value)
    feature = Feature.HOURLY_CANDLES if window is Interval.HOUR else Feature.HISTORY
    require(info.context.caller.rules, feature, history_days=days)
    return window


async def candles_of_offer(info: Info, offer_id: int, days: int, interval: CandleInterval) -> list[Candle] | None:
    window = _admit(info, days, interval)
    rows = await info.context.loaders.candles_by_offer.load((offer_id, days, window))
    return [Candle(row=c) for c in rows]


async def candles(
    info: Info, model: str, provider: str, days: int = 30, interval: CandleInterval = CandleInterval.DAY,
    variant: str | None = None,
) -> list[Candle] | None:
    window = _admit(info, days, interval)
    catalog = info.context.catalog
    offer = prices.pair_offer(catalog, catalog.find_model(model), catalog.find_provider(provider), variant)
    async with info.context.sessionmaker() as session:
        rows = await candles_for_offer(session, offer.id, days, window)
    return [Candle(row=c) for c in rows]
