"""Importers for OpenRouter's model list and its per-model endpoint lists.

`GET /api/v1/models` (`{"data": [...]}`) carries one price per model: OpenRouter's list price. For a
closed model only its author serves, that is the author's own price passed through; for an open-weight
model it is whichever host OpenRouter prefers (`qwen/qwen3-235b-a22b-2507` lists DeepInfra's
0.09/0.55, not Alibaba's price). Decision: a model becomes an offer of its author's first-party
provider only when the author is a closed-model seller (FIRST_PARTY_AUTHORS: openai, anthropic,
google, x-ai → xai, perplexity, cohere, ai21, amazon → bedrock, inception, morph) and the model is not
open-weight (OPEN_WEIGHT_SLUGS: gpt-oss, gemma). Labs that publish open weights (deepseek, qwen,
mistralai, z-ai, minimax, moonshotai, meta-llama) are skipped rather than attributed to a host we
cannot see in this format; the endpoints format below names the hosts. Also skipped:
`~author/...-latest` moving aliases and OpenRouter's own routers (`openrouter/auto`, price "-1" =
variable). `:batch`, `:free` and other tags become the variant; a `:free` offer is marked free
(Dimensions.free: priced 0 because the source says so, never the cheapest or routed to). The provider model id is the OpenRouter id without author and tag
(OpenRouter does not publish the first-party API id in this format).

The endpoints format (one JSON record per line, `endpoints: [...]`) names the host of each endpoint:
`provider_slug` maps through providers.provider_slug(); a suffix (`fireworks/fast`, `deepinfra/fp4`)
is the variant, and the endpoint's own `provider_model_id` is kept.

Prices are USD-per-token strings (`prompt`, `completion`, `input_cache_read`, `input_cache_write`,
`input_cache_write_1h`, `internal_reasoning`), or USD each (`request`, `web_search`); `overrides` are
context tiers (`min_prompt_tokens` and the rates above it; a rate a tier does not give is the base
one). A negative price means "variable" and skips the entry; any other non-numeric price is a
CatalogFormatError. Other fields (image, audio) are not read.

`discount` (endpoints only) is NOT applied: the endpoint's prices are already after it. In the captured
records `prompt / (1 - discount)` lands exactly on the list price (GLM 5.2: eight hosts at discounts
0.1 … 0.853, all 1.4/4.4 = Z.ai's own price; SambaNova Llama 3.3 70B 0.45/0.9 at 0.25 = its 0.6/1.2),
and `display_pricing` shows the same numbers, so `price × (1 - discount)` would discount twice.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from datasources.catalog.entries import CatalogFormatError, ModelIdentity, OfferEntry
from datasources.catalog.identity import resolve_offer
from datasources.catalog.litellm import merge_duplicates
from datasources.catalog.providers import split_provider_variant
from datasources.money import per_token_to_per_1m, price
from datasources.pricing import Dimensions, Price, Rates, Tier

FIRST_PARTY_AUTHORS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "x-ai": "xai",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "ai21": "ai21",
    "amazon": "bedrock",
    "inception": "inception",
    "morph": "morph",
}
OPEN_WEIGHT_SLUGS = re.compile(r"^(gpt-oss|gemma)")

# Endpoint provider slugs whose base is not the host (OpenRouter names Bedrock-hosted Claude this way).
ENDPOINT_OVERRIDES: dict[str, tuple[str, str]] = {
    "anthropic/claude-on-aws": ("bedrock", "claude-on-aws"),
}

FREE_TAG = "free"
# OpenRouter's pricing fields → Rates fields (USD per token, read as USD per 1M tokens).
TOKEN_PRICES: dict[str, str] = {
    "prompt": "input",
    "completion": "output",
    "input_cache_read": "cache_read",
    "input_cache_write": "cache_write",
    "input_cache_write_1h": "cache_write_1h",
    "internal_reasoning": "reasoning",
}
# … and the fees (USD each).
FEE_PRICES: dict[str, str] = {"request": "per_request", "web_search": "per_search"}


# --------------------------------------------------------------------------------------------
# /api/v1/models
# --------------------------------------------------------------------------------------------


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_openrouter(data: object, path: str) -> list[OfferEntry]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise CatalogFormatError(path, None, 'top level is not an object with a "data" list')
    offers = []
    for index, model in enumerate(data["data"]):
        offer = _model_offer(model, index, path)
        if offer is not None:
            offers.append(offer)
    return merge_duplicates(offers)


def _model_offer(model: object, index: int, path: str) -> OfferEntry | None:
    if not isinstance(model, dict) or not isinstance(model.get("id"), str):
        raise CatalogFormatError(path, f"data[{index}]", "model is not an object with a string id")
    model_id: str = model["id"]
    author, _, name = model_id.partition("/")
    tag = name.partition(":")[2]
    prices = _prices(model.get("pricing"), model_id, path, free=tag == FREE_TAG)
    provider = FIRST_PARTY_AUTHORS.get(author)
    if prices is None or provider is None or model_id.startswith("~"):
        return None
    found = resolve_offer("openrouter", model_id)
    if found is None or OPEN_WEIGHT_SLUGS.match(found.model.slug):
        return None
    top = _table(model.get("top_provider"))
    architecture = _table(model.get("architecture"))
    return OfferEntry(
        provider=provider,
        model=found.model,
        variant=found.variant,
        provider_model_id=name.split(":", 1)[0],
        input_per_1m=prices.input,
        output_per_1m=prices.output,
        context_window=_int(model.get("context_length"), model_id, path, "context_length"),
        max_output_tokens=_int(top.get("max_completion_tokens"), model_id, path, "max_completion_tokens"),
        supports_vision="image" in (architecture.get("input_modalities") or []),
        supports_tools="tools" in (model.get("supported_parameters") or []),
        source_key=model_id,
        dimensions=prices.dimensions,
    )


# --------------------------------------------------------------------------------------------
# Per-model endpoint lists
# --------------------------------------------------------------------------------------------


def parse_openrouter_endpoints(data: object, path: str) -> list[OfferEntry]:
    """`data` is a list of records `{model_slug, variant, endpoints: [...]}` (one per JSONL line)."""
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise CatalogFormatError(path, None, "endpoint records are not a list of objects")
    offers = []
    for index, record in enumerate(data):
        offers.extend(_record_offers(record, index, path))
    return merge_duplicates(offers)


def _record_offers(record: object, index: int, path: str) -> list[OfferEntry]:
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("model_slug"), str)
        or not isinstance(record.get("endpoints"), list)
    ):
        raise CatalogFormatError(path, f"record {index + 1}", "not an object with model_slug and endpoints")
    model_slug: str = record["model_slug"]
    tag = record.get("variant") if record.get("variant") not in (None, "", "standard") else None
    found = resolve_offer("openrouter", f"{model_slug}:{tag}" if tag else model_slug)
    if found is None:
        return []
    offers = []
    for endpoint in record["endpoints"]:
        offer = _endpoint_offer(endpoint, model_slug, found.model, found.variant, path, free=tag == FREE_TAG)
        if offer is not None:
            offers.append(offer)
    return offers


def _endpoint_offer(
    endpoint: object, model_slug: str, model: ModelIdentity, model_variant: str, path: str, free: bool
) -> OfferEntry | None:
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("provider_slug"), str):
        raise CatalogFormatError(path, model_slug, "endpoint is not an object with a provider_slug")
    source_slug: str = endpoint["provider_slug"]
    entry_name = f"{model_slug} @ {source_slug}"
    prices = _prices(endpoint.get("pricing"), entry_name, path, free=free)
    provider, suffix = ENDPOINT_OVERRIDES.get(source_slug) or split_provider_variant(source_slug)
    if prices is None or provider is None or endpoint.get("is_disabled") is True:
        return None
    inner = _table(endpoint.get("model"))
    return OfferEntry(
        provider=provider,
        model=model,
        variant="-".join(v for v in (suffix, model_variant) if v),
        provider_model_id=str(endpoint.get("provider_model_id") or model_slug),
        input_per_1m=prices.input,
        output_per_1m=prices.output,
        context_window=_int(endpoint.get("context_length"), entry_name, path, "context_length"),
        max_output_tokens=_int(endpoint.get("max_completion_tokens"), entry_name, path, "max_completion_tokens"),
        supports_vision="image" in (inner.get("input_modalities") or []),
        supports_tools="tools" in (endpoint.get("supported_parameters") or []),
        source_key=f"{endpoint.get('model_variant_slug') or model_slug}@{source_slug}",
        dimensions=prices.dimensions,
    )


# --------------------------------------------------------------------------------------------
# Files and values
# --------------------------------------------------------------------------------------------


def parse_openrouter_file(path: str | Path) -> list[OfferEntry]:
    """A models file (one JSON object with `data`) or an endpoints file (JSONL records): detected."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogFormatError(name, None, f"cannot read: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise CatalogFormatError(name, None, f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
        return parse_openrouter_endpoints(_jsonl(text, name), name)
    if isinstance(data, dict) and "data" in data:
        return parse_openrouter(data, name)
    return parse_openrouter_endpoints(data, name)


def _jsonl(text: str, path: str) -> list[object]:
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CatalogFormatError(path, f"line {lineno}", f"invalid JSON: {exc.msg}") from exc
    return records


def _prices(pricing: object, entry: str, path: str, free: bool = False) -> Price | None:
    """The whole price (per-token rates per 1M tokens, fees USD each); None when any price is negative
    (OpenRouter's "variable"). `discount` is not applied: the prices are already after it (module doc)."""
    if not isinstance(pricing, dict):
        raise CatalogFormatError(path, entry, "pricing is not an object")
    base = _rates(pricing, entry, path, "pricing")
    if base is None:
        return None
    fees: dict[str, Decimal] = {}
    for field, name in FEE_PRICES.items():
        amount = _amount(pricing, field, entry, path, "pricing")
        if amount is not None and amount < 0:
            return None
        if amount is not None:
            fees[name] = price(amount)
    overrides = pricing.get("overrides") or []
    if not isinstance(overrides, list):
        raise CatalogFormatError(path, entry, f"pricing.overrides is {overrides!r}, not a list")
    tiers = []
    for index, override in enumerate(overrides):
        where = f"pricing.overrides[{index}]"
        if not isinstance(override, dict):
            raise CatalogFormatError(path, entry, f"{where} is not an object")
        above = _int(override.get("min_prompt_tokens"), entry, path, f"{where}.min_prompt_tokens")
        if above is None:
            raise CatalogFormatError(path, entry, f"{where} has no min_prompt_tokens")
        rates = _rates(override, entry, path, where, base)
        if rates is None:
            return None
        tiers.append(Tier(above, rates))  # above min_prompt_tokens, as LiteLLM's "above 200k tokens"
    dimensions = Dimensions(
        cache_read=base.cache_read,
        cache_write=base.cache_write,
        cache_write_1h=base.cache_write_1h,
        reasoning=base.reasoning,
        tiers=tuple(sorted(tiers, key=lambda t: t.above)),
        free=free,
        **fees,
    )
    return Price(base.input, base.output, dimensions)


def _rates(table: dict[str, Any], entry: str, path: str, where: str, base: Rates | None = None) -> Rates | None:
    """The per-token rates of `table` (pricing, or one of its overrides, whose missing rates are
    `base`'s); None when one is negative. `prompt` and `completion` are required without a base."""
    values: dict[str, Decimal | None] = {}
    for field, name in TOKEN_PRICES.items():
        amount = _amount(table, field, entry, path, where, required=base is None and name in ("input", "output"))
        if amount is not None and amount < 0:
            return None
        values[name] = per_token_to_per_1m(amount) if amount is not None else getattr(base, name, None)
    return Rates(**values)  # type: ignore[arg-type]


def _amount(
    table: dict[str, Any], field: str, entry: str, path: str, where: str, required: bool = False
) -> Decimal | None:
    """A finite number from a string (or a JSON number); None when absent and not required."""
    raw = table.get(field)
    if raw is None and not required:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise CatalogFormatError(path, entry, f"{where}.{field} is {raw!r}, not a number")
    try:
        amount = Decimal(repr(raw) if isinstance(raw, float) else str(raw))
    except InvalidOperation as exc:
        raise CatalogFormatError(path, entry, f"{where}.{field} is {raw!r}, not a number") from exc
    if not amount.is_finite():
        raise CatalogFormatError(path, entry, f"{where}.{field} is {raw!r}, not finite")
    return amount


def _int(value: object, entry: str, path: str, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogFormatError(path, entry, f"{field} is {value!r}, not an integer")
    return value
