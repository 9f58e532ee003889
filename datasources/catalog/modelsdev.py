"""Importer for the models.dev catalogue: a checkout of its `providers/` (and `models/`) trees.

`providers/<provider>/models/**/<model>.toml` is one model of one provider; the model id is the path
under `models/` without `.toml`. Prices are already USD per 1M tokens (`[cost]`: input, output, and
optional cache_read, cache_write, reasoning; context tiers as `[[cost.tiers]]`, or the legacy
`[cost.context_over_200k]` = one tier above 200,000 tokens). `base_model = "<lab>/<model>"` takes
metadata (limits, modalities, tool_call) from the top-level `models/<lab>/<model>.toml` where the
provider file lacks it; a base model carries no price. `[experimental.modes.*]` (e.g. "fast" modes) and
keys the models.dev schema drops (`input_audio`, `cached_input`, ...) are ignored.

Each priced model file of one of our providers becomes one OfferEntry; the models.dev directory name
maps to our provider slug through providers.provider_slug(). Skipped, and counted by reason: files of
aggregators, gateways, resellers, subscriptions and regional mirrors (see providers.py), of providers we
do not carry, files without `[cost]`, symlinks whose target is gone (real symlinks, or the one-line
files git writes for a symlink without symlink support), and ids that are not chat models. A malformed
file or value raises CatalogFormatError naming the file and nothing is imported.

A price of 0/0 stays 0/0 ("unpriced" by the price rule) unless the file says the model is free: an id
ending in `:free` or `-free`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from datasources.catalog.entries import CatalogFormatError, ModelIdentity, OfferEntry
from datasources.catalog.identity import resolve_offer
from datasources.catalog.litellm import merge_duplicates, offer_key
from datasources.catalog.providers import SOURCE_PROVIDER_NAMES, provider_slug
from datasources.money import price
from datasources.pricing import Dimensions, Rates, Tier

# Model id prefixes that name a serving partner of the provider: the prefix becomes the variant
# (Meta's Llama API serves Llama 4 on Cerebras and Groq hardware as `cerebras-llama-4-...`).
PARTNER_PREFIXES: dict[str, tuple[str, ...]] = {"llama": ("cerebras-", "groq-")}
# models.dev `family` values of models that are not chat models (embeddings, rerankers, speech, images)
# and Morph's `auto` router; a family containing "embed" is one too.
NON_CHAT_FAMILIES = frozenset(
    {"text-embedding", "bge", "whisper", "melotts", "flux", "imagen", "gpt-image", "stable-diffusion", "auto"}
)
LEGACY_TIER = "context_over_200k"
LEGACY_TIER_SIZE = 200_000
PRICE_KEYS = ("input", "output", "cache_read", "cache_write", "reasoning")
# What git writes instead of a symlink where symlinks are off: one line, the relative target.
LINK_STUB = re.compile(r"^[^\n=\[\]#\"']+\.toml\n?$")
MAX_LINK_HOPS = 8


@dataclass
class ModelsDevParse:
    offers: list[OfferEntry]
    skipped: Counter[str] = field(default_factory=Counter)
    # Every source key that landed on each offer's (provider, model slug, variant) before merging.
    sources: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    # The `base_model` each offer's file names (by source key): models.dev's own claim of identity.
    base_models: dict[str, str] = field(default_factory=dict)


def parse_modelsdev_dir(path: str | Path) -> list[OfferEntry]:
    return parse_modelsdev_report(path).offers


def parse_modelsdev_report(path: str | Path) -> ModelsDevParse:
    """Offers plus a count of skipped model files by reason. `path` is the checkout (holding
    `providers/` and `models/`) or its `providers/` directory."""
    root = Path(path)
    if not (root / "providers").is_dir() and root.name == "providers" and root.is_dir():
        root = root.parent
    providers_dir = root / "providers"
    if not providers_dir.is_dir():
        raise CatalogFormatError(str(path), None, "not a models.dev tree: no providers/ directory")
    result = ModelsDevParse(offers=[])
    bases: dict[str, dict[str, Any]] = {}
    for provider_dir in sorted(p for p in providers_dir.iterdir() if p.is_dir()):
        for file, model_id in _model_files(provider_dir / "models"):
            found = _offer(root, provider_dir.name, model_id, file, bases, result.skipped)
            if found is not None:
                offer, base_model = found
                result.offers.append(offer)
                if base_model is not None:
                    result.base_models[offer.source_key] = base_model
    for offer in result.offers:
        result.sources.setdefault(offer_key(offer), []).append(offer.source_key)
    merged = merge_duplicates(result.offers)
    result.skipped["duplicate model with equal price (merged)"] += len(result.offers) - len(merged)
    result.offers = merged
    return result


def _model_files(models_dir: Path) -> list[tuple[Path, str]]:
    """(file, model id) for every `.toml` under `models/`, sorted; symlinked directories are not entered."""
    found = []
    for dirpath, dirnames, filenames in os.walk(models_dir):
        dirnames.sort()
        for name in filenames:
            if name.endswith(".toml"):
                file = Path(dirpath) / name
                found.append((file, file.relative_to(models_dir).as_posix()[: -len(".toml")]))
    return sorted(found, key=lambda item: item[1])


def _offer(
    root: Path,
    provider_dir: str,
    model_id: str,
    file: Path,
    bases: dict[str, dict[str, Any]],
    skipped: Counter[str],
) -> tuple[OfferEntry, str | None] | None:
    """The file's offer and the base model it names; None when the file is skipped (counted)."""
    target = _follow(root, file, model_id)
    if target is None:
        skipped["dangling symlink"] += 1
        return None
    data = _load(target, model_id, shown=file)
    cost = _table(data, "cost", file, model_id)
    prices = _prices(cost, file, model_id) if cost is not None else None
    base = _base(root, data, file, model_id, bases)
    limit = _merged_table(data, base, "limit", file, model_id)
    modalities = _merged_table(data, base, "modalities", file, model_id)
    context = _count(limit, "context", file, model_id)
    max_output = _count(limit, "output", file, model_id)
    inputs = _strings(modalities, "input", file, model_id)
    outputs = _strings(modalities, "output", file, model_id)
    tool_call = data.get("tool_call", base.get("tool_call", False))
    if not isinstance(tool_call, bool):
        raise CatalogFormatError(str(file), model_id, f"tool_call is {tool_call!r}, not a boolean")
    family = data.get("family", base.get("family", ""))
    if not isinstance(family, str):
        raise CatalogFormatError(str(file), model_id, f"family is {family!r}, not a string")

    provider = provider_slug(provider_dir)
    if provider is None:
        known = provider_dir.lower() in SOURCE_PROVIDER_NAMES
        skipped[f"{'not a provider' if known else 'provider not carried'}: {provider_dir}"] += 1
        return None
    if prices is None:
        skipped["no [cost]"] += 1
        return None
    if "text" not in (inputs or ["text"]) or "text" not in (outputs or ["text"]):
        skipped["not text in and text out"] += 1
        return None
    if family in NON_CHAT_FAMILIES or "embed" in family:
        skipped["not a chat model (family)"] += 1
        return None
    found = identify(provider_dir, model_id)
    if found is None:
        skipped["not an identifiable chat model"] += 1
        return None
    _, model, variant = found
    base_rates, tiers = prices
    free = re.search(r"[:-]free$", model_id.strip(), flags=re.IGNORECASE) is not None
    offer = OfferEntry(
        provider=provider,
        model=model,
        variant=variant,
        provider_model_id=model_id,
        input_per_1m=base_rates.input,
        output_per_1m=base_rates.output,
        context_window=context,
        max_output_tokens=max_output,
        supports_vision="image" in (inputs or []),
        supports_tools=tool_call,
        source_key=f"{provider_dir}/{model_id}",
        dimensions=Dimensions(
            cache_read=base_rates.cache_read,
            cache_write=base_rates.cache_write,
            reasoning=base_rates.reasoning,
            tiers=tiers,
            free=free,
        ),
    )
    return offer, data.get("base_model")


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _follow(root: Path, file: Path, model_id: str) -> Path | None:
    """The file holding the model's TOML: `file`, or what its symlink (or link stub) points at; None
    when the target is gone."""
    current, inside = file, root.resolve()
    for _ in range(MAX_LINK_HOPS):
        if current.is_symlink():
            current = current.resolve()
        if not current.exists():
            return None
        if current != file and not current.is_relative_to(inside):
            raise CatalogFormatError(str(file), model_id, f"links outside the tree, to {current}")
        text = _read(current, model_id, shown=file)
        if LINK_STUB.match(text) is None:
            return current
        current = (current.parent / text.strip()).resolve()
    raise CatalogFormatError(str(file), model_id, f"more than {MAX_LINK_HOPS} links in a row")


def _read(path: Path, entry: str | None, shown: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogFormatError(str(shown), entry, f"cannot read {path}: {exc}") from exc


def _load(path: Path, entry: str | None, shown: Path) -> dict[str, Any]:
    """The parsed TOML; a syntax error is a CatalogFormatError naming the file and (in the reason) the line."""
    text = _read(path, entry, shown)
    try:
        return tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        where = "" if path == shown else f" (in {path})"
        raise CatalogFormatError(str(shown), entry, f"invalid TOML{where}: {exc}") from exc


def _base(
    root: Path, data: dict[str, Any], file: Path, model_id: str, cache: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The base model's metadata (`base_model = "<lab>/<model>"`), without its `base_model_omit` keys."""
    name = data.get("base_model")
    if name is None:
        return {}
    if not isinstance(name, str) or not re.fullmatch(r"[^/\s]+/[^\s]+", name) or ".." in name:
        raise CatalogFormatError(str(file), model_id, f"base_model is {name!r}, not '<lab>/<model>'")
    if name not in cache:
        base_file = root / "models" / f"{name}.toml"
        if not base_file.is_file():
            raise CatalogFormatError(str(file), model_id, f"base_model {name!r}: no file models/{name}.toml")
        cache[name] = _load(base_file, name, shown=base_file)
    base = {k: dict(v) if isinstance(v, dict) else v for k, v in cache[name].items()}
    omit = data.get("base_model_omit", [])
    if not isinstance(omit, list) or not all(isinstance(o, str) for o in omit):
        raise CatalogFormatError(str(file), model_id, f"base_model_omit is {omit!r}, not a list of strings")
    for dotted in omit:
        head, _, rest = dotted.partition(".")
        if not rest:
            base.pop(head, None)
        elif isinstance(base.get(head), dict):
            base[head].pop(rest, None)
    return base


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _table(data: dict[str, Any], name: str, file: Path, model_id: str) -> dict[str, Any] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CatalogFormatError(str(file), model_id, f"{name} is {value!r}, not a table")
    return value


def _merged_table(data: dict[str, Any], base: dict[str, Any], name: str, file: Path, model_id: str) -> dict[str, Any]:
    """The base model's table with the file's own keys over it."""
    return {**(_table(base, name, file, model_id) or {}), **(_table(data, name, file, model_id) or {})}


def _prices(cost: dict[str, Any], file: Path, model_id: str) -> tuple[Rates, tuple[Tier, ...]]:
    base = _rates(cost, "cost", None, file, model_id)
    tiers: list[Tier] = []
    raw_tiers = cost.get("tiers")
    if raw_tiers is not None:
        if not isinstance(raw_tiers, list):
            raise CatalogFormatError(str(file), model_id, f"cost.tiers is {raw_tiers!r}, not an array of tables")
        for index, raw in enumerate(raw_tiers):
            where = f"cost.tiers[{index}]"
            if not isinstance(raw, dict):
                raise CatalogFormatError(str(file), model_id, f"{where} is {raw!r}, not a table")
            tiers.append(
                Tier(_tier_size(raw.get("tier"), where, file, model_id), _rates(raw, where, base, file, model_id))
            )
    elif (legacy := cost.get(LEGACY_TIER)) is not None:
        if not isinstance(legacy, dict):
            raise CatalogFormatError(str(file), model_id, f"cost.{LEGACY_TIER} is {legacy!r}, not a table")
        tiers.append(Tier(LEGACY_TIER_SIZE, _rates(legacy, f"cost.{LEGACY_TIER}", base, file, model_id)))
    sizes = [t.above for t in tiers]
    if len(set(sizes)) != len(sizes):
        raise CatalogFormatError(str(file), model_id, f"cost.tiers sizes are not unique: {sizes}")
    return base, tuple(sorted(tiers, key=lambda t: t.above))


def _rates(table: dict[str, Any], where: str, base: Rates | None, file: Path, model_id: str) -> Rates:
    """The rates of `[cost]` (input and output required) or of a tier (a rate it does not give: the base's,
    as the LiteLLM importer reads tiers)."""
    values = {key: _price(table.get(key), f"{where}.{key}", file, model_id) for key in PRICE_KEYS}
    input_price, output_price = values.pop("input"), values.pop("output")
    if base is not None:
        input_price = base.input if input_price is None else input_price
        values = {key: getattr(base, key) if value is None else value for key, value in values.items()}
        output_price = base.output if output_price is None else output_price
    if input_price is None or output_price is None:
        missing = " and ".join(k for k, v in (("input", input_price), ("output", output_price)) if v is None)
        raise CatalogFormatError(str(file), model_id, f"{where} has no {missing} price")
    return Rates(input=input_price, output=output_price, **values)


def _price(value: object, name: str, file: Path, model_id: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise CatalogFormatError(str(file), model_id, f"{name} is {value!r}, not a number")
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise CatalogFormatError(str(file), model_id, f"{name} is {value}, not a non-negative finite number")
    return price(amount)


def _tier_size(tier: object, where: str, file: Path, model_id: str) -> int:
    if not isinstance(tier, dict):
        raise CatalogFormatError(str(file), model_id, f"{where}.tier is {tier!r}, not a table")
    kind, size = tier.get("type", "context"), tier.get("size")
    if kind != "context":
        raise CatalogFormatError(str(file), model_id, f"{where}.tier.type is {kind!r}; only 'context' is known")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise CatalogFormatError(str(file), model_id, f"{where}.tier.size is {size!r}, not a positive integer")
    return size


def _strings(table: dict[str, Any], name: str, file: Path, model_id: str) -> list[str] | None:
    value = table.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CatalogFormatError(str(file), model_id, f"modalities.{name} is {value!r}, not a list of strings")
    return value


def _count(table: dict[str, Any], name: str, file: Path, model_id: str) -> int | None:
    value = table.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CatalogFormatError(str(file), model_id, f"limit.{name} is {value!r}, not a non-negative integer")
    return value


def identify(provider_dir: str, model_id: str) -> tuple[str, ModelIdentity, str] | None:
    """Our provider slug, the canonical model and the variant of a models.dev provider model; None when
    the directory is not a provider we carry or the id is not an identifiable chat model."""
    provider = provider_slug(provider_dir)
    if provider is None:
        return None
    partner, name = _partner(provider_dir, model_id)
    found = resolve_offer(provider, name)
    if found is None:
        return None
    return provider, found.model, "-".join(v for v in (partner, found.variant) if v)


def _partner(provider_dir: str, model_id: str) -> tuple[str, str]:
    """`cerebras-llama-4-scout-...` at Meta's Llama API → ("cerebras", "llama-4-scout-...")."""
    for prefix in PARTNER_PREFIXES.get(provider_dir, ()):
        if model_id.startswith(prefix):
            return prefix.rstrip("-"), model_id[len(prefix) :]
    return "", model_id
