"""`GET /api/v1/route/models`: the models the gateway can route, by provider, cheapest first."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from datasources.db.models import OfferStatus
from datasources.plans import Feature
from routing.gateway.providers import GatewayConfig
from routing.rest.endpoint import Call, endpoint


@endpoint
async def route_models(call: Call) -> dict[str, Any]:
    """Routable models: live offers at providers the gateway can call, and whether a platform key is set."""
    await call.admit(Feature.ROUTING)
    config: GatewayConfig = call.request.app.state.gateway.config
    catalog = call.catalog
    by_model: dict[str, dict[str, tuple[Decimal, str]]] = {}
    for offer in catalog.prices_sorted:
        if offer.status is not OfferStatus.LIVE or not offer.priced or offer.service_tier is not None:
            continue
        provider = catalog.providers[offer.provider_id].slug
        conf = config.provider(provider)
        if conf is None or not conf.routable:
            continue
        offers = by_model.setdefault(catalog.models[offer.model_id].slug, {})
        total = offer.input_per_1m + offer.output_per_1m
        if provider not in offers or total < offers[provider][0]:
            offers[provider] = (total, offer.provider_model_id)
    models = [
        {
            "slug": slug,
            "providers": [
                {"provider": p, "model_id": model_id, "configured": config.providers[p].configured}
                for p, (_, model_id) in sorted(offers.items(), key=lambda item: (item[1][0], item[0]))
            ],
        }
        for slug, offers in sorted(by_model.items())
    ]
    return {"models": models, "count": len(models)}
