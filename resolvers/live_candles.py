"""`candleUpdated`: the forming candle of one offer, on every tick that moves it and at each new interval."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

from datasources import prices
from datasources.candles import candles_for_offer
from datasources.events import Event, PriceChanged
from datasources.forming_candle import FormingCandle
from resolvers.subscriptions import _events
from schema.candles import Candle, CandleInterval, admit
from schema.context import Info


async def candle_updated(
    info: Info,
    model: str,
    provider: str,
    variant: str | None = None,
    interval: CandleInterval = CandleInterval.DAY,
) -> AsyncGenerator[Candle, None]:
    context = info.context
    window = admit(info, 1, interval)  # the plan's candles: daily on developer, hourly on team
    catalog = context.catalog
    offer = prices.pair_offer(catalog, catalog.find_model(model), catalog.find_provider(provider), variant)

    def accepts(event: Event) -> bool:
        return isinstance(event, PriceChanged) and event.offer_id == offer.id

    queue: asyncio.Queue[PriceChanged | None] = asyncio.Queue()

    async def feed() -> None:  # listening before the history is read: no tick falls between the two
        try:
            async for event in _events(context, accepts):
                assert isinstance(event, PriceChanged)
                queue.put_nowait(event)
        finally:
            queue.put_nowait(None)

    listening = asyncio.create_task(feed(), name="pricegraph: candleUpdated feed")
    try:
        await asyncio.sleep(0)  # the feed's listener is registered
        forming = FormingCandle(window)
        async with context.sessionmaker() as session:
            history = await candles_for_offer(session, offer.id, 1, window)
        if history:
            forming.candle = history[-1]
            yield Candle(row=history[-1])
        while True:
            now = datetime.now(UTC)
            try:
                event = await asyncio.wait_for(queue.get(), (forming.boundary(now) - now).total_seconds())
            except TimeoutError:
                rolled = forming.roll(datetime.now(UTC))
                if rolled is not None:
                    yield Candle(row=rolled)
                continue
            if event is None:
                return
            moved = forming.tick(event.blended_per_1m, event.observed_at)
            if moved is not None:
                yield Candle(row=moved)
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
