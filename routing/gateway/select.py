"""Which providers may serve a request, in which order: the requested model's live offers that have a
usable key, cheapest blended price first (or by measured latency / throughput), shaped by the body's
OpenRouter-style `provider` preferences."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from datasources.catalog.providers import PROVIDERS, provider_slug
from datasources.db.models import OfferStatus
from datasources.errors import NotFound
from datasources.money import blended
from datasources.pricebook import Catalog, ModelRow, OfferRow, ProviderRow
from datasources.pricing import Price
from routing.gateway.errors import GatewayError
from routing.gateway.health import Health
from routing.gateway.providers import GatewayConfig, ProviderConfig

# Without live prices: the price API document's provider order, then the rest by slug.
STATIC_PRIORITY = (
    "together",
    "groq",
    "fireworks",
    "deepinfra",
    "nebius",
    "cerebras",
    "mistral",
    "sambanova",
    "xai",
    "hyperbolic",
    "novita",
    "lambda",
    "nvidia",
    "perplexity",
    "cloudflare",
    "digitalocean",
    "openai",
)
SORTS = ("price", "latency", "throughput")


@dataclass(frozen=True)
class Candidate:
    provider: ProviderConfig
    offer_id: int
    model_slug: str
    variant: str
    provider_model_id: str
    price: Price
    max_output_tokens: int | None
    key: str = field(repr=False)
    key_source: str  # "customer" | "platform"
    routed_by_price: bool

    @property
    def slug(self) -> str:
        return self.provider.slug

    @property
    def input_per_1m(self) -> Decimal:
        return self.price.input

    @property
    def output_per_1m(self) -> Decimal:
        return self.price.output

    @property
    def blended(self) -> Decimal:
        return blended(self.price.input, self.price.output)


@dataclass(frozen=True)
class Preferences:
    order: tuple[str, ...] = ()
    only: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    sort: str = "price"
    allow_fallbacks: bool = True
    max_prompt: Decimal | None = None
    max_completion: Decimal | None = None


def _slugs(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GatewayError(400, f"provider.{name} must be a list of provider slugs", "invalid_provider_preferences")
    slugs = []
    for item in value:
        slug = item.strip().lower() if item.strip().lower() in PROVIDERS else provider_slug(item)
        if slug is None:
            raise GatewayError(400, f"provider.{name}: unknown provider {item!r}", "invalid_provider_preferences")
        slugs.append(slug)
    return slugs


def _price(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal("NaN")
    if isinstance(value, bool) or not amount.is_finite() or amount < 0:
        raise GatewayError(
            400,
            f"provider.max_price.{name} must be a non-negative number (USD per 1M tokens)",
            "invalid_provider_preferences",
        )
    return amount


def parse_preferences(value: Any) -> Preferences:
    if value is None:
        return Preferences()
    if not isinstance(value, dict):
        raise GatewayError(400, "provider must be an object", "invalid_provider_preferences")
    known = {"order", "only", "ignore", "sort", "allow_fallbacks", "max_price"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise GatewayError(
            400,
            f"provider: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
            "invalid_provider_preferences",
        )
    sort = value.get("sort") or "price"
    if sort not in SORTS:
        raise GatewayError(
            400, f"provider.sort must be one of {', '.join(SORTS)}, got {sort!r}", "invalid_provider_preferences"
        )
    fallbacks = value.get("allow_fallbacks", True)
    if not isinstance(fallbacks, bool):
        raise GatewayError(400, "provider.allow_fallbacks must be true or false", "invalid_provider_preferences")
    max_price = value.get("max_price") or {}
    if not isinstance(max_price, dict) or set(max_price) - {"prompt", "completion"}:
        raise GatewayError(
            400,
            'provider.max_price must be {"prompt": USD per 1M, "completion": USD per 1M}',
            "invalid_provider_preferences",
        )
    return Preferences(
        order=tuple(_slugs(value["order"], "order")) if "order" in value else (),
        only=frozenset(_slugs(value["only"], "only")) if "only" in value else None,
        ignore=frozenset(_slugs(value["ignore"], "ignore")) if "ignore" in value else frozenset(),
        sort=sort,
        allow_fallbacks=fallbacks,
        max_prompt=_price(max_price.get("prompt"), "prompt"),
        max_completion=_price(max_price.get("completion"), "completion"),
    )


@dataclass(frozen=True)
class Selection:
    model: ModelRow
    candidates: list[Candidate]
    skipped: dict[str, float]  # providers cooling down → when they may be tried again (monotonic)


def offers_for(
    catalog: Catalog, text: str, tier: str | None = None
) -> tuple[ModelRow, ProviderRow | None, list[tuple[OfferRow, ProviderRow]]]:
    """The model a request names and its priced offers at the service tier asked for (None: the standard
    one) that are not unavailable, from the price book. A free or unpriced offer is never routed to: a zero
    from a source is no price to bill by; nor is a batch price, which is for another API."""
    model, pinned = catalog.find_model_ref(text)
    rows = [
        (o, catalog.providers[o.provider_id])
        for o in catalog.model_offers(model.id)
        if o.status is not OfferStatus.UNAVAILABLE
        and o.priced
        and o.service_tier == tier
        and (pinned is None or o.provider_id == pinned.id)
    ]
    return model, pinned, rows


def select_candidates(
    catalog: Catalog,
    text: str,
    preferences: Preferences,
    customer_keys: dict[str, str],
    config: GatewayConfig,
    health: Health,
    tier: str | None = None,
) -> Selection:
    try:
        model, pinned, rows = offers_for(catalog, text, tier)
    except NotFound:
        raise GatewayError(404, f"model not found: {text}", "model_not_found") from None
    if not rows:
        where = f" at {pinned.slug}" if pinned else ""
        at_tier = f" at the {tier} service tier" if tier else ""
        raise GatewayError(404, f"no provider offers {model.slug}{where}{at_tier} at a price", "model_not_found")
    live = [(o, p) for o, p in rows if o.status is OfferStatus.LIVE]
    by_price = bool(live)
    if by_price:
        rows = live  # the price book keeps each model's offers cheapest first
    else:  # no live price data: stale offers in the static priority order
        rank = {slug: i for i, slug in enumerate(STATIC_PRIORITY)}
        rows = sorted(rows, key=lambda row: (rank.get(row[1].slug, len(rank)), row[1].slug, row[0].id))

    keyed: list[Candidate] = []
    unkeyed: list[str] = []
    for offer, provider in rows:
        conf = config.provider(provider.slug)
        if conf is None or not conf.routable:
            continue
        if provider.slug in customer_keys:
            key, source = customer_keys[provider.slug], "customer"
        elif conf.api_key:
            key, source = conf.api_key, "platform"
        else:
            unkeyed.append(provider.slug)
            continue
        keyed.append(
            Candidate(
                provider=conf,
                offer_id=offer.id,
                model_slug=model.slug,
                variant=offer.variant,
                provider_model_id=offer.provider_model_id,
                price=offer.price,
                max_output_tokens=offer.max_output_tokens,
                key=key,
                key_source=source,
                routed_by_price=by_price,
            )
        )
    if not keyed:
        if unkeyed:
            names = ", ".join(dict.fromkeys(unkeyed))
            raise GatewayError(
                400,
                f"no provider key for {model.slug}: pass a key for one of {names} in X-Provider-Keys",
                "provider_key_required",
            )
        raise GatewayError(404, f"no routable provider serves {model.slug}", "model_not_found")

    candidates = _apply(keyed, preferences, health, by_price)
    if not candidates:
        raise GatewayError(
            404,
            f"no provider of {model.slug} matches the provider preferences (only, ignore, max_price)",
            "no_provider_matches",
        )
    if not preferences.allow_fallbacks:
        candidates = candidates[:1]
    ready, skipped = [], {}
    for candidate in candidates:
        until = health.blocked_until(candidate.slug)
        if until is None:
            ready.append(candidate)
        else:
            skipped[candidate.slug] = until
    return Selection(model, ready, skipped)


def _apply(candidates: list[Candidate], prefs: Preferences, health: Health, by_price: bool) -> list[Candidate]:
    out = [
        c
        for c in candidates
        if (prefs.only is None or c.slug in prefs.only)
        and c.slug not in prefs.ignore
        and (prefs.max_prompt is None or c.input_per_1m <= prefs.max_prompt)
        and (prefs.max_completion is None or c.output_per_1m <= prefs.max_completion)
    ]
    if prefs.sort == "latency":
        out.sort(key=lambda c: (health.latency(c.slug) is None, health.latency(c.slug) or 0.0))
    elif prefs.sort == "throughput":
        out.sort(key=lambda c: (health.tokens_per_s(c.slug) is None, -(health.tokens_per_s(c.slug) or 0.0)))
    if prefs.order:
        rank = {slug: i for i, slug in enumerate(prefs.order)}
        out.sort(key=lambda c: rank.get(c.slug, len(rank)))  # stable: the rest keep their order
    return [
        _routed(c, by_price and prefs.sort == "price" and c.slug not in prefs.order) for c in _one_per_provider(out)
    ]


def _one_per_provider(candidates: list[Candidate]) -> list[Candidate]:
    seen: set[str] = set()
    out = []
    for c in candidates:
        if c.slug not in seen:
            seen.add(c.slug)
            out.append(c)
    return out


def _routed(candidate: Candidate, by_price: bool) -> Candidate:
    if candidate.routed_by_price == by_price:
        return candidate
    from dataclasses import replace

    return replace(candidate, routed_by_price=by_price)
