"""Reads over the catalog: models, providers and their offers. Batch functions serve DataLoaders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import case, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from datasources.db.models import Model, Offer, OfferStatus, Provider
from datasources.prices import sort_key

MAX_PAGE = 500


async def list_models(
    session: AsyncSession,
    family: str | None = None,
    provider: str | None = None,
    search: str | None = None,
    limit: int | None = 100,
    offset: int = 0,
    vision: bool = False,
    tools: bool = False,
) -> list[Model]:
    """Models by slug. `vision` / `tools`: only models some provider serves with that capability."""
    statement = select(Model)
    if vision:
        statement = statement.where(Model.id.in_(select(Offer.model_id).where(Offer.supports_vision.is_(True))))
    if tools:
        statement = statement.where(Model.id.in_(select(Offer.model_id).where(Offer.supports_tools.is_(True))))
    if family:
        statement = statement.where(Model.family == family.lower())
    if provider:
        statement = statement.where(
            Model.id.in_(select(Offer.model_id).join(Provider).where(Provider.slug == provider))
        )
    if search:
        literal = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{literal}%"
        statement = statement.where(or_(
            Model.slug.like(pattern, escape="\\"), func.lower(Model.display_name).like(pattern, escape="\\")
        ))
    statement = statement.order_by(Model.slug).offset(offset)
    if limit is not None:
        statement = statement.limit(min(limit, MAX_PAGE))
    return list((await session.execute(statement)).scalars())


async def get_model(session: AsyncSession, slug: str) -> Model | None:
    return (await session.execute(select(Model).where(Model.slug == slug))).scalar_one_or_none()


async def list_providers(session: AsyncSession) -> list[Provider]:
    statement = select(Provider).where(Provider.id.in_(select(Offer.provider_id).distinct()))
    return list((await session.execute(statement.order_by(Provider.slug))).scalars())


async def get_provider(session: AsyncSession, slug: str) -> Provider | None:
    return (await session.execute(select(Provider).where(Provider.slug == slug))).scalar_one_or_none()


async def _offers_grouped(session: AsyncSession, key: InstrumentedAttribute[int], ids: Sequence[int]) -> dict[int, list[Offer]]:
    grouped: dict[int, list[Offer]] = defaultdict(list)
    for offer in (await session.execute(select(Offer).where(key.in_(ids)))).scalars():
        grouped[getattr(offer, key.key)].append(offer)
    for offers in grouped.values():
        offers.sort(key=sort_key)
    return grouped


async def offers_by_model(session: AsyncSession, model_ids: Sequence[int]) -> dict[int, list[Offer]]:
    return await _offers_grouped(session, Offer.model_id, model_ids)


async def offers_by_provider(session: AsyncSession, provider_ids: Sequence[int]) -> dict[int, list[Offer]]:
    return await _offers_grouped(session, Offer.provider_id, provider_ids)


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


async def provider_counts(session: AsyncSession) -> dict[int, int]:
    """model id -> how many providers offer it (offers not marked unavailable)."""
    rows = await session.execute(
        select(Offer.model_id, func.count(distinct(Offer.provider_id)))
        .where(Offer.status != OfferStatus.UNAVAILABLE)
        .group_by(Offer.model_id)
    )
    return dict(rows.all())


async def provider_activity(session: AsyncSession) -> dict[int, tuple[int, int, int]]:
    """provider id -> (models offered, live offers, offers)."""
    rows = await session.execute(
        select(
            Offer.provider_id,
            func.count(distinct(Offer.model_id)),
            func.sum(case((Offer.status == OfferStatus.LIVE, 1), else_=0)),
            func.count(Offer.id),
        ).group_by(Offer.provider_id)
    )
    return {pid: (models, int(live or 0), total) for pid, models, live, total in rows.all()}
