"""Root fields over the catalog: models, providers, prices and comparisons."""

from __future__ import annotations

from enum import Enum

import strawberry

from datasources import prices as price_service
from datasources.catalog import queries
from datasources.errors import BadInput, NotFound
from datasources.plans import Feature, require
from schema.catalog import Model, Price, Provider
from schema.compare import Comparison
from schema.context import Info

MAX_FIRST = queries.MAX_PAGE


@strawberry.enum
class Capability(Enum):
    VISION = "vision"
    TOOLS = "tools"


async def models(
    info: Info,
    family: str | None = None,
    provider: str | None = None,
    capability: Capability | None = None,
    search: str | None = None,
    first: int = 100,
    offset: int = 0,
) -> list[Model]:
    if not 1 <= first <= MAX_FIRST:
        raise BadInput(f"first: must be from 1 to {MAX_FIRST}, got {first}")
    if offset < 0:
        raise BadInput(f"offset: must not be negative, got {offset}")
    async with info.context.sessionmaker() as session:
        rows = await queries.list_models(
            session, family, provider, search, first, offset,
            vision=capability is Capability.VISION, tools=capability is Capability.TOOLS,
        )
    return [Model(row=row) for row in rows]


async def model(info: Info, slug: str) -> Model | None:
    async with info.context.sessionmaker() as session:
        try:
            row = await price_service.find_model(session, slug)
        except NotFound:
            return None
    return Model(row=row)


async def providers(info: Info) -> list[Provider]:
    async with info.context.sessionmaker() as session:
        rows = await queries.list_providers(session)
    return [Provider(row=row) for row in rows]


async def provider(info: Info, slug: str) -> Provider | None:
    async with info.context.sessionmaker() as session:
        try:
            row = await price_service.find_provider(session, slug)
        except NotFound:
            return None
    return Provider(row=row)


async def prices(info: Info, model: str | None = None, provider: str | None = None) -> list[Price]:
    async with info.context.sessionmaker() as session:
        found_model = await price_service.find_model(session, model) if model else None
        found_provider = await price_service.find_provider(session, provider) if provider else None
        rows = await price_service.current_prices(session, found_model, found_provider)
    return [Price(row=r.offer) for r in rows]


async def compare(info: Info, models: list[str], provider: str | None = None) -> list[Comparison] | None:
    require(info.context.caller.rules, Feature.COMPARE)
    names = list(dict.fromkeys(m.strip() for m in models if m.strip()))
    if not 1 <= len(names) <= price_service.MAX_COMPARE:
        raise BadInput(f"models: give 1 to {price_service.MAX_COMPARE} model slugs, got {len(names)}")
    async with info.context.sessionmaker() as session:
        found = list({m.id: m for m in [await price_service.find_model(session, name) for name in names]}.values())
        found_provider = await price_service.find_provider(session, provider) if provider else None
        rows = await price_service.compare(session, found, found_provider)
    return [Comparison(row=r) for r in rows]
