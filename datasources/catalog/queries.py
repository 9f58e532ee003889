"""Reads over the catalog: models, providers and their offers. Batch functions serve DataLoaders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Select, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.db.models import Model, Offer, Provider

MAX_PAGE = 500


def _blended_order(statement: Select) -> Select:  # type: ignore[type-arg]
    return statement.order_by(Offer.input_per_1m + Offer.output_per_1m, Offer.id)


async def list_models(
    session: AsyncSession,
    family: str | None = None,
    provider: str | None = None,
    search: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Model]:
    statement = select(Model)
    if family:
        statement = statement.where(Model.family == family.lower())
    if provider:
        statement = statement.where(
            Model.id.in_(select(Offer.model_id).join(Provider).where(Provider.slug == provider))
        )
    if search:
        pattern = f"%{search.lower()}%"
        statement = statement.where(or_(Model.slug.like(pattern), func.lower(Model.display_name).like(pattern)))
    statement = statement.order_by(Model.slug).limit(min(limit, MAX_PAGE)).offset(offset)
    return list((await session.execute(statement)).scalars())


async def get_model(session: AsyncSession, slug: str) -> Model | None:
    return (await session.execute(select(Model).where(Model.slug == slug))).scalar_one_or_none()


async def list_providers(session: AsyncSession) -> list[Provider]:
    statement = select(Provider).where(Provider.id.in_(select(distinct(Offer.provider_id))))
    return list((await session.execute(statement.order_by(Provider.slug))).scalars())


async def get_provider(session: AsyncSession, slug: str) -> Provider | None:
    return (await session.execute(select(Provider).where(Provider.slug == slug))).scalar_one_or_none()


async def offers_by_model(session: AsyncSession, model_ids: Sequence[int]) -> dict[int, list[Offer]]:
    statement = _blended_order(select(Offer).where(Offer.model_id.in_(model_ids)))
    grouped: dict[int, list[Offer]] = defaultdict(list)
    for offer in (await session.execute(statement)).scalars():
        grouped[offer.model_id].append(offer)
    return grouped


async def offers_by_provider(session: AsyncSession, provider_ids: Sequence[int]) -> dict[int, list[Offer]]:
    statement = _blended_order(select(Offer).where(Offer.provider_id.in_(provider_ids)))
    grouped: dict[int, list[Offer]] = defaultdict(list)
    for offer in (await session.execute(statement)).scalars():
        grouped[offer.provider_id].append(offer)
    return grouped


async def models_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, Model]:
    return {m.id: m for m in (await session.execute(select(Model).where(Model.id.in_(ids)))).scalars()}


async def providers_by_id(session: AsyncSession, ids: Sequence[int]) -> dict[int, Provider]:
    rows = (await session.execute(select(Provider).where(Provider.id.in_(ids)))).scalars()
    return {p.id: p for p in rows}


async def count_catalog(session: AsyncSession) -> tuple[int, int, int]:
    """(models with an offer, providers with an offer, offers)."""
    row = (await session.execute(select(
        func.count(distinct(Offer.model_id)), func.count(distinct(Offer.provider_id)), func.count(Offer.id)
    ))).one()
    return row[0], row[1], row[2]
