"""Per-request DataLoaders for what is read from the database (the catalog itself is in memory).
Each batch opens its own short session (sessions are not task-safe)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from datasources.candles import Candle, Interval, candles_for_offers

CandleKey = tuple[int, int, Interval]  # offer id, days, interval
CANDLE_BATCH = 50  # offers per query: each batch's rows are turned into candles between two awaits


def _candles_loader(sessionmaker: async_sessionmaker[AsyncSession]) -> DataLoader[CandleKey, list[Candle]]:
    async def load(keys: list[CandleKey]) -> list[list[Candle]]:
        windows: dict[tuple[int, Interval], list[int]] = defaultdict(list)
        for offer_id, days, interval in keys:
            windows[(days, interval)].append(offer_id)
        found: dict[CandleKey, list[Candle]] = {}
        async with sessionmaker() as session:
            for (days, interval), offer_ids in windows.items():
                for start in range(0, len(offer_ids), CANDLE_BATCH):
                    batch = offer_ids[start : start + CANDLE_BATCH]
                    for offer_id, candles in (await candles_for_offers(session, batch, days, interval)).items():
                        found[(offer_id, days, interval)] = candles
        return [found.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    candles_by_offer: DataLoader[CandleKey, list[Candle]]


def build_loaders(sessionmaker: async_sessionmaker[AsyncSession]) -> Loaders:
    return Loaders(candles_by_offer=_candles_loader(sessionmaker))
