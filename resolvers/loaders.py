"""Per-request DataLoaders. Each batch opens its own short session (sessions are not task-safe)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from datasources.candles import Candle, Interval, candles_for_offers
from datasources.catalog import queries
from datasources.db.models import Model, Offer, Provider

T = TypeVar("T")
Batch = Callable[[AsyncSession, Sequence[int]], Awaitable[dict[int, T]]]
CandleKey = tuple[int, int, Interval]  # offer id, days, interval


def _loader(sessionmaker: async_sessionmaker[AsyncSession], batch: Batch[T], default: Callable[[], T]) -> DataLoader[int, T]:
    async def load(keys: list[int]) -> list[T]:
        async with sessionmaker() as session:
            found = await batch(session, keys)
        return [found.get(key, default()) for key in keys]

    return DataLoader(load_fn=load)


def _candles_loader(sessionmaker: async_sessionmaker[AsyncSession]) -> DataLoader[CandleKey, list[Candle]]:
    async def load(keys: list[CandleKey]) -> list[list[Candle]]:
        windows: dict[tuple[int, Interval], list[int]] = defaultdict(list)
        for offer_id, days, interval in keys:
            windows[(days, interval)].append(offer_id)
        found: dict[CandleKey, list[Candle]] = {}
        async with sessionmaker() as session:
            for (days, interval), offer_ids in windows.items():
                for offer_id, candles in (await candles_for_offers(session, offer_ids, days, interval)).items():
                    found[(offer_id, days, interval)] = candles
        return [found.get(key, []) for key in keys]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    offers_by_model: DataLoader[int, list[Offer]]
    offers_by_provider: DataLoader[int, list[Offer]]
    model_by_id: DataLoader[int, Model | None]
    provider_by_id: DataLoader[int, Provider | None]
    candles_by_offer: DataLoader[CandleKey, list[Candle]]


def build_loaders(sessionmaker: async_sessionmaker[AsyncSession]) -> Loaders:
    return Loaders(
        offers_by_model=_loader(sessionmaker, queries.offers_by_model, list),
        offers_by_provider=_loader(sessionmaker, queries.offers_by_provider, list),
        model_by_id=_loader(sessionmaker, queries.models_by_id, lambda: None),
        provider_by_id=_loader(sessionmaker, queries.providers_by_id, lambda: None),
        candles_by_offer=_candles_loader(sessionmaker),
    )
