"""Plain values that catalog importers produce and the ingest consumes."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from datasources.pricing import NO_DIMENSIONS, Dimensions, Price


@dataclass(frozen=True)
class ModelIdentity:
    slug: str
    display_name: str
    family: str
    params_b: Decimal | None = None
    is_benchmark: bool = False


@dataclass(frozen=True)
class OfferEntry:
    """One model sold by one provider (as one variant) at one price, as read from a source."""

    provider: str
    model: ModelIdentity
    variant: str
    provider_model_id: str
    input_per_1m: Decimal
    output_per_1m: Decimal
    context_window: int | None
    max_output_tokens: int | None
    supports_vision: bool
    supports_tools: bool
    source_key: str
    # Every other dimension of the price (cache, reasoning, fees, context tiers, free).
    dimensions: Dimensions = NO_DIMENSIONS

    @property
    def price(self) -> Price:
        return Price(self.input_per_1m, self.output_per_1m, self.dimensions)


class CatalogFormatError(ValueError):
    """A source file that cannot be imported: names the file, the entry and the reason."""

    def __init__(self, path: str, entry: str | None, reason: str) -> None:
        self.path = path
        self.entry = entry
        self.reason = reason
        where = f"{path}: entry {entry!r}" if entry is not None else path
        super().__init__(f"{where}: {reason}")
