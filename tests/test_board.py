"""The price board's last moves: read from the ticks (each offer's last two), then kept by price events,
the newer move of an offer winning whichever way they arrive. On both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources import board
from datasources.catalog.record import Observation, record_prices
from datasources.events import PriceChanged
from datasources.money import blended, percent_change
from datasources.pricebook import read_catalog

START = datetime(2026, 3, 1, tzinfo=UTC)


async def _record(
    sessions: async_sessionmaker[AsyncSession], model: str, price: str, at: datetime
) -> list[PriceChanged]:
    async with sessions() as session, session.begin():
        result = await record_prices(
            session, [Observation(model, "groq", Decimal(price), Decimal(price) * 3)], observed_at=at
        )
    return list(result.ticks)


async def test_last_moves_are_each_offers_last_two_ticks(sessions: async_sessionmaker[AsyncSession]) -> None:
    for day, price in enumerate(("1", "2", "1.5")):  # up 100 %, then down 25 %
        await _record(sessions, "moving-model", price, START + timedelta(days=day))
    await _record(sessions, "still-model", "4", START)  # one tick: no move yet
    for price in ("2", "3"):  # two ticks at the same moment: the later one (by id) is the last
        await _record(sessions, "same-time-model", price, START + timedelta(days=5))
    async with sessions() as session:
        moves = await board.last_moves(session)
        catalog = await read_catalog(session)
    offer = {catalog.models[o.model_id].slug: o.id for o in catalog.offers.values()}
    assert set(moves) == {offer["moving-model"], offer["same-time-model"]}
    moving = moves[offer["moving-model"]]
    expected = percent_change(blended(Decimal("1.5"), Decimal("4.5")), blended(Decimal(2), Decimal(6)))
    assert moving.change_pct == expected == Decimal("-25.0000") and moving.at == START + timedelta(days=2)
    assert moves[offer["same-time-model"]].change_pct == Decimal("50.0000")


async def test_moves_follow_events_and_keep_the_newer(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _record(sessions, "moving-model", "1", START)
    late = await _record(sessions, "moving-model", "3", START + timedelta(days=3))  # +200 %
    moves = board.Moves()
    moves.apply(late)  # arrives while the ticks are read
    current = await moves.current(sessions)
    (only,) = current.values()
    assert only.at == START + timedelta(days=3)  # the event's move and the ticks' agree on the newest
    assert only.change_pct == Decimal("200.0000")
    older = PriceChanged(
        only.offer_id, "groq", "moving-model", "", Decimal(2), Decimal(6), Decimal(1), Decimal(3), START
    )
    moves.apply([older])  # a move older than the one kept (another process's late event) changes nothing
    assert (await moves.current(sessions))[only.offer_id].change_pct == Decimal("200.0000")
    newer = await _record(sessions, "moving-model", "6", START + timedelta(days=4))
    moves.apply(newer)
    assert (await moves.current(sessions))[only.offer_id].change_pct == Decimal("100.0000")
