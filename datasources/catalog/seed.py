"""The seed catalog shipped with the service (seed.json), read at first start without network.

Each offer is one JSON object. Money is a string of its own digits; the dimensions beyond input and
output are written only where priced (`cache_read_per_1m`, `cache_write_per_1m`,
`cache_write_1h_per_1m`, `reasoning_per_1m` in USD per 1M tokens, `per_request` and `per_search` in
USD each, `tiers` as the list pricing.tiers_to_json writes, `free` only when true), so an absent key
is None and the file stays small.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

from datasources.catalog.entries import CatalogFormatError, ModelIdentity, OfferEntry
from datasources.pricing import Dimensions, tiers_from_json, tiers_to_json

SEED_PATH = Path(__file__).with_name("seed.json")
LICENSE = "MIT, Copyright (c) 2023 Berri AI"
# seed.json key → Dimensions field, for the optional money dimensions.
DIMENSION_KEYS = {
    "cache_read_per_1m": "cache_read",
    "cache_write_per_1m": "cache_write",
    "cache_write_1h_per_1m": "cache_write_1h",
    "reasoning_per_1m": "reasoning",
    "per_request": "per_request",
    "per_search": "per_search",
}


def offer_to_dict(offer: OfferEntry) -> dict[str, object]:
    model = offer.model
    return {
        "provider": offer.provider,
        "model": {
            "slug": model.slug,
            "display_name": model.display_name,
            "family": model.family,
            "params_b": None if model.params_b is None else str(model.params_b),
            "is_benchmark": model.is_benchmark,
        },
        "variant": offer.variant,
        "provider_model_id": offer.provider_model_id,
        "input_per_1m": _text(offer.input_per_1m),
        "output_per_1m": _text(offer.output_per_1m),
        **_dimensions_to_dict(offer.dimensions),
        "context_window": offer.context_window,
        "max_output_tokens": offer.max_output_tokens,
        "supports_vision": offer.supports_vision,
        "supports_tools": offer.supports_tools,
        "source_key": offer.source_key,
    }


def offer_from_dict(item: dict[str, object]) -> OfferEntry:
    model = item["model"]
    assert isinstance(model, dict)
    params = model.get("params_b")
    return OfferEntry(
        provider=str(item["provider"]),
        model=ModelIdentity(
            slug=str(model["slug"]),
            display_name=str(model["display_name"]),
            family=str(model["family"]),
            params_b=None if params is None else Decimal(str(params)),
            is_benchmark=bool(model["is_benchmark"]),
        ),
        variant=str(item["variant"]),
        provider_model_id=str(item["provider_model_id"]),
        input_per_1m=Decimal(str(item["input_per_1m"])),
        output_per_1m=Decimal(str(item["output_per_1m"])),
        context_window=_optional_int(item.get("context_window")),
        max_output_tokens=_optional_int(item.get("max_output_tokens")),
        supports_vision=bool(item["supports_vision"]),
        supports_tools=bool(item["supports_tools"]),
        source_key=str(item["source_key"]),
        dimensions=_dimensions_from_dict(item),
    )


def _text(value: Decimal) -> str:
    return format(value, "f")


def _dimensions_to_dict(dimensions: Dimensions) -> dict[str, object]:
    out: dict[str, object] = {
        key: _text(value) for key, name in DIMENSION_KEYS.items() if (value := getattr(dimensions, name)) is not None
    }
    tiers = tiers_to_json(dimensions.tiers)
    if tiers is not None:
        out["tiers"] = json.loads(tiers)  # a nested list in the file, the same form as the column
    if dimensions.free:
        out["free"] = True
    return out


def _dimensions_from_dict(item: dict[str, object]) -> Dimensions:
    values = {name: _decimal(item[key]) for key, name in DIMENSION_KEYS.items() if item.get(key) is not None}
    tiers = item.get("tiers")
    if tiers is not None and not isinstance(tiers, list):
        raise ValueError(f"tiers is not a list: {tiers!r}")
    free = item.get("free", False)
    if not isinstance(free, bool):
        raise ValueError(f"free is not a boolean: {free!r}")
    return Dimensions(
        **values,
        tiers=tiers_from_json(json.dumps(tiers)) if tiers else (),
        free=free,
    )


def _decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f"not a decimal string: {value!r}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"not finite: {value!r}")
    return amount


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not an integer: {value!r}")
    return value


def load_seed(path: str | Path = SEED_PATH) -> list[OfferEntry]:
    name = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogFormatError(name, None, f"cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogFormatError(name, None, f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("offers"), list):
        raise CatalogFormatError(name, None, 'not an object with an "offers" list')
    offers = []
    for index, item in enumerate(data["offers"]):
        try:
            offers.append(offer_from_dict(item))
        except (KeyError, TypeError, ValueError, AssertionError, InvalidOperation) as exc:
            raise CatalogFormatError(name, f"offers[{index}]", f"malformed offer: {exc!r}") from exc
    return offers
