"""Prices pushed by an operator: one observation per model, provider and variant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from datasources import prices
from datasources.catalog.entries import ModelIdentity, OfferEntry
from datasources.catalog.identity import resolve
from datasources.catalog.ingest import IngestResult, apply_offers
from datasources.catalog.providers import PROVIDERS
from datasources.db.models import Model, Offer, Provider
from datasources.errors import BadInput, NotFound

SOURCE = "admin"

T = TypeVar("T")


@dataclass(frozen=True)
class Observation:
    model: str
    provider: str
    input_per_1m: Decimal
    output_per_1m: Decimal
    variant: str = ""
    provider_model_id: str | None = None
    context_window: int | None = None
    supports_vision: bool | None = None
    supports_tools: bool | None = None


def _identity(model: Model) -> ModelIdentity:
    return ModelIdentity(model.slug, model.display_name, model.family, model.params_b, model.is_benchmark)


async def _provider_slug(session: AsyncSession, text: str, index: int) -> str:
    try:
        return (await prices.find_provider(session, text)).slug
    except NotFound:
        if text in PROVIDERS:
            return text
        raise BadInput(f"prices[{index}].provider: unknown provider {text!r}") from None


async def _model_identity(session: AsyncSession, text: str, index: int) -> ModelIdentity:
    try:
        return _identity(await prices.find_model(session, text))
    except NotFound:
        # `model` names the model, not the provider's id for it: resolve it without provider-specific
        # rules (Fireworks' bare ids are base models; a slug given here is not).
        identity = resolve("", text)
        if identity is None:
            raise BadInput(f"prices[{index}].model: {text!r} is not a chat model we can identify") from None
        return identity


async def to_entries(session: AsyncSession, observations: Sequence[Observation]) -> list[OfferEntry]:
    """Entries for the ingest; what an observation leaves out is kept from the current offer."""
    entries = []
    for index, seen in enumerate(observations):
        for name, field in (("input_per_1m", "inputPer1m"), ("output_per_1m", "outputPer1m")):
            value = getattr(seen, name)
            if not value.is_finite() or value < 0:
                raise BadInput(f"prices[{index}].{field}: must be a non-negative number, got {value}")
        provider = await _provider_slug(session, seen.provider, index)
        identity = await _model_identity(session, seen.model, index)
        current = (
            await session.execute(
                select(Offer)
                .join(Provider)
                .join(Model)
                .where(Provider.slug == provider, Model.slug == identity.slug, Offer.variant == seen.variant)
            )
        ).scalar_one_or_none()

        def keep(given: T | None, name: str, default: T) -> T:
            return given if given is not None else (getattr(current, name) if current else default)

        entries.append(
            OfferEntry(
                provider=provider,
                model=identity,
                variant=seen.variant,
                provider_model_id=keep(seen.provider_model_id, "provider_model_id", seen.model),
                input_per_1m=seen.input_per_1m,
                output_per_1m=seen.output_per_1m,
                context_window=keep(seen.context_window, "context_window", None),
                max_output_tokens=current.max_output_tokens if current else None,
                supports_vision=keep(seen.supports_vision, "supports_vision", False),
                supports_tools=keep(seen.supports_tools, "supports_tools", False),
                source_key=f"{SOURCE}:{provider}/{identity.slug}",
            )
        )
    return entries


async def record_prices(
    session: AsyncSession, observations: Sequence[Observation], observed_at: datetime | None = None
) -> IngestResult:
    entries = await to_entries(session, observations)
    seen: set[tuple[str, str, str]] = set()
    for index, entry in enumerate(entries):
        key = (entry.provider, entry.model.slug, entry.variant)
        if key in seen:
            raise BadInput(f"prices[{index}]: {'/'.join(key)} appears twice")
        seen.add(key)
    return await apply_offers(session, entries, source=SOURCE, observed_at=observed_at, confirm=True)
