"""Which source an offer's price comes from when several give one, and when they disagree.

Every source's latest price for an offer is kept (`offer_observations`); the offer's own price is the one
of the source that comes first here: what an operator or the provider itself says, then a per-host
endpoint list, then a model list, then the catalogues. Sources of one rank take turns: the latest wins.
A lower source never moves the price of an offer a higher one governs, unless that offer is no longer
live (its governing source stopped listing it): then the lower source takes it over.

`BY_PROVIDER` orders sources differently for one provider where that provider's own data is in a
catalogue (none yet: the default holds for every provider).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.db.models import Model, Offer, OfferObservation, Provider
from datasources.money import blended, percent_change

DEFAULT_ORDER: tuple[tuple[str, ...], ...] = (
    ("admin", "file"),  # an operator's prices, or the provider's own file
    ("openrouter-endpoints",),  # per host, as the host is served
    ("openrouter",),  # first-party offers in OpenRouter's model list
    ("litellm", "replay"),  # the catalogue the seed comes from, and replays of its history
    ("modelsdev",),  # a second catalogue: fills in what the first lacks
)
BY_PROVIDER: dict[str, tuple[tuple[str, ...], ...]] = {}
UNKNOWN_RANK = len(DEFAULT_ORDER)
DISAGREEMENT_PCT = Decimal(10)  # blended prices further apart than this, in percent, are a disagreement


def rank(provider: str, source: str) -> int:
    """0 comes first. A source not named here ranks after every named one."""
    for index, group in enumerate(BY_PROVIDER.get(provider, DEFAULT_ORDER)):
        if source in group:
            return index
    return UNKNOWN_RANK


def governs(provider: str, source: str, current_source: str, live: bool) -> bool:
    """Whether an observation from `source` sets the price of an offer whose price came from
    `current_source`."""
    return not live or rank(provider, source) <= rank(provider, current_source)


@dataclass(frozen=True)
class Disagreement:
    """A source whose price for an offer differs from the offer's own by more than the threshold."""

    offer_id: int
    provider: str
    model: str
    variant: str
    source: str  # the offer's own
    input_per_1m: Decimal
    output_per_1m: Decimal
    other_source: str
    other_input_per_1m: Decimal
    other_output_per_1m: Decimal
    other_observed_at: datetime
    change_pct: Decimal  # the other source's blended price against the offer's, in percent


async def disagreements(
    session: AsyncSession, source: str | None = None, threshold_pct: Decimal = DISAGREEMENT_PCT
) -> list[Disagreement]:
    """Offers whose other sources' (or `source`'s) blended prices differ from their own by more than
    `threshold_pct`, the widest first."""
    only = [OfferObservation.source == source] if source is not None else []
    rows = (
        await session.execute(
            select(
                Offer.id,
                Provider.slug,
                Model.slug,
                Offer.variant,
                Offer.source,
                Offer.input_per_1m,
                Offer.output_per_1m,
                OfferObservation.source,
                OfferObservation.input_per_1m,
                OfferObservation.output_per_1m,
                OfferObservation.observed_at,
            )
            .join(Offer, Offer.id == OfferObservation.offer_id)
            .join(Provider, Provider.id == Offer.provider_id)
            .join(Model, Model.id == Offer.model_id)
            .where(OfferObservation.source != Offer.source, *only)
        )
    ).all()
    found = []
    for offer_id, provider, model, variant, own_source, inp, out, other, other_in, other_out, seen in rows:
        own = blended(inp, out)
        theirs = blended(other_in, other_out)
        if own == theirs:
            continue
        change = percent_change(theirs, own) if own else Decimal(100)
        if abs(change) > threshold_pct:
            found.append(
                Disagreement(
                    offer_id, provider, model, variant, own_source, inp, out, other, other_in, other_out, seen, change
                )
            )
    return sorted(found, key=lambda d: (-abs(d.change_pct), d.provider, d.model, d.variant, d.other_source))


async def observing_sources(session: AsyncSession) -> dict[str, int]:
    """Every source with observations, and of how many offers."""
    rows = await session.execute(
        select(OfferObservation.source, func.count())
        .group_by(OfferObservation.source)
        .order_by(OfferObservation.source)
    )
    return {name: int(count) for name, count in rows.all()}
