"""The candle of the interval now under way, kept current tick by tick: what `candleUpdated` streams.

It starts from the candle the history gives for the current interval (or none, before an offer's first
tick). A tick inside the interval moves its close (and high, low, change, count); a tick from before the
interval (a back-dated observation filed as history) does not; when the clock passes the interval's end
the next interval opens at the last close, as the history's candles do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from datasources.candles import Candle, Interval
from datasources.money import percent_change


@dataclass
class FormingCandle:
    interval: Interval
    candle: Candle | None = None

    def boundary(self, now: datetime) -> datetime:
        """When the interval holding `now` ends."""
        return self.interval.floor(now) + self.interval.step

    def tick(self, price: Decimal, at: datetime) -> Candle | None:
        """A committed price observed at `at`: the candle it moves, or None when it moves none."""
        start = self.interval.floor(at)
        current = self.candle
        if current is not None and start < current.start:
            return None  # the past: the history has it, the forming candle does not move
        if current is None or start > current.start:
            opened = current.close if current is not None else price
            current = Candle(start, opened, opened, opened, opened, percent_change(opened, opened), 0)
        self.candle = replace(
            current,
            high=max(current.high, price),
            low=min(current.low, price),
            close=price,
            change_pct=percent_change(price, current.open),
            ticks=current.ticks + 1,
        )
        return self.candle

    def roll(self, now: datetime) -> Candle | None:
        """The interval holding `now` opened at the last close, if the clock has passed the candle's end."""
        current = self.candle
        start = self.interval.floor(now)
        if current is None or start <= current.start:
            return None
        close = current.close
        self.candle = Candle(start, close, close, close, close, percent_change(close, close), 0)
        return self.candle
