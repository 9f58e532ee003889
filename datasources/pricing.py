"""What an offer's price is made of, and the one rule that turns what a request used into what it costs.

A price is USD per 1M tokens for input and output, and, where the source prices them apart: cache reads,
cache writes (5-minute, and 1-hour where the source has both), reasoning tokens, a fee per request and a
fee per web search, and context tiers (above a prompt of `above` tokens, the whole request is priced at
the tier's rates). A dimension the source does not price apart is None and falls back to the rate it is
part of: a cache read or write to input, a 1-hour write to the 5-minute one, reasoning to output.

An offer priced 0 for input and output is `free` when its source says it is (OpenRouter's `:free`, a
free tier) and `unpriced` otherwise; neither is ever the cheapest, averaged, or routed to.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, fields, replace
from decimal import Decimal

from datasources.money import ONE_MILLION, price

ZERO = Decimal(0)
# Service tiers a provider sells one model at, each an offer variant of its own (`priority`,
# `mantle-flex`): asked for per request (`service_tier`), or not at all for batch (its own API).
SERVICE_TIERS = ("batch", "flex", "priority")
MAX_TIERS = 8  # context tiers an offer may have (sources give at most 3)


class PriceKind(enum.StrEnum):
    PRICED = "priced"
    FREE = "free"
    UNPRICED = "unpriced"


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-token rates, USD per 1M tokens. None: not priced apart (see the module's fallbacks)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None

    @property
    def read_rate(self) -> Decimal:
        return self.input if self.cache_read is None else self.cache_read

    @property
    def write_rate(self) -> Decimal:
        return self.input if self.cache_write is None else self.cache_write

    @property
    def write_1h_rate(self) -> Decimal:
        return self.write_rate if self.cache_write_1h is None else self.cache_write_1h

    @property
    def reasoning_rate(self) -> Decimal:
        return self.output if self.reasoning is None else self.reasoning

    def exact(self) -> Rates:
        """The same rates at storage precision."""
        return Rates(**{f.name: _exact(getattr(self, f.name)) for f in fields(self)})  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Tier:
    """Above a prompt of `above` tokens, the whole request is priced at `rates`."""

    above: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class Dimensions:
    """What a price has beyond input and output, as its source gives it."""

    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    per_request: Decimal | None = None  # USD per request
    per_search: Decimal | None = None  # USD per web search
    tiers: tuple[Tier, ...] = ()
    free: bool = False  # the source says the offer is free (not merely priced 0)

    def exact(self) -> Dimensions:
        tiers = tuple(sorted((Tier(t.above, t.rates.exact()) for t in self.tiers), key=lambda t: t.above))
        if len(tiers) > MAX_TIERS:
            raise ValueError(f"{len(tiers)} context tiers: at most {MAX_TIERS}")
        return replace(
            self,
            cache_read=_exact(self.cache_read),
            cache_write=_exact(self.cache_write),
            cache_write_1h=_exact(self.cache_write_1h),
            reasoning=_exact(self.reasoning),
            per_request=_exact(self.per_request),
            per_search=_exact(self.per_search),
            tiers=tiers,
        )


NO_DIMENSIONS = Dimensions()


@dataclass(frozen=True, slots=True)
class Price:
    """An offer's whole price."""

    input: Decimal
    output: Decimal
    dimensions: Dimensions = NO_DIMENSIONS

    @property
    def kind(self) -> PriceKind:
        return price_kind(self.input, self.output, self.dimensions)

    @property
    def base(self) -> Rates:
        d = self.dimensions
        return Rates(self.input, self.output, d.cache_read, d.cache_write, d.cache_write_1h, d.reasoning)

    def rates_for(self, prompt_tokens: int) -> Rates:
        """The rates a request with this many prompt tokens is priced at: the highest tier it is above."""
        chosen = self.base
        for tier in self.dimensions.tiers:  # sorted by threshold
            if prompt_tokens > tier.above:
                chosen = tier.rates
        return chosen


def service_tier(variant: str) -> str | None:
    """The service tier a variant is sold at; None for the standard tier."""
    last = variant.rsplit("-", 1)[-1]
    return last if last in SERVICE_TIERS else None


def price_kind(input_per_1m: Decimal, output_per_1m: Decimal, dimensions: Dimensions = NO_DIMENSIONS) -> PriceKind:
    """The one rule for what a zero means: free when the source says so, unpriced otherwise."""
    if input_per_1m or output_per_1m or dimensions.per_request:
        return PriceKind.PRICED
    return PriceKind.FREE if dimensions.free else PriceKind.UNPRICED


@dataclass(frozen=True, slots=True)
class TokenUse:
    """What one request used. `prompt` counts every prompt token, cached or not; `completion` every
    completion token, reasoning included."""

    prompt: int
    completion: int
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    reasoning: int = 0
    searches: int = 0

    @property
    def uncached(self) -> int:
        return max(self.prompt - self.cache_read - self.cache_write - self.cache_write_1h, 0)


NO_USE = TokenUse(0, 0)


@dataclass(frozen=True, slots=True)
class Cost:
    """What a request cost, by part; each part at storage precision, and the total their exact sum."""

    input: Decimal = ZERO
    cache_read: Decimal = ZERO
    cache_write: Decimal = ZERO
    output: Decimal = ZERO
    reasoning: Decimal = ZERO
    request: Decimal = ZERO
    search: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return (
            self.input + self.cache_read + self.cache_write + self.output + self.reasoning + self.request + self.search
        )

    def parts(self) -> dict[str, Decimal]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


NO_COST = Cost()
COST_PARTS = tuple(f.name for f in fields(Cost))


def cost(offer_price: Price, use: TokenUse) -> Cost:
    """Uncached prompt × input + cache reads × cache read + cache writes × cache write + completion ×
    output (reasoning tokens at the reasoning rate where priced apart) + the request and search fees,
    all at the rates of the tier the prompt falls in."""
    rates = offer_price.rates_for(use.prompt)
    reasoning = min(use.reasoning, use.completion) if rates.reasoning is not None else 0
    dims = offer_price.dimensions
    return Cost(
        input=_part(use.uncached * rates.input),
        cache_read=_part(use.cache_read * rates.read_rate),
        cache_write=_part(use.cache_write * rates.write_rate + use.cache_write_1h * rates.write_1h_rate),
        output=_part((use.completion - reasoning) * rates.output),
        reasoning=_part(reasoning * rates.reasoning_rate),
        request=price(dims.per_request or ZERO),
        search=price(use.searches * (dims.per_search or ZERO)),
    )


def most(offer_price: Price, prompt: int, completion: int) -> Decimal:
    """The most a request of `prompt` tokens and up to `completion` output tokens can cost: every prompt
    token at the dearest way it can be read or written, every output token at the dearer output rate."""
    rates = offer_price.rates_for(prompt)
    prompt_rate = max(rates.input, rates.read_rate, rates.write_rate, rates.write_1h_rate)
    output_rate = max(rates.output, rates.reasoning_rate)
    fee = offer_price.dimensions.per_request or ZERO
    return _part(prompt * prompt_rate) + _part(completion * output_rate) + price(fee)


def _part(tokens_times_rate: Decimal) -> Decimal:
    return price(tokens_times_rate / ONE_MILLION)


def _exact(value: Decimal | None) -> Decimal | None:
    return None if value is None else price(value)


# ---- one text form, for a tier list in a column and in seed.json ------------------------------------


def tiers_to_json(tiers: tuple[Tier, ...]) -> str | None:
    """Tiers as compact JSON with each rate as a string of its own digits; None when there are none."""
    if not tiers:
        return None
    items = []
    for tier in sorted(tiers, key=lambda t: t.above):
        rates = {f.name: format(v, "f") for f in fields(tier.rates) if (v := getattr(tier.rates, f.name)) is not None}
        items.append({"above": tier.above, **rates})
    return json.dumps(items, separators=(",", ":"))


def tiers_from_json(text: str | None) -> tuple[Tier, ...]:
    if not text:
        return ()
    tiers = []
    for item in json.loads(text):
        values = {k: Decimal(v) for k, v in item.items() if k != "above"}
        tiers.append(Tier(int(item["above"]), Rates(**values)))
    return tuple(sorted(tiers, key=lambda t: t.above))


# ---- the dimensions as plain values: a row's columns, and a JSON object (events, seed.json) ----------

COLUMN_OF = {
    "cache_read": "cache_read_per_1m",
    "cache_write": "cache_write_per_1m",
    "cache_write_1h": "cache_write_1h_per_1m",
    "reasoning": "reasoning_per_1m",
    "per_request": "per_request",
    "per_search": "per_search",
}
PRICE_COLUMNS = ("input_per_1m", "output_per_1m", *COLUMN_OF.values(), "tiers", "price_kind")


def price_columns(offer_price: Price) -> dict[str, object]:
    """The columns a price is stored in (offers, price_ticks, offer_observations), input and output too."""
    d = offer_price.dimensions
    values: dict[str, object] = {name: _exact(getattr(d, dim)) for dim, name in COLUMN_OF.items()}
    values.update(
        input_per_1m=price(offer_price.input),
        output_per_1m=price(offer_price.output),
        tiers=tiers_to_json(d.exact().tiers),
        price_kind=offer_price.kind.value,
    )
    return values


def price_of(row: object) -> Price:
    """The price a row with price columns holds."""
    values = {dim: getattr(row, name) for dim, name in COLUMN_OF.items()}
    tiers = tiers_from_json(getattr(row, "tiers"))
    free = getattr(row, "price_kind") == PriceKind.FREE
    return Price(
        getattr(row, "input_per_1m"), getattr(row, "output_per_1m"), Dimensions(**values, tiers=tiers, free=free)
    )


def dimensions_to_dict(d: Dimensions) -> dict[str, object]:
    """The dimensions a source gave, as JSON values: rates as strings of their digits; nothing for None."""
    out: dict[str, object] = {dim: format(v, "f") for dim in COLUMN_OF if (v := getattr(d, dim)) is not None}
    if d.tiers:
        out["tiers"] = json.loads(tiers_to_json(d.tiers) or "[]")
    if d.free:
        out["free"] = True
    return out


def dimensions_from_dict(data: dict[str, object]) -> Dimensions:
    values = {dim: Decimal(str(data[dim])) for dim in COLUMN_OF if data.get(dim) is not None}
    tiers = data.get("tiers")
    return Dimensions(
        **values,
        tiers=tiers_from_json(json.dumps(tiers)) if tiers else (),
        free=data.get("free") is True,
    )
