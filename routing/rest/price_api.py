"""The price API (`/api/v1/...`): prices, history, compare, models, providers — shapes as documented."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from datasources import history, prices
from datasources.candles import Candle, Dimension, Interval
from datasources.db.models import OfferStatus
from datasources.plans import MAX_HISTORY_DAYS, Feature
from datasources.pricebook import Catalog, ModelRow, ProviderRow
from datasources.pricing import Price, Rates
from routing.rest.endpoint import JSON, Call, catalog_endpoint, endpoint
from routing.rest.openapi import document

INTERVALS = {"1d": Interval.DAY, "1h": Interval.HOUR}


def iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def params_b(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.normalize()


def _rates(rates: Rates) -> dict[str, Any]:
    return {
        "cache_read_per_1m": rates.cache_read,
        "cache_write_per_1m": rates.cache_write,
        "cache_write_1h_per_1m": rates.cache_write_1h,
        "reasoning_per_1m": rates.reasoning,
    }


def pricing_object(offer_price: Price) -> dict[str, Any]:
    """Every dimension beyond input and output (null: not priced apart), and the context tiers."""
    d = offer_price.dimensions
    return {
        **_rates(offer_price.base),
        "per_request": d.per_request,
        "per_search": d.per_search,
        "tiers": [
            {"above_tokens": t.above, "input_per_1m": t.rates.input, "output_per_1m": t.rates.output, **_rates(t.rates)}
            for t in d.tiers
        ],
    }


def price_object(row: prices.PriceRow) -> dict[str, Any]:
    offer = row.offer
    return {
        "provider": row.provider.slug,
        "input_per_1m": offer.input_per_1m,
        "output_per_1m": offer.output_per_1m,
        "blended_per_1m": row.blended,
        "context_window": offer.context_window,
        "status": offer.status.value,
        "model": row.model.slug,
        "variant": offer.variant,
        "provider_model_id": offer.provider_model_id,
        "supports_vision": offer.supports_vision,
        "supports_tools": offer.supports_tools,
        "updated_at": iso(offer.updated_at),
        "price_kind": offer.price_kind.value,
        "pricing": pricing_object(offer.price),
    }


@catalog_endpoint
async def get_prices(call: Call) -> dict[str, Any]:
    model_text, provider_text = call.text("model"), call.text("provider")
    await call.admit(Feature.PRICES)
    catalog = call.catalog
    model = catalog.find_model(model_text) if model_text else None
    provider = catalog.find_provider(provider_text) if provider_text else None
    rows = prices.current_prices(catalog, model, provider)
    return {
        "model": model.slug if model else None,
        "updated_at": iso(max((r.offer.confirmed_at for r in rows), default=None)),
        "prices": [price_object(r) for r in rows],
    }


def candle_object(candle: Candle, interval: Interval) -> dict[str, Any]:
    return {
        "date": candle.start.strftime("%Y-%m-%d") if interval is Interval.DAY else iso(candle.start),
        "open": candle.open,
        "high": candle.high,
        "low": candle.low,
        "close": candle.close,
        "change_pct": candle.change_pct,
        "timestamp": iso(candle.start),
        "ticks": candle.ticks,
    }


@endpoint
async def get_history(call: Call) -> dict[str, Any]:
    model_text = call.text("model", required=True)
    provider_text = call.text("provider", required=True)
    days = call.integer("days", history.DEFAULT_DAYS, 1, MAX_HISTORY_DAYS)
    interval_name = call.choice("interval", "1d", tuple(INTERVALS))
    variant = call.text("variant")
    dimension = Dimension(call.choice("dimension", Dimension.BLENDED.value, tuple(d.value for d in Dimension)))
    interval = INTERVALS[interval_name]
    history.admit(call.principal.rules, days, interval)
    await call.admit(None)
    assert model_text is not None and provider_text is not None
    async with call.sessionmaker() as session:
        found = await history.history(
            session, call.catalog, model_text, provider_text, days, interval, variant, dimension
        )
    return {
        "model": found.model.slug,
        "provider": found.provider.slug,
        "interval": interval_name,
        "variant": found.offer.variant,
        "dimension": dimension.value,
        "candles": [candle_object(c, interval) for c in found.candles],
    }


@catalog_endpoint
async def get_compare(call: Call) -> dict[str, Any]:
    raw = call.text("models", required=True)
    assert raw is not None
    provider_text = call.text("provider")
    names = raw.split(",")
    prices.compare_models(call.catalog, names, provider_text)  # bad input is refused before any quota
    await call.admit(Feature.COMPARE)
    rows = prices.compare_models(call.catalog, names, provider_text)
    return {
        "updated_at": iso(max((r.updated_at for r in rows if r.updated_at), default=None)),
        "models": [
            {
                "model": r.model.slug,
                "cheapest_provider": r.cheapest.provider.slug if r.cheapest else None,
                "cheapest_blended": r.cheapest.blended if r.cheapest else None,
                "avg_blended": r.average_blended,
                "provider_count": r.provider_count,
                "cheapest_variant": r.cheapest.offer.variant if r.cheapest else None,
            }
            for r in rows
        ],
    }


def model_object(model: ModelRow, provider_count: int) -> dict[str, Any]:
    return {
        "slug": model.slug,
        "display_name": model.display_name,
        "family": model.family,
        "params_b": params_b(model.params_b),
        "context_window": model.context_window,
        "provider_count": provider_count,
        "is_benchmark": model.is_benchmark,
    }


@catalog_endpoint
async def get_models(call: Call) -> dict[str, Any]:
    family, provider_text = call.text("family"), call.text("provider")
    await call.admit(Feature.MODELS)
    catalog = call.catalog
    models = prices.list_models(catalog, family, provider_text)
    return {"models": [model_object(m, catalog.provider_count(m.id)) for m in models]}


def provider_status(live: int, total: int) -> str:
    if live:
        return "operational"
    return "degraded" if total else "unavailable"


def provider_object(catalog: Catalog, provider: ProviderRow) -> dict[str, Any]:
    offers = catalog.provider_offers(provider.id)
    models = len({o.model_id for o in offers})
    live, total = sum(o.status is OfferStatus.LIVE for o in offers), len(offers)
    return {
        "slug": provider.slug,
        "name": provider.name,
        "model_count": models,
        "status": provider_status(live, total),
        "signup_url": provider.signup_url,
    }


@catalog_endpoint
async def get_providers(call: Call) -> dict[str, Any]:
    await call.admit(Feature.PROVIDERS)
    catalog = call.catalog
    return {"providers": [provider_object(catalog, p) for p in catalog.providers_offering]}


async def openapi(request: Request) -> Response:
    return JSON(document(str(request.base_url).rstrip("/")))


routes: list[BaseRoute] = [
    Route("/prices", get_prices),
    Route("/history", get_history),
    Route("/compare", get_compare),
    Route("/models", get_models),
    Route("/providers", get_providers),
    Route("/openapi.json", openapi),
]
