"""An offer's price history, as every surface serves it: the plan gate and the day limit, the offer a
model and a provider stand for, and its candles."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from datasources import prices
from datasources.candles import Candle, Dimension, Interval, candles_for_offer
from datasources.errors import BadInput
from datasources.plans import MAX_HISTORY_DAYS, Feature, PlanRules, require
from datasources.pricebook import Catalog, ModelRow, OfferRow, ProviderRow

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class History:
    model: ModelRow
    provider: ProviderRow
    offer: OfferRow
    interval: Interval
    candles: list[Candle]
    dimension: Dimension = Dimension.BLENDED


def admit(rules: PlanRules, days: int, interval: Interval) -> None:
    """Whether the plan may see this window: `days` from 1 to the longest any plan gets, hourly candles
    and long windows only on the plans that include them. Refusals are raised before any quota is used."""
    if not 1 <= days <= MAX_HISTORY_DAYS:
        raise BadInput(f"must be from 1 to {MAX_HISTORY_DAYS}, got {days}", field="days")
    require(rules, Feature.HOURLY_CANDLES if interval is Interval.HOUR else Feature.HISTORY, history_days=days)


async def history(
    session: AsyncSession,
    catalog: Catalog,
    model: str,
    provider: str,
    days: int,
    interval: Interval,
    variant: str | None = None,
    dimension: Dimension = Dimension.BLENDED,
) -> History:
    """The candles of the offer `model` at `provider` stands for (`prices.pair_offer`), over `days`."""
    found_model, found_provider = catalog.find_model(model), catalog.find_provider(provider)
    offer = prices.pair_offer(catalog, found_model, found_provider, variant)
    candles = await candles_for_offer(session, offer.id, days, interval, dimension=dimension)
    return History(found_model, found_provider, offer, interval, candles, dimension)
