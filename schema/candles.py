from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum

import strawberry

from datasources import candles


@strawberry.enum
class CandleInterval(Enum):
    DAY = "1d"
    HOUR = "1h"


@strawberry.type(description="OHLC of the blended price over one day or hour (UTC).")
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
