"""The price board: every model with its cheapest live price, provider count and last move, and one
model's offers with their candles. Read from the price book (memory); the last moves are kept in memory
too (`Moves`), read from the price ticks once and then from the price events.

The cheapest price is `prices.cheapest` (live, priced, standard service tier); a model whose offers are
all free or unpriced is marked so and has no cheapest price. A page updating itself from ticks is given
each offer's status, price kind and service tier, so that it chooses as `prices.comparable` and
`pricebook.sort_key` do: among live, priced offers at the standard tier, the lowest blended price, then the
oldest offer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ScalarSelect, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.candles import Candle, Interval, candles_for_offers
from datasources.db.models import Offer, PriceTick
from datasources.events import Event, PriceChanged
from datasources.money import blended, percent_change
from datasources.pricebook import Catalog, ModelRow, OfferRow
from datasources.prices import cheapest
from datasources.pricing import PriceKind

CANDLE_DAYS = {Interval.DAY: 90, Interval.HOUR: 3}  # how far back a model page's charts go


@dataclass(frozen=True)
class Move:
    """An offer's latest price change: the blended price's percent change, and when."""

    offer_id: int
    change_pct: Decimal
    at: datetime


@dataclass(frozen=True)
class BoardRow:
    model: ModelRow
    offers: tuple[OfferRow, ...]  # cheapest first
    providers: tuple[str, ...]
    cheapest: OfferRow | None
    marker: str | None  # "free" or "unpriced" when no offer has a price to compare
    last_move: Move | None


def blended_of(offer: OfferRow) -> Decimal:
    return blended(offer.input_per_1m, offer.output_per_1m)


def marker(offers: Sequence[OfferRow]) -> str | None:
    if any(o.priced for o in offers):
        return None
    kinds = {o.price_kind for o in offers}
    return "free" if PriceKind.FREE in kinds else "unpriced" if offers else None


async def last_moves(session: AsyncSession) -> dict[int, Move]:
    """Each offer's latest change (its last two ticks), by offer id: two statements, each tick found through
    the (offer, observed_at) index, however long the history."""

    def nth(n: int) -> ScalarSelect[int]:
        return (
            select(PriceTick.id)
            .where(PriceTick.offer_id == Offer.id)
            .order_by(PriceTick.observed_at.desc(), PriceTick.id.desc())
            .limit(1)
            .offset(n)
            .correlate(Offer)
            .scalar_subquery()
        )

    pairs = (await session.execute(select(Offer.id, nth(0).label("last"), nth(1).label("before")))).all()
    wanted = [tick for pair in pairs if pair.before is not None for tick in (pair.last, pair.before)]
    ticks: dict[int, tuple[Decimal, datetime]] = {}
    for chunk in range(0, len(wanted), 5000):
        rows = await session.execute(
            select(PriceTick.id, PriceTick.input_per_1m, PriceTick.output_per_1m, PriceTick.observed_at).where(
                PriceTick.id.in_(wanted[chunk : chunk + 5000])
            )
        )
        for row in rows:
            ticks[row.id] = (blended(row.input_per_1m, row.output_per_1m), row.observed_at)
    moves: dict[int, Move] = {}
    for pair in pairs:
        if pair.before is None or pair.last not in ticks or pair.before not in ticks:
            continue
        (now_price, at), (price, _) = ticks[pair.last], ticks[pair.before]
        if price:
            moves[pair.id] = Move(pair.id, percent_change(now_price, price), at)
    return moves


class Moves:
    """Each offer's last move, in memory: read once from the ticks when first asked, then kept current by
    the price events (`watch` it on the broker). Events that arrive while it loads are kept: the newer
    move of an offer wins."""

    def __init__(self) -> None:
        self.by_offer: dict[int, Move] = {}
        self.loaded = False
        self._loading: asyncio.Lock = asyncio.Lock()

    def apply(self, events: Sequence[Event]) -> None:
        for event in events:
            if isinstance(event, PriceChanged) and (change := event.change_pct) is not None:
                self._keep(Move(event.offer_id, change, event.observed_at))

    def _keep(self, move: Move) -> None:
        known = self.by_offer.get(move.offer_id)
        if known is None or move.at >= known.at:
            self.by_offer[move.offer_id] = move

    async def current(self, sessionmaker: async_sessionmaker[AsyncSession]) -> Mapping[int, Move]:
        if not self.loaded:
            async with self._loading:
                if not self.loaded:
                    async with sessionmaker() as session:
                        for move in (await last_moves(session)).values():
                            self._keep(move)
                    self.loaded = True
        return self.by_offer


def rows(catalog: Catalog, moves: Mapping[int, Move]) -> list[BoardRow]:
    """Every model with at least one offer, by slug."""
    found = []
    for model in catalog.list_models():
        offers = catalog.model_offers(model.id)  # cheapest first (`pricebook.sort_key`)
        if not offers:
            continue
        offer_moves = [moves[o.id] for o in offers if o.id in moves]
        found.append(
            BoardRow(
                model=model,
                offers=offers,
                providers=tuple(sorted({catalog.providers[o.provider_id].slug for o in offers})),
                cheapest=cheapest(offers),
                marker=marker(offers),
                last_move=max(offer_moves, key=lambda m: m.at) if offer_moves else None,
            )
        )
    return found


async def model_candles(
    session: AsyncSession, offers: Sequence[OfferRow], interval: Interval, now: datetime | None = None
) -> dict[int, list[Candle]]:
    return await candles_for_offers(session, [o.id for o in offers], CANDLE_DAYS[interval], interval, now)
