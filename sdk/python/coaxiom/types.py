"""Typed answers. Every object keeps the server's JSON (money as Decimal) in `raw`, so fields the
server adds later are still there; chat answers are dicts with typed attributes on top."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class Price:
    provider: str
    input_per_1m: Decimal | None
    output_per_1m: Decimal | None
    blended_per_1m: Decimal | None
    context_window: int | None
    status: str
    model: str | None = None
    variant: str | None = None
    provider_model_id: str | None = None
    updated_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Price:
        return cls(
            provider=d.get("provider", ""),
            input_per_1m=_dec(d.get("input_per_1m")),
            output_per_1m=_dec(d.get("output_per_1m")),
            blended_per_1m=_dec(d.get("blended_per_1m")),
            context_window=d.get("context_window"),
            status=d.get("status", ""),
            model=d.get("model"),
            variant=d.get("variant"),
            provider_model_id=d.get("provider_model_id"),
            updated_at=d.get("updated_at"),
            raw=d,
        )


@dataclass(frozen=True)
class Prices:
    model: str | None
    updated_at: str | None
    prices: list[Price]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prices:
        return cls(d.get("model"), d.get("updated_at"), [Price.from_dict(p) for p in d.get("prices", [])], d)

    def __iter__(self) -> Any:
        return iter(self.prices)

    def __len__(self) -> int:
        return len(self.prices)


@dataclass(frozen=True)
class Candle:
    date: str
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    close: Decimal | None
    change_pct: Decimal | None
    timestamp: Any = None
    ticks: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candle:
        return cls(
            d.get("date", ""),
            _dec(d.get("open")),
            _dec(d.get("high")),
            _dec(d.get("low")),
            _dec(d.get("close")),
            _dec(d.get("change_pct")),
            d.get("timestamp"),
            d.get("ticks"),
            d,
        )


@dataclass(frozen=True)
class History:
    model: str
    provider: str
    interval: str
    candles: list[Candle]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        candles = [Candle.from_dict(c) for c in d.get("candles", [])]
        return cls(d.get("model", ""), d.get("provider", ""), d.get("interval", ""), candles, d)


@dataclass(frozen=True)
class ModelComparison:
    model: str
    cheapest_provider: str | None
    cheapest_blended: Decimal | None
    avg_blended: Decimal | None
    provider_count: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelComparison:
        return cls(
            d.get("model", ""),
            d.get("cheapest_provider"),
            _dec(d.get("cheapest_blended")),
            _dec(d.get("avg_blended")),
            d.get("provider_count", 0),
            d,
        )


@dataclass(frozen=True)
class Comparison:
    updated_at: str | None
    models: list[ModelComparison]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        return cls(d.get("updated_at"), [ModelComparison.from_dict(m) for m in d.get("models", [])], d)


@dataclass(frozen=True)
class Model:
    slug: str
    display_name: str | None
    family: str | None
    params_b: Any
    context_window: int | None
    provider_count: int
    is_benchmark: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Model:
        return cls(
            d.get("slug", ""),
            d.get("display_name"),
            d.get("family"),
            d.get("params_b"),
            d.get("context_window"),
            d.get("provider_count", 0),
            bool(d.get("is_benchmark")),
            d,
        )


@dataclass(frozen=True)
class Provider:
    slug: str
    name: str
    model_count: int
    status: str
    signup_url: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provider:
        return cls(
            d.get("slug", ""), d.get("name", ""), d.get("model_count", 0), d.get("status", ""), d.get("signup_url"), d
        )


@dataclass(frozen=True)
class RouteProvider:
    provider: str
    model_id: str | None
    configured: bool


@dataclass(frozen=True)
class RouteModel:
    slug: str
    providers: list[RouteProvider]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RouteModel:
        providers = [
            RouteProvider(p.get("provider", ""), p.get("model_id"), bool(p.get("configured")))
            for p in d.get("providers", [])
        ]
        return cls(d.get("slug", ""), providers, d)


@dataclass(frozen=True)
class Balance:
    balance: Decimal
    held: Decimal
    available: Decimal
    currency: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Balance:
        return cls(
            _dec(d.get("balance")) or Decimal(0),
            _dec(d.get("held")) or Decimal(0),
            _dec(d.get("available")) or Decimal(0),
            d.get("currency", "usd"),
            d,
        )


@dataclass(frozen=True)
class CoaxiomMeta:
    """The `_coaxiom` routing block."""

    provider: str
    provider_name: str | None
    model_slug: str | None
    provider_model_id: str | None
    routed_by_price: bool | None
    price_per_1m_usd: Decimal | None
    latency_ms: Any
    key_source: str | None
    version: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CoaxiomMeta:
        return cls(
            d.get("provider", ""),
            d.get("provider_name"),
            d.get("model_slug"),
            d.get("provider_model_id"),
            d.get("routed_by_price"),
            _dec(d.get("price_per_1m_usd")),
            d.get("latency_ms"),
            d.get("key_source"),
            d.get("version"),
            d,
        )


class ChatCompletion(dict[str, Any]):
    """A chat answer: the OpenAI JSON as a dict (`res["choices"][0]["message"]["content"]`,
    `res["_coaxiom"]`), with typed attributes on top."""

    @property
    def id(self) -> str | None:
        return self.get("id")

    @property
    def model(self) -> str | None:
        return self.get("model")

    @property
    def choices(self) -> list[dict[str, Any]]:
        return list(self.get("choices") or [])

    @property
    def content(self) -> str | None:
        """The first choice's message content (None for a tool call without text)."""
        choices = self.choices
        return (choices[0].get("message") or {}).get("content") if choices else None

    @property
    def usage(self) -> dict[str, Any] | None:
        return self.get("usage")

    @property
    def coaxiom(self) -> CoaxiomMeta | None:
        block = self.get("_coaxiom")
        return CoaxiomMeta.from_dict(block) if isinstance(block, dict) else None


class ChatCompletionChunk(dict[str, Any]):
    """One streamed `chat.completion.chunk`, as a dict with typed attributes."""

    @property
    def choices(self) -> list[dict[str, Any]]:
        return list(self.get("choices") or [])

    @property
    def delta(self) -> str:
        """The text this chunk adds (first choice), or ''."""
        choices = self.choices
        return ((choices[0].get("delta") or {}).get("content") or "") if choices else ""


@dataclass(frozen=True)
class PriceTick:
    """One live price change (`priceChanged`)."""

    model: str
    provider: str
    variant: str
    input_per_1m: Decimal
    output_per_1m: Decimal
    blended_per_1m: Decimal
    previous_blended_per_1m: Decimal | None
    change_pct: Decimal | None
    status: str
    observed_at: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_graphql(cls, d: dict[str, Any]) -> PriceTick:
        return cls(
            d["model"],
            d["provider"],
            d.get("variant") or "",
            _dec(d["inputPer1m"]) or Decimal(0),
            _dec(d["outputPer1m"]) or Decimal(0),
            _dec(d["blendedPer1m"]) or Decimal(0),
            _dec(d.get("previousBlendedPer1m")),
            _dec(d.get("changePct")),
            d.get("status", ""),
            d.get("observedAt", ""),
            d,
        )

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.provider, self.variant)
