from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum

import strawberry

from datasources import candles, history
from datasources.candles import Dimension, Interval
from datasources.plans import MAX_HISTORY_DAYS
from schema.bounds import Arguments, Sized
from schema.context import Info


@strawberry.enum
class CandleInterval(Enum):
    DAY = "1d"
    HOUR = "1h"


@strawberry.enum(description="What a candle measures: the blended price (the default) or one dimension.")
class PriceDimension(Enum):
    BLENDED = "blended"
    INPUT = "input"
    OUTPUT = "output"
    CACHE_READ = "cache_read"


@strawberry.type(
    description="OHLC of a price over one day or hour (UTC): the blended price, or the dimension asked for."
)
class Candle:
    row: strawberry.Private[candles.Candle]

    @strawberry.field(description="Start of the interval.")
    def start(self) -> datetime:
        return self.row.start

    @strawberry.field(description="The start's date, YYYY-MM-DD.")
    def date(self) -> str:
        return self.row.start.strftime("%Y-%m-%d")

    @strawberry.field
    def open(self) -> Decimal:
        return self.row.open

    @strawberry.field
    def high(self) -> Decimal:
        return self.row.high

    @strawberry.field
    def low(self) -> Decimal:
        return self.row.low

    @strawberry.field
    def close(self) -> Decimal:
        return self.row.close

    @strawberry.field(description="Percent change of the close against the previous close.")
    def change_pct(self) -> Decimal:
        return self.row.change_pct

    @strawberry.field(description="Price observations inside the interval.")
    def ticks(self) -> int:
        return self.row.ticks


def _candle_count(arguments: Arguments) -> int:
    """One candle per day or hour of the window, and the current one."""
    days = arguments.get("days")
    days = days if isinstance(days, int) and 1 <= days <= MAX_HISTORY_DAYS else MAX_HISTORY_DAYS
    return days * (24 if arguments.get("interval") is CandleInterval.HOUR else 1) + 1


CANDLES = Sized(_candle_count, "days, times 24 for hourly candles")


def admit(info: Info, days: int, interval: CandleInterval) -> Interval:
    window = Interval(interval.value)
    history.admit(info.context.caller.rules, days, window)
    return window


async def candles_of_offer(
    info: Info, offer_id: int, days: int, interval: CandleInterval, dimension: PriceDimension = PriceDimension.BLENDED
) -> list[Candle] | None:
    window = admit(info, days, interval)
    rows = await info.context.loaders.candles_by_offer.load((offer_id, days, window, Dimension(dimension.value)))
    return [Candle(row=c) for c in rows]
