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
`~author/...-latest` moving aliases, OpenRouter's own routers (`openrouter/auto`, price "-1" =
variable), and `:free` models (OpenRouter-subsidised, not a provider's price). `:batch` and other
tags become the variant. The provider model id is the OpenRouter id without author and tag
(OpenRouter does not publish the first-party API id in this format).

The endpoints format (one JSON record per line, `endpoints: [...]`) names the host of each endpoint:
`provider_slug` maps through providers.provider_slug(); a suffix (`fireworks/fast`, `deepinfra/fp4`)
is the variant, and the endpoint's own `provider_model_id` is kept.

Prices are USD-per-token strings. A negative price means "variable" and skips the entry; any other
non-numeric price is a CatalogFormatError.
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
from datasources.money import per_token_to_per_1m

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

SKIPPED_TAGS = frozenset({"free"})


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
    prices = _prices(model.get("pricing"), model_id, path)
    author, _, name = model_id.partition("/")
    provider = FIRST_PARTY_AUTHORS.get(author)
    if prices is None or provider is None or model_id.startswith("~"):
        return None
    found = resolve_offer("openrouter", model_id)
    if found is None or found.variant in SKIPPED_TAGS or OPEN_WEIGHT_SLUGS.match(found.model.slug):
        return None
    top = _table(model.get("top_provider"))
    architecture = _table(model.get("architecture"))
    return OfferEntry(
        provider=provider,
        model=found.model,
        variant=found.variant,
        provider_model_id=name.split(":", 1)[0],
        input_per_1m=prices[0],
        output_per_1m=prices[1],
        context_window=_int(model.get("context_length"), model_id, path, "context_length"),
        max_output_tokens=_int(top.get("max_completion_tokens"), model_id, path, "max_completion_tokens"),
        supports_vision="image" in (architecture.get("input_modalities") or []),
        supports_tools="tools" in (model.get("supported_parameters") or []),
        source_key=model_id,
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
    if found is None or found.variant in SKIPPED_TAGS:
        return []
    offers = []
    for endpoint in record["endpoints"]:
        offer = _endpoint_offer(endpoint, model_slug, found.model, found.variant, path)
        if offer is not None:
            offers.append(offer)
    return offers


def _endpoint_offer(
    endpoint: object, model_slug: str, model: ModelIdentity, model_variant: str, path: str
) -> OfferEntry | None:
    if not isinstance(endpoint, dict) or not isinstance(endpoint.get("provider_slug"), str):
        raise CatalogFormatError(path, model_slug, "endpoint is not an object with a provider_slug")
    source_slug: str = endpoint["provider_slug"]
    entry_name = f"{model_slug} @ {source_slug}"
    prices = _prices(endpoint.get("pricing"), entry_name, path)
    provider, suffix = ENDPOINT_OVERRIDES.get(source_slug) or split_provider_variant(source_slug)
    if prices is None or provider is None or endpoint.get("is_disabled") is True:
        return None
    inner = _table(endpoint.get("model"))
    return OfferEntry(
        provider=provider,
        model=model,
        variant="-".join(v for v in (suffix, model_variant) if v),
        provider_model_id=str(endpoint.get("provider_model_id") or model_slug),
        input_per_1m=prices[0],
        output_per_1m=prices[1],
        context_window=_int(endpoint.get("context_length"), entry_name, path, "context_length"),
        max_output_tokens=_int(endpoint.get("max_completion_tokens"), entry_name, path, "max_completion_tokens"),
        supports_vision="image" in (inner.get("input_modalities") or []),
        supports_tools="tools" in (endpoint.get("supported_parameters") or []),
        source_key=f"{endpoint.get('model_variant_slug') or model_slug}@{source_slug}",
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


def _prices(pricing: object, entry: str, path: str) -> tuple[Decimal, Decimal] | None:
    """(input, output) per 1M tokens; None when a price is negative (OpenRouter's "variable")."""
    if not isinstance(pricing, dict):
        raise CatalogFormatError(path, entry, "pricing is not an object")
    values = []
    for field in ("prompt", "completion"):
        raw = pricing.get(field)
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise CatalogFormatError(path, entry, f"pricing.{field} is {raw!r}, not a number")
        try:
            amount = Decimal(str(raw))
        except InvalidOperation as exc:
            raise CatalogFormatError(path, entry, f"pricing.{field} is {raw!r}, not a number") from exc
        if not amount.is_finite():
            raise CatalogFormatError(path, entry, f"pricing.{field} is {raw!r}, not finite")
        if amount < 0:
            return None
        values.append(per_token_to_per_1m(raw))
    return values[0], values[1]


def _int(value: object, entry: str, path: str, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogFormatError(path, entry, f"{field} is {value!r}, not an integer")
    return value
