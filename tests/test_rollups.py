"""The candle rollups equal the raw ticks' aggregation, whatever order the ticks arrive in.

Random tick series per offer go through the ingest (`apply_offers`): live ticks, and back-dated
observations filed as history (`observed_at` before the offer's current price), landing in the middle
of a bucket or in older ones. After each series the rollup rows equal `rollups.aggregate` of every
stored tick, and the candles read from the rollups equal `candles_from_ticks` for every dimension, over
windows with `now` inside the data (the current interval stitched from raw ticks) and after it.
Runs on the backend of the `backend` fixture (PostgreSQL with TEST_DATABASE_URL).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from datasources import rollups
from datasources.candles import Dimension, Interval, candles_for_offers, candles_from_ticks
from datasources.catalog.ingest import apply_offers
from datasources.db.models import CandleRollup, Offer, PriceTick, Provider
from datasources.pricing import Dimensions
from tests.test_ingest import GROQ

D = Decimal
BASE = datetime(2026, 5, 1, tzinfo=UTC)
SPAN = 4 * 24 * 60  # minutes: the series run over four days
PRICES = [D(0), D("0.0000000001"), D("0.075"), D("0.5"), D("1.2345678901"), D("3"), D("15")]
_example = itertools.count()

moments = st.builds(
    lambda minute, second: BASE + timedelta(minutes=minute, seconds=second),
    st.integers(0, SPAN),
    st.sampled_from([0, 0, 0, 1, 30, 59]),
)
prices = st.tuples(st.sampled_from(PRICES), st.sampled_from(PRICES), st.sampled_from([None, D("0.01"), D("0.5")]))
# one apply_offers call: a moment, and a price for some of the offers (by index)
calls = st.tuples(moments, st.dictionaries(st.integers(0, 2), prices, min_size=1, max_size=3))


def _entries(example: int, prices: dict[int, tuple[Decimal, Decimal, Decimal | None]]) -> list:  # type: ignore[type-arg]
    return [
        replace(
            GROQ,
            provider=f"p{example}x{n}",
            input_per_1m=i,
            output_per_1m=o,
            dimensions=Dimensions(cache_read=c),
            source_key=f"p{example}x{n}",
        )
        for n, (i, o, c) in sorted(prices.items())
    ]


async def _offer_ids(session: AsyncSession, example: int) -> list[int]:
    rows = await session.execute(
        select(Offer.id).join(Provider).where(Provider.slug.like(f"p{example}x%")).order_by(Offer.id)
    )
    return list(rows.scalars())


async def _assert_rollups_match(session: AsyncSession, offers: list[int]) -> None:
    stored = await session.execute(
        select(
            PriceTick.id,
            PriceTick.offer_id,
            PriceTick.observed_at,
            PriceTick.input_per_1m,
            PriceTick.output_per_1m,
            PriceTick.cache_read_per_1m,
        ).where(PriceTick.offer_id.in_(offers))
    )
    columns = [c.key for c in CandleRollup.__table__.columns]
    expected = sorted(tuple(row[c] for c in columns) for row in rollups.aggregate(stored.all()))
    got = (await session.execute(select(CandleRollup).where(CandleRollup.offer_id.in_(offers)))).scalars()
    assert sorted(tuple(getattr(r, c) for c in columns) for r in got) == expected


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    series=st.lists(calls, min_size=1, max_size=20),
    nows=st.lists(moments, min_size=1, max_size=2),
)
async def test_rollup_candles_equal_the_raw_ticks(
    sessions: async_sessionmaker[AsyncSession],
    series: list,
    nows: list[datetime],  # type: ignore[type-arg]
) -> None:
    example = next(_example)  # fresh offers per example, in the test's one database
    for observed_at, offer_prices in series:  # in the drawn order: later calls often go back in time
        async with sessions() as session, session.begin():
            await apply_offers(session, _entries(example, offer_prices), source="test", observed_at=observed_at)

    async with sessions() as session:
        offers = await _offer_ids(session, example)
        await _assert_rollups_match(session, offers)
        for now in [*nows, BASE + timedelta(days=6)]:
            for dimension in Dimension:
                for days, interval in ((5, Interval.DAY), (2, Interval.HOUR)):
                    args = (session, [*offers, 999_999], days, interval, now, dimension)
                    assert await candles_for_offers(*args) == await candles_from_ticks(*args), (
                        now,
                        dimension,
                        days,
                        interval,
                    )


async def test_history_ticks_of_one_call_are_written_in_one_batch(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    """A back-dated import over many offers writes their rollups in one statement, not one per tick."""
    entries = _entries(10_000, {n: (D(1), D(2), None) for n in range(3)})
    entries += [replace(e, provider=f"{e.provider}y{k}", source_key=f"{k}") for e in entries for k in range(40)]
    async with sessions() as session, session.begin():
        await apply_offers(session, entries, source="test", observed_at=BASE + timedelta(days=3))
    upserts: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO CANDLE_ROLLUPS"):
            upserts.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        earlier = [replace(e, input_per_1m=D("0.5")) for e in entries]
        async with sessions() as session, session.begin():
            result = await apply_offers(session, earlier, source="test", observed_at=BASE + timedelta(days=1))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert result.backfilled == len(entries) == 123
    assert len(upserts) == 1  # 123 ticks x 2 periods x 4 dimensions = 984 rows, one executemany
    async with sessions() as session:
        offers = list((await session.execute(select(Offer.id))).scalars())
        await _assert_rollups_match(session, offers)
        ticks = (await session.execute(select(func.count()).select_from(PriceTick))).scalar_one()
        assert ticks == 2 * 123


@pytest.mark.parametrize("ending", ["commit", "rollback"])
async def test_deferred_ticks_are_written_at_commit_or_dropped(sessions, ending: str) -> None:  # type: ignore[no-untyped-def]
    """A history tick deferred without a later `record` is written when its transaction commits, and
    forgotten with its tick when it rolls back (never leaking into the next transaction)."""
    from sqlalchemy import insert

    async with sessions() as session, session.begin():
        await apply_offers(session, _entries(20_000, {0: (D(1), D(1), None)}), source="test", observed_at=BASE)
        (offer,) = await _offer_ids(session, 20_000)
    row = {"offer_id": offer, "input_per_1m": D(3), "output_per_1m": D(1), "observed_at": BASE, "source": "t"}
    async with sessions() as session:
        async with session.begin():
            tick_id = (await session.execute(insert(PriceTick).values(row).returning(PriceTick.id))).scalar_one()
            rollups.defer(session, row, tick_id)
            if ending == "rollback":
                await session.rollback()
        async with session.begin():  # a new transaction of the same session: nothing pending
            await rollups.record(session, [], [])
    async with sessions() as session:
        await _assert_rollups_match(session, [offer])
        ticks = (await session.execute(select(func.count()).where(PriceTick.offer_id == offer))).scalar_one()
        assert ticks == (2 if ending == "commit" else 1)
