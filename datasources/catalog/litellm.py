"""Importer for LiteLLM's price map (`model_prices_and_context_window.json`).

Chat entries only. Each entry becomes one OfferEntry for (our provider slug, canonical model, variant);
entries of aggregators and non-providers are skipped (see providers.py), as are entries without a
per-token input and output price (a price of 0 is kept: datasources/pricing.py calls it unpriced).
A malformed file raises CatalogFormatError and nothing is imported.

Every price key of an entry is read by one grammar (PRICE_KEY):

    key = DIMENSION [ "_above_" N "k_tokens" ] [ "_" SERVICE ]

DIMENSION is one of DIMENSION_KEYS (input, output, cache read and write, the 1-hour cache write,
reasoning, the fee per request, the fee per web search); `_above_<N>k_tokens` is a context tier above a
prompt of N × 1000 tokens; SERVICE is a service tier (`batches`, `priority`, `flex`). Keys outside the
grammar (audio, image, `_above_12hr` cache writes, `_ultrafast`...) are not read. Per-token costs
become USD per 1M tokens; the fees stay USD each. A context tier inherits from the entry's base every
rate it does not give (LiteLLM's own cost calculation does the same).

A service tier is an offer of its own: besides the standard offer (priced from the keys without a
service suffix), an entry with `_priority` keys gives an offer of variant `priority` (`batch` for
`_batches`, `flex`), priced at those keys, each (dimension, context tier) the service tier does not
price inheriting the standard one.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from datasources.catalog.entries import CatalogFormatError, OfferEntry
from datasources.catalog.identity import resolve_offer
from datasources.catalog.providers import provider_slug
from datasources.money import per_token_to_per_1m, price
from datasources.pricing import Dimensions, Rates, Tier

# Key prefixes that route to a provider in LiteLLM but are not part of the provider's model id.
ROUTE_PREFIXES = frozenset(
    {"vertex_ai", "bedrock", "bedrock_mantle", "amazon-nova", "text-completion-openai", "text-completion-codestral"}
)
# LiteLLM providers that are a separate endpoint of one of our providers: their offers get a variant.
PROVIDER_VARIANTS = {"bedrock_mantle": "mantle", "codestral": "codestral-api"}
# Providers whose LiteLLM keys carry a region or deployment path before the model id.
PATH_PROVIDERS = frozenset({"bedrock", "azure"})

# The price grammar (see the module docstring): LiteLLM's name of each dimension → ours.
DIMENSION_KEYS: dict[str, str] = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "output_cost_per_reasoning_token": "reasoning",
    "input_cost_per_request": "per_request",
    "search_context_cost_per_query": "per_search",
}
# Other names of a dimension, read only where the entry lacks the name above (41 DeepSeek-style entries).
DIMENSION_ALIASES: dict[str, str] = {"input_cost_per_token_cache_hit": "cache_read"}
# Service tiers: key suffix → the variant of the offer they price.
SERVICE_TIERS: dict[str, str] = {"batches": "batch", "priority": "priority", "flex": "flex"}
FEES = frozenset({"per_request", "per_search"})  # USD each; one flat fee, no context tiers
SEARCH_CONTEXT_SIZE = "search_context_size_medium"  # of search_context_cost_per_query's low/medium/high
RATES = tuple(f.name for f in fields(Rates))
# A cache write priced 0 (DeepSeek, Z.ai, Tencent entries, whose input is priced) is LiteLLM's way of
# saying writes are not charged apart: a cache miss is billed as input. Read as not priced apart (None),
# so it falls back to input rather than making written tokens free, and equal keys still merge.
FREE_WRITE_MEANS_UNPRICED = frozenset({"cache_write", "cache_write_1h"})

_NAMES = sorted({*DIMENSION_KEYS, *DIMENSION_ALIASES}, key=len, reverse=True)
PRICE_KEY = re.compile(
    rf"(?P<dimension>{'|'.join(map(re.escape, _NAMES))})"
    r"(?:_above_(?P<thousands>[0-9]+)k_tokens)?"
    rf"(?:_(?P<service>{'|'.join(SERVICE_TIERS)}))?"
)
# (service variant, "" for standard; context tier threshold in tokens, None for the base; dimension)
Cell = tuple[str, int | None, str]


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
        result.offers.extend(_offers(key, entry, path, result.skipped))
    merged = merge_duplicates(result.offers)
    result.skipped["duplicate key with equal price (merged)"] += len(result.offers) - len(merged)
    result.offers = merged
    return result


def _offers(key: str, entry: dict[str, object], path: str, skipped: Counter[str]) -> list[OfferEntry]:
    """The entry's standard offer, then one per service tier it prices; none when it is skipped."""
    if key == "sample_spec":
        skipped["sample_spec"] += 1
        return []
    source_provider, mode = entry.get("litellm_provider"), entry.get("mode")
    if not isinstance(source_provider, str) or not isinstance(mode, str):
        skipped["no litellm_provider or mode"] += 1
        return []
    if mode != "chat":
        skipped[f"mode {mode}"] += 1
        return []
    table = _price_table(entry, key, path)
    context = _int_field(entry, "max_input_tokens", key, path)
    if context is None:
        context = _int_field(entry, "max_tokens", key, path)
    max_output = _int_field(entry, "max_output_tokens", key, path)
    provider = provider_slug(source_provider)
    if provider is None:
        skipped[f"not a provider: {source_provider}"] += 1
        return []
    if ("", None, "input") not in table or ("", None, "output") not in table:
        skipped["no per-token input/output price"] += 1
        return []
    model_id = _strip_route(key, source_provider)
    found = resolve_offer(provider, model_id)
    if found is None:
        skipped["not an identifiable chat model"] += 1
        return []
    variant = "-".join(v for v in (PROVIDER_VARIANTS.get(source_provider, ""), found.variant) if v)
    standard = OfferEntry(
        provider=provider,
        model=found.model,
        variant=variant,
        provider_model_id=_api_model_id(provider, model_id),
        input_per_1m=Decimal(0),
        output_per_1m=Decimal(0),
        context_window=context,
        max_output_tokens=max_output,
        supports_vision=entry.get("supports_vision") is True,
        supports_tools=entry.get("supports_function_calling") is True or entry.get("supports_tool_choice") is True,
        source_key=key,
    )
    services = sorted({service for service, _, _ in table if service})
    return [
        _priced(
            replace(standard, variant="-".join(v for v in (variant, service) if v)),
            _service_view(table, service),
        )
        for service in ("", *services)
    ]


def _service_view(table: dict[Cell, Decimal], service: str) -> dict[tuple[int | None, str], Decimal]:
    """The standard cells, overlaid by the service tier's own (a dimension it does not price inherits)."""
    view = {(above, dim): value for (s, above, dim), value in table.items() if s == ""}
    if service:
        view.update({(above, dim): value for (s, above, dim), value in table.items() if s == service})
    return view


def _priced(offer: OfferEntry, view: dict[tuple[int | None, str], Decimal]) -> OfferEntry:
    base = {name: view.get((None, name)) for name in RATES}
    tiers = tuple(
        Tier(above, Rates(**{name: view.get((above, name), base[name]) for name in RATES}))  # type: ignore[arg-type]
        for above in sorted({above for above, _ in view if above is not None})
    )
    dimensions = Dimensions(
        cache_read=base["cache_read"],
        cache_write=base["cache_write"],
        cache_write_1h=base["cache_write_1h"],
        reasoning=base["reasoning"],
        per_request=view.get((None, "per_request")),
        per_search=view.get((None, "per_search")),
        tiers=tiers,
    )
    input_price, output_price = base["input"], base["output"]
    assert input_price is not None and output_price is not None  # checked by the caller
    return replace(offer, input_per_1m=input_price, output_per_1m=output_price, dimensions=dimensions)


def _price_table(entry: dict[str, object], key: str, path: str) -> dict[Cell, Decimal]:
    """Every price of the entry the grammar reads, by (service, context tier, dimension)."""
    table: dict[Cell, Decimal] = {}
    aliased: dict[Cell, Decimal] = {}
    for name in sorted(entry):
        match = PRICE_KEY.fullmatch(name)
        if match is None:
            continue
        source_name = match["dimension"]
        dimension = DIMENSION_KEYS.get(source_name) or DIMENSION_ALIASES[source_name]
        thousands = match["thousands"]
        if dimension in FEES and thousands is not None:
            continue  # a fee above a prompt size: not a price Dimensions can hold (none in the file)
        value = _fee(entry, name, key, path) if dimension in FEES else _price(entry, name, key, path)
        if value is None or (dimension in FREE_WRITE_MEANS_UNPRICED and value == 0):
            continue
        cell = (
            SERVICE_TIERS.get(match["service"] or "", ""),
            None if thousands is None else int(thousands) * 1000,
            dimension,
        )
        (table if source_name in DIMENSION_KEYS else aliased)[cell] = value
    for cell, value in aliased.items():
        table.setdefault(cell, value)
    return table


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


def _fee(entry: dict[str, object], name: str, key: str, path: str) -> Decimal | None:
    """A fee in USD each; `search_context_cost_per_query` is an object by search context size."""
    value = entry.get(name)
    if isinstance(value, dict) and name.startswith("search_context_cost_per_query"):
        if SEARCH_CONTEXT_SIZE not in value:
            raise CatalogFormatError(path, key, f"{name} has no {SEARCH_CONTEXT_SIZE}")
        name, value = f"{name}.{SEARCH_CONTEXT_SIZE}", value[SEARCH_CONTEXT_SIZE]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CatalogFormatError(path, key, f"{name} is {value!r}, not a number")
    try:
        amount = Decimal(repr(value))
    except InvalidOperation as exc:  # pragma: no cover - repr of an int or float always parses
        raise CatalogFormatError(path, key, f"{name} is {value!r}, not a number") from exc
    if not amount.is_finite() or amount < 0:
        raise CatalogFormatError(path, key, f"{name} is {value!r}: not a non-negative finite number")
    return price(amount)


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

    Entries landing on the same triple with the same price (every dimension) are one offer (the preferred key wins:
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
    return a.price == b.price  # every dimension, not only input and output


def _distinct_variant(offer: OfferEntry, taken: dict[tuple[str, str, str], OfferEntry]) -> str:
    tag = re.sub(r"[^a-z0-9.]+", "-", offer.provider_model_id.lower()).strip("-")
    variant = f"{offer.variant}-{tag}" if offer.variant else tag
    candidate, n = variant, 2
    while (offer.provider, offer.model.slug, candidate) in taken:
        candidate, n = f"{variant}-{n}", n + 1
    return candidate
