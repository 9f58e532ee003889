"""Root fields over the catalog: models, providers, prices and comparisons, read from the price book."""

from __future__ import annotations

from enum import Enum

import strawberry

from datasources import prices as price_service
from datasources.errors import NotFound
from datasources.plans import Feature, require
from schema.bounds import Arguments, Page, Sized
from schema.catalog import Model, Price, Provider, prices_of
from schema.compare import Comparison
from schema.context import Info

MODELS = Page(default=100, maximum=1000)
PROVIDERS = Page(default=100, maximum=500)
PRICES = Page(default=100, maximum=1000)


def _compared(arguments: Arguments) -> int:
    models = arguments.get("models")
    return min(len(models), price_service.MAX_COMPARE) if isinstance(models, list) else price_service.MAX_COMPARE


COMPARED = Sized(_compared, "the models compared, at most 5")


@strawberry.enum
class Capability(Enum):
    VISION = "vision"
    TOOLS = "tools"


def models(
    info: Info,
    family: str | None = None,
    provider: str | None = None,
    capability: Capability | None = None,
    search: str | None = None,
    first: int = MODELS.default,
    offset: int = 0,
) -> list[Model]:
    MODELS.check(first, offset)
    catalog = info.context.catalog
    rows = price_service.list_models(
        catalog, family, provider, search, vision=capability is Capability.VISION, tools=capability is Capability.TOOLS
    )
    return [Model(row=row, catalog=catalog) for row in MODELS.take(rows, first, offset)]


def model(info: Info, slug: str) -> Model | None:
    catalog = info.context.catalog
    try:
        return Model(row=catalog.find_model(slug), catalog=catalog)
    except NotFound:
        return None


def providers(info: Info, first: int = PROVIDERS.default, offset: int = 0) -> list[Provider]:
    catalog = info.context.catalog
    return [Provider(row=row, catalog=catalog) for row in PROVIDERS.take(catalog.providers_offering, first, offset)]


def provider(info: Info, slug: str) -> Provider | None:
    catalog = info.context.catalog
    try:
        return Provider(row=catalog.find_provider(slug), catalog=catalog)
    except NotFound:
        return None


def prices(
    info: Info, model: str | None = None, provider: str | None = None, first: int = PRICES.default, offset: int = 0
) -> list[Price]:
    PRICES.check(first, offset)
    catalog = info.context.catalog
    found_model = catalog.find_model(model) if model else None
    found_provider = catalog.find_provider(provider) if provider else None
    return prices_of(catalog, PRICES.take(catalog.offers_of(found_model, found_provider), first, offset))


def compare(info: Info, models: list[str], provider: str | None = None) -> list[Comparison] | None:
    require(info.context.caller.rules, Feature.COMPARE)
    catalog = info.context.catalog
    return [Comparison(row=r, catalog=catalog) for r in price_service.compare_models(catalog, models, provider)]
