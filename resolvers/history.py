"""Candles, from the root field or from a price."""

from __future__ import annotations

from datasources import history
from datasources.candles import Interval
from datasources.plans import MAX_HISTORY_DAYS
from schema.bounds import Arguments, Sized
from schema.candles import Candle, CandleInterval
from schema.context import Info


def _candle_count(arguments: Arguments) -> int:
    """One candle per day or hour of the window, and the current one."""
    days = arguments.get("days")
    days = days if isinstance(days, int) and 1 <= days <= MAX_HISTORY_DAYS else MAX_HISTORY_DAYS
    return days * (24 if arguments.get("interval") is CandleInterval.HOUR else 1) + 1


CANDLES = Sized(_candle_count, "days, times 24 for hourly candles")


def _admit(info: Info, days: int, interval: CandleInterval) -> Interval:
    window = Interval(interval.value)
    history.admit(info.context.caller.rules, days, window)
    return window


async def candles_of_offer(info: Info, offer_id: int, days: int, interval: CandleInterval) -> list[Candle] | None:
    window = _admit(info, days, interval)
    rows = await info.context.loaders.candles_by_offer.load((offer_id, days, window))
    return [Candle(row=c) for c in rows]


async def candles(
    info: Info, model: str, provider: str, days: int = history.DEFAULT_DAYS,
    interval: CandleInterval = CandleInterval.DAY, variant: str | None = None,
) -> list[Candle] | None:
    window = _admit(info, days, interval)
    async with info.context.sessionmaker() as session:
        found = await history.history(session, info.context.catalog, model, provider, days, window, variant)
    return [Candle(row=c) for c in found.candles]
