"""The gateway's account API (`/v1/...`): the OpenAI-shaped model list with pricing metadata."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Route

from datasources import prices
from datasources.db.models import OfferStatus
from datasources.errors import NotFound
from datasources.money import ONE_MILLION
from datasources.plans import Feature
from datasources.pricebook import ModelRow, ProviderRow
from routing.rest.endpoint import Call, catalog_endpoint


def _per_token(per_1m: Any) -> str:
    return format((per_1m / ONE_MILLION).normalize(), "f")


def model_entry(model: ModelRow, rows: Sequence[prices.PriceRow], pinned: ProviderRow | None = None) -> dict[str, Any]:
    usable = [r for r in rows if r.offer.status is not OfferStatus.UNAVAILABLE]
    best = prices.cheapest([r.offer for r in usable])
    best_row = next((r for r in usable if best is not None and r.offer.id == best.id), None)
    pricing: dict[str, Any] = {"currency": "usd", "unit": "1M tokens"}
    if best_row is not None:
        pricing |= {
            "input_per_1m": best_row.offer.input_per_1m,
            "output_per_1m": best_row.offer.output_per_1m,
            "blended_per_1m": best_row.blended,
            "prompt": _per_token(best_row.offer.input_per_1m),
            "completion": _per_token(best_row.offer.output_per_1m),
            "provider": best_row.provider.slug,
        }
    vision = any(r.offer.supports_vision for r in usable)
    tools = any(r.offer.supports_tools for r in usable)
    return {
        "id": f"{pinned.slug}/{model.slug}" if pinned else model.slug,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": pinned.slug if pinned else model.family,
        "name": model.display_name,
        "family": model.family,
        "context_length": model.context_window,
        "pricing": pricing,
        "supports_vision": vision,
        "supports_tools": tools,
        "capabilities": {"vision": vision, "tool_calling": tools},
        "providers": [
            {
                "provider": r.provider.slug,
                "model_id": r.offer.provider_model_id,
                "variant": r.offer.variant,
                "input_per_1m": r.offer.input_per_1m,
                "output_per_1m": r.offer.output_per_1m,
                "status": r.offer.status.value,
                "supports_vision": r.offer.supports_vision,
                "supports_tools": r.offer.supports_tools,
            }
            for r in rows
        ],
    }


@catalog_endpoint
async def list_models(call: Call) -> dict[str, Any]:
    await call.admit(Feature.MODELS)
    catalog = call.catalog
    models = catalog.models_sorted
    rows = prices.current_prices(catalog)
    by_model: dict[int, list[prices.PriceRow]] = defaultdict(list)
    for row in rows:
        by_model[row.model.id].append(row)
    return {"object": "list", "data": [model_entry(m, by_model[m.id]) for m in models if by_model[m.id]]}


@catalog_endpoint
async def retrieve_model(call: Call) -> dict[str, Any]:
    """`/v1/models/{id}`: a bare slug, or `provider/model` for one provider's offer of it."""
    model_id: str = call.request.path_params["model_id"]
    await call.admit(Feature.MODELS)
    catalog = call.catalog
    model, provider = catalog.find_model_ref(model_id)
    rows = prices.current_prices(catalog, model, provider)
    if provider is not None and not rows:
        raise NotFound(f"provider {provider.slug} does not offer {model.slug}")
    return model_entry(model, rows, provider)


routes: list[BaseRoute] = [
    Route("/models", list_models),
    Route("/models/{model_id:path}", retrieve_model),
]
