"""The schema: root types assembled from per-domain resolvers."""

from __future__ import annotations

import strawberry

from resolvers import catalog
from schema.catalog import Model, Provider


@strawberry.type
class Query:
    models: list[Model] = strawberry.field(
        resolver=catalog.models, description="Models, by slug; filter by family, provider or text."
    )
    model: Model | None = strawberry.field(resolver=catalog.model, description="One model by canonical slug.")
    providers: list[Provider] = strawberry.field(
        resolver=catalog.providers, description="Providers with at least one offer."
    )
    provider: Provider | None = strawberry.field(resolver=catalog.provider)


schema = strawberry.Schema(query=Query)
