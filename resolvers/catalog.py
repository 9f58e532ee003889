"""Root fields over the catalog."""

from __future__ import annotations

from datasources.catalog import queries
from schema.catalog import Model, Provider
from schema.context import Info
from schema.errors import bad_input

MAX_FIRST = queries.MAX_PAGE


async def models(
    info: Info,
    family: str | None = None,
    provider: str | None = None,
    search: str | None = None,
    first: int = 100,
    offset: int = 0,
) -> list[Model]:
    if not 1 <= first <= MAX_FIRST:
        raise bad_input("first", f"must be between 1 and {MAX_FIRST}")
    if offset < 0:
        raise bad_input("offset", "must not be negative")
    async with info.context.sessionmaker() as session:
        rows = await queries.list_models(session, family, provider, search, first, offset)
    return [Model(row=row) for row in rows]


async def model(info: Info, slug: str) -> Model | None:
    async with info.context.sessionmaker() as session:
        row = await queries.get_model(session, slug)
    return Model(row=row) if row else None


async def providers(info: Info) -> list[Provider]:
    async with info.context.sessionmaker() as session:
        rows = await queries.list_providers(session)
    return [Provider(row=row) for row in rows]


async def provider(info: Info, slug: str) -> Provider | None:
    async with info.context.sessionmaker() as session:
        row = await queries.get_provider(session, slug)
    return Provider(row=row) if row else None
