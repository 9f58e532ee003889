"""Per-request DataLoaders. Each batch opens its own short session (sessions are not task-safe)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from datasources.catalog import queries
from datasources.db.models import Model, Offer, Provider

T = TypeVar("T")
Batch = Callable[[AsyncSession, Sequence[int]], Awaitable[dict[int, T]]]


def _loader(sessionmaker: async_sessionmaker[AsyncSession], batch: Batch[T], default: Callable[[], T]) -> DataLoader[int, T]:
    async def load(keys: list[int]) -> list[T]:
        async with sessionmaker() as session:
            found = await batch(session, keys)
        return [found.get(key, default()) for key in keys]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    offers_by_model: DataLoader[int, list[Offer]]
    offers_by_provider: DataLoader[int, list[Offer]]
    model_by_id: DataLoader[int, Model | None]
    provider_by_id: DataLoader[int, Provider | None]


def build_loaders(sessionmaker: async_sessionmaker[AsyncSession]) -> Loaders:
    return Loaders(
        offers_by_model=_loader(sessionmaker, queries.offers_by_model, list),
        offers_by_provider=_loader(sessionmaker, queries.offers_by_provider, list),
        model_by_id=_loader(sessionmaker, queries.models_by_id, lambda: None),
        provider_by_id=_loader(sessionmaker, queries.providers_by_id, lambda: None),
    )
