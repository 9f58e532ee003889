"""Price history files: LiteLLM's weekly history (shared/data/price_history.csv: observed_at,
source_provider, model_key, mode, input/output_per_1m, event) and models.dev's
(shared/data/models_dev_price_history.csv: observed_at, provider, model_id, input/output/cache_read/
cache_write/reasoning_per_1m, tiers, event), told apart by their header, read into groups of rows by
commit time. A malformed file is a SourceError naming the line.

LiteLLM rows map to offers the way the LiteLLM importer maps keys: provider_slug(source_provider), then
resolve_offer(provider, key without its provider prefix); models.dev rows as the models.dev importer maps
files. Rows that do not resolve, or are not chat, are skipped. When several keys land on one offer, the
key the importer prefers owns it (so two keys never fight over one price). `delisted`, or a row without
both an input and an output price, stands for the offer being gone.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from datasources.catalog import modelsdev
from datasources.catalog.entries import OfferEntry
from datasources.catalog.identity import resolve_offer
from datasources.catalog.litellm import PROVIDER_VARIANTS, _api_model_id, _strip_route
from datasources.catalog.providers import provider_slug
from datasources.pricing import Dimensions, Rates, Tier
from datasources.sources.base import SourceError

COLUMNS = ("observed_at", "source_provider", "model_key", "mode", "input_per_1m", "output_per_1m", "event")
MODELSDEV_COLUMNS = (
    "observed_at",
    "provider",
    "model_id",
    "input_per_1m",
    "output_per_1m",
    "cache_read_per_1m",
    "cache_write_per_1m",
    "reasoning_per_1m",
    "tiers",
    "event",
)
# The catalogue a history file comes from: the source its rows are filed under when backfilled.
SOURCE_OF_FORMAT = {"litellm": "litellm", "modelsdev": "modelsdev"}
EVENTS = frozenset({"initial", "listed", "changed", "delisted"})
OfferKey = tuple[str, str, str]


@dataclass(frozen=True)
class ReplayRow:
    at: datetime
    key: OfferKey
    entry: OfferEntry | None  # None: delisted


@dataclass(frozen=True)
class ReplayGroup:
    at: datetime
    rows: tuple[ReplayRow, ...]


def history_format(path: str | Path) -> str:
    """`litellm` or `modelsdev`, from the file's header; anything else is a SourceError."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    if all(c in header for c in COLUMNS):
        return "litellm"
    if all(c in header for c in MODELSDEV_COLUMNS):
        return "modelsdev"
    missing = [c for c in COLUMNS if c not in header]
    raise SourceError(f"{path}: not a price history CSV (missing columns: {', '.join(missing)})")


def load_history(path: str | Path) -> list[ReplayGroup]:
    """The resolvable chat rows, grouped by observed_at in time order; a malformed file is a SourceError
    naming the line."""
    parse = _modelsdev_row if history_format(path) == "modelsdev" else _row
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = [row for row in (parse(raw, str(path), reader.line_num) for raw in reader) if row is not None]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    owners: dict[OfferKey, str] = {}
    for source_key, row in rows:
        current = owners.get(row.key)
        if current is None or _preference(source_key) < _preference(current):
            owners[row.key] = source_key
    groups: dict[datetime, list[ReplayRow]] = defaultdict(list)
    for source_key, row in rows:
        if owners[row.key] == source_key:
            groups[row.at].append(row)
    return [ReplayGroup(at, tuple(groups[at])) for at in sorted(groups)]


def _preference(source_key: str) -> tuple[bool, int, str]:
    """As the LiteLLM importer prefers among keys of one offer: provider-prefixed, shortest, alphabetical."""
    return ("/" not in source_key, len(source_key), source_key)


def _row(raw: dict[str, str | None], path: str, line: int) -> tuple[str, ReplayRow] | None:
    where = f"{path} line {line}"
    if any(raw.get(c) is None for c in COLUMNS):
        raise SourceError(f"{where}: too few fields")
    event, key, source_provider = raw["event"], raw["model_key"] or "", raw["source_provider"] or ""
    if event not in EVENTS:
        raise SourceError(f"{where}: unknown event {event!r}")
    try:
        at = datetime.fromisoformat(raw["observed_at"] or "")
    except ValueError:
        raise SourceError(f"{where}: observed_at {raw['observed_at']!r} is not a timestamp") from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    if raw["mode"] != "chat":
        return None
    provider = provider_slug(source_provider)
    if provider is None:
        return None
    model_id = _strip_route(key, source_provider)
    found = resolve_offer(provider, model_id)
    if found is None:
        return None
    variant = "-".join(v for v in (PROVIDER_VARIANTS.get(source_provider, ""), found.variant) if v)
    offer_key = (provider, found.model.slug, variant)
    if event == "delisted" or not raw["input_per_1m"] or not raw["output_per_1m"]:
        # Without both prices the importer would not list it either: the offer is unavailable.
        return key, ReplayRow(at, offer_key, None)
    try:
        input_price, output_price = Decimal(raw["input_per_1m"] or ""), Decimal(raw["output_per_1m"] or "")
    except InvalidOperation:
        raise SourceError(
            f"{where}: prices {raw['input_per_1m']!r}, {raw['output_per_1m']!r} are not numbers"
        ) from None
    if not (input_price.is_finite() and output_price.is_finite()) or input_price < 0 or output_price < 0:
        raise SourceError(f"{where}: prices must be finite and not negative")
    entry = OfferEntry(
        provider=provider,
        model=found.model,
        variant=variant,
        provider_model_id=_api_model_id(provider, model_id),
        input_per_1m=input_price,
        output_per_1m=output_price,
        context_window=None,
        max_output_tokens=None,
        supports_vision=False,
        supports_tools=False,
        source_key=key,
    )
    return key, ReplayRow(at, offer_key, entry)


def _timestamp(raw: str | None, where: str) -> datetime:
    try:
        at = datetime.fromisoformat((raw or "").replace("Z", "+00:00"))
    except ValueError:
        raise SourceError(f"{where}: observed_at {raw!r} is not a timestamp") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _decimal(raw: object, name: str, where: str) -> Decimal | None:
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise SourceError(f"{where}: {name} {raw!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise SourceError(f"{where}: {name} must be finite and not negative, got {raw!r}")
    return value


def _tiers(raw: str | None, base: Rates, where: str) -> tuple[Tier, ...]:
    """`[{"input": 2, "output": 6, "tier": {"size": 256000, "type": "context"}}, ...]`: a rate a tier does not
    give is the base's."""
    if not raw:
        return ()
    try:
        items = json.loads(raw, parse_float=Decimal)
    except ValueError:
        raise SourceError(f"{where}: tiers {raw!r} is not JSON") from None
    if not isinstance(items, list):
        raise SourceError(f"{where}: tiers must be a list")
    tiers = []
    for item in items:
        size = (
            item.get("tier", {}).get("size") if isinstance(item, dict) and isinstance(item.get("tier"), dict) else None
        )
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise SourceError(f"{where}: a tier without a positive size: {item!r}")
        rates = {
            name: _decimal(item.get(name), f"tiers {name}", where)
            for name in ("input", "output", "cache_read", "cache_write", "reasoning")
        }
        tiers.append(
            Tier(
                size,
                Rates(
                    input=rates["input"] if rates["input"] is not None else base.input,
                    output=rates["output"] if rates["output"] is not None else base.output,
                    cache_read=rates["cache_read"] if rates["cache_read"] is not None else base.cache_read,
                    cache_write=rates["cache_write"] if rates["cache_write"] is not None else base.cache_write,
                    reasoning=rates["reasoning"] if rates["reasoning"] is not None else base.reasoning,
                ),
            )
        )
    return tuple(sorted(tiers, key=lambda t: t.above))


def _modelsdev_row(raw: dict[str, str | None], path: str, line: int) -> tuple[str, ReplayRow] | None:
    where = f"{path} line {line}"
    if any(raw.get(c) is None for c in MODELSDEV_COLUMNS):
        raise SourceError(f"{where}: too few fields")
    event, provider_dir, model_id = raw["event"], raw["provider"] or "", raw["model_id"] or ""
    if event not in EVENTS:
        raise SourceError(f"{where}: unknown event {event!r}")
    at = _timestamp(raw["observed_at"], where)
    input_price = _decimal(raw["input_per_1m"], "input_per_1m", where)
    output_price = _decimal(raw["output_per_1m"], "output_per_1m", where)
    dims = {
        name: _decimal(raw[f"{name}_per_1m"], f"{name}_per_1m", where)
        for name in ("cache_read", "cache_write", "reasoning")
    }
    found = modelsdev.identify(provider_dir, model_id)
    if found is None:
        return None
    provider, model, variant = found
    key, source_key = (provider, model.slug, variant), f"{provider_dir}/{model_id}"
    if event == "delisted" or input_price is None or output_price is None:
        return source_key, ReplayRow(at, key, None)
    base = Rates(input_price, output_price, dims["cache_read"], dims["cache_write"], None, dims["reasoning"])
    entry = OfferEntry(
        provider=provider,
        model=model,
        variant=variant,
        provider_model_id=model_id,
        input_per_1m=input_price,
        output_per_1m=output_price,
        context_window=None,
        max_output_tokens=None,
        supports_vision=False,
        supports_tools=False,
        source_key=source_key,
        dimensions=Dimensions(
            cache_read=dims["cache_read"],
            cache_write=dims["cache_write"],
            reasoning=dims["reasoning"],
            tiers=_tiers(raw["tiers"], base, where),
            free=re.search(r"[:-]free$", model_id, flags=re.IGNORECASE) is not None,
        ),
    )
    return source_key, ReplayRow(at, key, entry)
