"""Importer for LiteLLM's price map (`model_prices_and_context_window.json`).

Chat entries only. Each entry becomes one OfferEntry for (our provider slug, canonical model, variant);
entries of aggregators and non-providers are skipped (see providers.py), as are entries without a
per-token input and output price (a price of 0 is a real price). A malformed file raises
CatalogFormatError and nothing is imported.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from datasources.catalog.entries import CatalogFormatError, OfferEntry
from datasources.catalog.identity import resolve_offer
from datasources.catalog.providers import provider_slug
from datasources.money import per_token_to_per_1m

# Key prefixes that route to a provider in LiteLLM but are not part of the provider's model id.
ROUTE_PREFIXES = frozenset(
    {"vertex_ai", "bedrock", "bedrock_mantle", "amazon-nova", "text-completion-openai", "text-completion-codestral"}
)
# LiteLLM providers that are a separate endpoint of one of our providers: their offers get a variant.
PROVIDER_VARIANTS = {"bedrock_mantle": "mantle", "codestral": "codestral-api"}
# Providers whose LiteLLM keys carry a region or deployment path before the model id.
PATH_PROVIDERS = frozenset({"bedrock", "azure"})


@dataclass
class LiteLLMParse:
    offers: list[OfferEntry]
    skipped: Counter[str] = field(default_factory=Counter)


def parse_litellm(data: object, path: str) -> list[OfferEntry]:
    return parse_litellm_report(data, path).offers


def parse_litellm_file(path: str | Path) -> list[OfferEntry]:
    return parse_litellm_report(load_json(path), str(path)).offers


def load_json(path: str | Path) -> object:
    """The parsed file; a syntax error or truncation is a CatalogFormatError naming file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogFormatError(str(path), None, f"cannot read: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogFormatError(
            str(path), None, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc


def parse_litellm_report(data: object, path: str) -> LiteLLMParse:
    """Offers plus a count of skipped entries by reason (for the seed build summary)."""
    if not isinstance(data, dict):
        raise CatalogFormatError(path, None, f"top level is {type(data).__name__}, not a JSON object")
    result = LiteLLMParse(offers=[])
    for key in sorted(data):
        entry = data[key]
        if not isinstance(entry, dict):
            raise CatalogFormatError(path, key, f"entry is {type(entry).__name__}, not an object")
        offer = _offer(key, entry, path, result.skipped)
        if offer is not None:
            result.offers.append(offer)
    merged = merge_duplicates(result.offers)
    result.skipped["duplicate key with equal price (merged)"] += len(result.offers) - len(merged)
    result.offers = merged
    return result


def _offer(key: str, entry: dict[str, object], path: str, skipped: Counter[str]) -> OfferEntry | None:
    if key == "sample_spec":
        skipped["sample_spec"] += 1
        return None
    source_provider, mode = entry.get("litellm_provider"), entry.get("mode")
    if not isinstance(source_provider, str) or not isinstance(mode, str):
        skipped["no litellm_provider or mode"] += 1
        return None
    if mode != "chat":
        skipped[f"mode {mode}"] += 1
        return None
    input_price = _price(entry, "input_cost_per_token", key, path)
    output_price = _price(entry, "output_cost_per_token", key, path)
    context = _int_field(entry, "max_input_tokens", key, path)
    if context is None:
        context = _int_field(entry, "max_tokens", key, path)
    max_output = _int_field(entry, "max_output_tokens", key, path)
    provider = provider_slug(source_provider)
    if provider is None:
        skipped[f"not a provider: {source_provider}"] += 1
        return None
    if input_price is None or output_price is None:
        skipped["no per-token input/output price"] += 1
        return None
    model_id = _strip_route(key, source_provider)
    found = resolve_offer(provider, model_id)
    if found is None:
        skipped["not an identifiable chat model"] += 1
        return None
    variant = "-".join(v for v in (PROVIDER_VARIANTS.get(source_provider, ""), found.variant) if v)
    return OfferEntry(
        provider=provider,
        model=found.model,
        variant=variant,
        provider_model_id=_api_model_id(provider, model_id),
        input_per_1m=input_price,
        output_per_1m=output_price,
        context_window=context,
        max_output_tokens=max_output,
        supports_vision=entry.get("supports_vision") is True,
        supports_tools=entry.get("supports_function_calling") is True or entry.get("supports_tool_choice") is True,
        source_key=key,
    )


def _price(entry: dict[str, object], name: str, key: str, path: str) -> Decimal | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CatalogFormatError(path, key, f"{name} is {value!r}, not a number")
    try:
        return per_token_to_per_1m(value)
    except ValueError as exc:
        raise CatalogFormatError(path, key, f"{name} is {value!r}: {exc}") from exc


def _int_field(entry: dict[str, object], name: str, key: str, path: str) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogFormatError(path, key, f"{name} is {value!r}, not an integer")
    if value < 0:
        raise CatalogFormatError(path, key, f"{name} is negative: {value}")
    return value


def _strip_route(key: str, source_provider: str) -> str:
    """`groq/llama-3.3-70b-versatile` → `llama-3.3-70b-versatile`; bare keys stay as they are."""
    head, sep, rest = key.partition("/")
    if sep and (head == source_provider or head in ROUTE_PREFIXES):
        return rest
    return key


def _api_model_id(provider: str, model_id: str) -> str:
    """The id sent to the provider: bedrock/azure region and pool path segments are not part of it."""
    if provider in PATH_PROVIDERS:
        return model_id.rsplit("/", 1)[-1]
    return model_id


# --------------------------------------------------------------------------------------------
# Duplicates (shared with the OpenRouter importer)
# --------------------------------------------------------------------------------------------


def merge_duplicates(offers: Iterable[OfferEntry]) -> list[OfferEntry]:
    """Unique (provider, model slug, variant), sorted.

    Entries landing on the same triple with the same prices are one offer (the preferred key wins:
    provider-prefixed, then shortest, then alphabetical). Entries with different prices are not
    dropped: each extra price gets its own variant derived from its key.
    """
    groups: dict[tuple[str, str, str], list[OfferEntry]] = {}
    for offer in offers:
        groups.setdefault(offer_key(offer), []).append(offer)
    result: dict[tuple[str, str, str], OfferEntry] = {}
    for key in sorted(groups):
        kept: list[OfferEntry] = []
        for offer in sorted(groups[key], key=_preference):
            if any(_same_price(offer, other) for other in kept):
                continue
            if kept:
                offer = replace(offer, variant=_distinct_variant(offer, result))
            kept.append(offer)
            result[offer_key(offer)] = offer
    return sorted(result.values(), key=offer_key)


def offer_key(offer: OfferEntry) -> tuple[str, str, str]:
    return (offer.provider, offer.model.slug, offer.variant)


def _preference(offer: OfferEntry) -> tuple[bool, int, str]:
    return ("/" not in offer.source_key, len(offer.source_key), offer.source_key)


def _same_price(a: OfferEntry, b: OfferEntry) -> bool:
    return a.input_per_1m == b.input_per_1m and a.output_per_1m == b.output_per_1m


def _distinct_variant(offer: OfferEntry, taken: dict[tuple[str, str, str], OfferEntry]) -> str:
    tag = re.sub(r"[^a-z0-9.]+", "-", offer.provider_model_id.lower()).strip("-")
    variant = f"{offer.variant}-{tag}" if offer.variant else tag
    candidate, n = variant, 2
    while (offer.provider, offer.model.slug, candidate) in taken:
        candidate, n = f"{variant}-{n}", n + 1
    return candidate
