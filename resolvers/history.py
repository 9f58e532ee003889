"""Candles, from the root field or from a price."""

from __future__ import annotations

from datasources import history
from datasources.candles import Dimension
from schema.candles import Candle, CandleInterval, PriceDimension, admit
from schema.context import Info


async def candles(
    info: Info,
    model: str,
    provider: str,
    days: int = history.DEFAULT_DAYS,
    interval: CandleInterval = CandleInterval.DAY,
    variant: str | None = None,
    dimension: PriceDimension = PriceDimension.BLENDED,
) -> list[Candle] | None:
    window = admit(info, days, interval)
    measured = Dimension(dimension.value)
    async with info.context.sessionmaker() as session:
        found = await history.history(session, info.context.catalog, model, provider, days, window, variant, measured)
    return [Candle(row=c) for c in found.candles]
