"""Per-request DataLoaders for what is read from the database (the catalog itself is in memory).
Each batch opens its own short session (sessions are not task-safe)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from datasources.candles import Candle, Dimension, Interval, candles_for_offers

CandleKey = tuple[int, int, Interval, Dimension]  # offer id, days, interval, what is measured
CANDLE_BATCH = 50  # offers per query: each batch's rows are turned into candles between two awaits


def _candles_loader(sessionmaker: async_sessionmaker[AsyncSession]) -> DataLoader[CandleKey, list[Candle]]:
    async def load(keys: list[CandleKey]) -> list[list[Candle]]:
        windows: dict[tuple[int, Interval, Dimension], list[int]] = defaultdict(list)
        for offer_id, days, interval, dimension in keys:
            windows[(days, interval, dimension)].append(offer_id)
        found: dict[CandleKey, list[Candle]] = {}
        async with sessionmaker() as session:
            for (days, interval, dimension), offer_ids in windows.items():
                for start in range(0, len(offer_ids), CANDLE_BATCH):
                    batch = offer_ids[start : start + CANDLE_BATCH]
                    answer = await candles_for_offers(session, batch, days, interval, dimension=dimension)
                    for offer_id, candles in answer.items():
                        found[(offer_id, days, interval, dimension)] = candles
        return [found.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    candles_by_offer: DataLoader[CandleKey, list[Candle]]


def build_loaders(sessionmaker: async_sessionmaker[AsyncSession]) -> Loaders:
    return Loaders(candles_by_offer=_candles_loader(sessionmaker))
