from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from datasources import rollups
from datasources.candles import (
    Candle,
    Interval,
    build_candles,
    candles_for_offer,
    candles_for_offers,
    candles_from_ticks,
    window,
)
from datasources.catalog.entries import OfferEntry
from datasources.catalog.ingest import apply_offers
from datasources.db.models import CandleRollup, Offer, PriceTick, Provider
from datasources.errors import BadInput
from datasources.money import percent_change
from tests.test_ingest import GROQ, PLAIN, TURBO

D = Decimal
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 4, day, hour, minute, tzinfo=UTC)


def flat(c: Candle) -> tuple[datetime, str, str, str, str, str, int]:
    return (c.start, str(c.open), str(c.high), str(c.low), str(c.close), str(c.change_pct), c.ticks)


# --- build_candles on hand-made series ---------------------------------------------------------------


def test_no_prior_and_no_ticks_is_no_candle() -> None:
    assert build_candles(None, [], at(1), at(8), Interval.DAY) == []


def test_series_starts_at_the_interval_of_the_first_tick() -> None:
    ticks = [(at(3, 12), D("0.075")), (at(3, 18), D("0.09"))]
    candles = build_candles(None, ticks, at(1), at(6), Interval.DAY)
    assert [flat(c) for c in candles] == [
        (at(3), "0.075", "0.09", "0.075", "0.09", "20.0000", 2),
        (at(4), "0.09", "0.09", "0.09", "0.09", "0.0000", 0),
        (at(5), "0.09", "0.09", "0.09", "0.09", "0.0000", 0),
    ]


def test_prior_opens_the_window_and_gaps_carry_forward() -> None:
    ticks = [(at(2, 9), D("0.082")), (at(2, 15), D("0.071")), (at(2, 20), D("0.075")), (at(5, 1), D("0.060"))]
    candles = build_candles(D("0.075"), ticks, at(1), at(7), Interval.DAY)
    assert [flat(c) for c in candles] == [
        (at(1), "0.075", "0.075", "0.075", "0.075", "0.0000", 0),
        (at(2), "0.075", "0.082", "0.071", "0.075", "0.0000", 3),
        (at(3), "0.075", "0.075", "0.075", "0.075", "0.0000", 0),
        (at(4), "0.075", "0.075", "0.075", "0.075", "0.0000", 0),
        (at(5), "0.075", "0.075", "0.060", "0.060", "-20.0000", 1),
        (at(6), "0.060", "0.060", "0.060", "0.060", "0.0000", 0),
    ]


def test_hourly_prior_without_ticks_fills_every_hour() -> None:
    candles = build_candles(D("1.5"), [], at(1), at(3), Interval.HOUR)
    assert len(candles) == 48
    assert [c.start for c in candles] == [at(1) + k * HOUR for k in range(48)]
    assert {(c.open, c.high, c.low, c.close, c.change_pct, c.ticks) for c in candles} == {
        (D("1.5"), D("1.5"), D("1.5"), D("1.5"), D("0.0000"), 0)
    }


def test_a_zero_price_has_no_percent_change() -> None:
    ticks = [(at(1, 1), D("0")), (at(2, 1), D("0.5")), (at(3, 1), D("0"))]
    candles = build_candles(None, ticks, at(1), at(4), Interval.DAY)
    assert [(str(c.open), str(c.close), str(c.change_pct)) for c in candles] == [
        ("0", "0", "0.0000"),
        ("0", "0.5", "0.0000"),
        ("0.5", "0", "-100.0000"),
    ]


def test_ticks_outside_the_window_are_refused() -> None:
    with pytest.raises(ValueError, match="inside"):
        build_candles(None, [(at(5), D(1))], at(1), at(5), Interval.DAY)
    with pytest.raises(ValueError, match="inside"):
        build_candles(None, [(at(1) - HOUR, D(1))], at(1), at(5), Interval.DAY)


def test_percent_change_is_exact_and_half_even() -> None:
    assert percent_change(D("0.060"), D("0.075")) == D("-20.0000")
    assert str(percent_change(D("0.060"), D("0.075"))) == "-20.0000"
    assert str(percent_change(D("0.082"), D("0.075"))) == "9.3333"
    assert str(percent_change(D("0.085"), D("0.075"))) == "13.3333"
    assert str(percent_change(D("2"), D("3"))) == "-33.3333"
    assert str(percent_change(D("1.0000005"), D("1"))) == "0.0000"  # tie, rounds to even
    assert str(percent_change(D("1.0000015"), D("1"))) == "0.0002"  # tie, rounds to even
    assert str(percent_change(D("5"), D("0"))) == "0.0000"


def test_window_ends_after_the_interval_holding_now() -> None:
    assert window(2, Interval.HOUR, at(10, 14, 30)) == (at(8, 15), at(10, 15))
    assert window(30, Interval.DAY, at(10, 14, 30)) == (at(10, 0) + DAY - 30 * DAY, at(11))


@pytest.mark.parametrize("days", [0, 366, -1])
def test_days_out_of_range_are_bad_input(days: int) -> None:
    with pytest.raises(BadInput, match="days"):
        window(days, Interval.DAY, at(10))


# --- candles_for_offers against the database --------------------------------------------------------


async def _tick(sessions: async_sessionmaker[AsyncSession], when: datetime, *entries: OfferEntry) -> None:
    async with sessions() as session, session.begin():
        await apply_offers(session, list(entries), source="test", observed_at=when)


def _priced(entry: OfferEntry, blended: str, output: str | None = None) -> OfferEntry:
    """An entry whose blended price is `blended` (input = output unless `output` is given)."""
    if output is None:
        return replace(entry, input_per_1m=D(blended), output_per_1m=D(blended))
    return replace(entry, input_per_1m=D(blended) * 2 - D(output), output_per_1m=D(output))


async def _offer_id(sessions: async_sessionmaker[AsyncSession], entry: OfferEntry) -> int:
    async with sessions() as session:
        return (
            await session.execute(
                select(Offer.id).join(Provider).where(Provider.slug == entry.provider, Offer.variant == entry.variant)
            )
        ).scalar_one()


async def _candles(
    sessions: async_sessionmaker[AsyncSession], offer_id: int, days: int, interval: Interval, now: datetime
) -> list[Candle]:
    async with sessions() as session:
        return await candles_for_offer(session, offer_id, days, interval, now=now)


async def test_daily_candles_from_ticks(sessions) -> None:  # type: ignore[no-untyped-def]
    await _tick(sessions, at(10, 12), _priced(GROQ, "0.075", output="0.1"))
    await _tick(sessions, at(12, 9), _priced(GROQ, "0.082"))
    await _tick(sessions, at(12, 15), _priced(GROQ, "0.071"))
    await _tick(sessions, at(12, 20), _priced(GROQ, "0.075"))
    await _tick(sessions, at(13, 10), _priced(GROQ, "0.060"))
    groq = await _offer_id(sessions, GROQ)

    candles = await _candles(sessions, groq, 10, Interval.DAY, now=at(16, 8))
    assert [flat(c) for c in candles] == [
        (at(10), "0.075", "0.075", "0.075", "0.075", "0.0000", 1),
        (at(11), "0.075", "0.075", "0.075", "0.075", "0.0000", 0),
        (at(12), "0.075", "0.082", "0.071", "0.075", "0.0000", 3),
        (at(13), "0.075", "0.075", "0.06", "0.06", "-20.0000", 1),
        (at(14), "0.06", "0.06", "0.06", "0.06", "0.0000", 0),
        (at(15), "0.06", "0.06", "0.06", "0.06", "0.0000", 0),
        (at(16), "0.06", "0.06", "0.06", "0.06", "0.0000", 0),
    ]
    assert all(c.start.tzinfo is not None and c.start.utcoffset() == timedelta(0) for c in candles)


async def test_a_window_after_many_ticks_opens_at_the_prior_price(sessions) -> None:  # type: ignore[no-untyped-def]
    for day in range(1, 21):
        await _tick(sessions, at(day, 6), _priced(GROQ, f"0.{day:02d}"))
    await _tick(sessions, at(27, 23, 59), _priced(GROQ, "0.5"))
    groq = await _offer_id(sessions, GROQ)

    candles = await _candles(sessions, groq, 5, Interval.DAY, now=at(28, 12))
    assert [flat(c) for c in candles] == [
        (at(24), "0.2", "0.2", "0.2", "0.2", "0.0000", 0),
        (at(25), "0.2", "0.2", "0.2", "0.2", "0.0000", 0),
        (at(26), "0.2", "0.2", "0.2", "0.2", "0.0000", 0),
        (at(27), "0.2", "0.5", "0.2", "0.5", "150.0000", 1),
        (at(28), "0.5", "0.5", "0.5", "0.5", "0.0000", 0),
    ]
    # a window starting exactly at a tick takes that tick inside, not as the prior
    candles = await _candles(sessions, groq, 9, Interval.HOUR, now=at(28, 5, 30))
    assert candles[0].start == at(19, 6)
    assert flat(candles[0]) == (at(19, 6), "0.18", "0.19", "0.18", "0.19", "5.5556", 1)
    assert len(candles) == 9 * 24


async def test_hourly_candles_and_the_current_partial_hour(sessions) -> None:  # type: ignore[no-untyped-def]
    await _tick(sessions, at(10, 10, 15), _priced(GROQ, "1"))
    await _tick(sessions, at(10, 10, 45), _priced(GROQ, "0.8"))
    await _tick(sessions, at(10, 13, 5), _priced(GROQ, "1.2"))
    await _tick(sessions, at(10, 14, 10), _priced(GROQ, "0.9"))
    await _tick(sessions, at(10, 14, 50), _priced(GROQ, "5"))  # after `now`: not seen yet
    groq = await _offer_id(sessions, GROQ)

    candles = await _candles(sessions, groq, 1, Interval.HOUR, now=at(10, 14, 30))
    assert [flat(c) for c in candles] == [
        (at(10, 10), "1", "1", "0.8", "0.8", "-20.0000", 2),
        (at(10, 11), "0.8", "0.8", "0.8", "0.8", "0.0000", 0),
        (at(10, 12), "0.8", "0.8", "0.8", "0.8", "0.0000", 0),
        (at(10, 13), "0.8", "1.2", "0.8", "1.2", "50.0000", 1),
        (at(10, 14), "1.2", "1.2", "0.9", "0.9", "-25.0000", 1),
    ]
    daily = await _candles(sessions, groq, 1, Interval.DAY, now=at(10, 23))
    assert [flat(c) for c in daily] == [(at(10), "1", "5", "0.8", "5", "400.0000", 5)]


async def test_ties_on_observed_at_close_on_the_last_written(sessions) -> None:  # type: ignore[no-untyped-def]
    await _tick(sessions, at(3, 1), _priced(GROQ, "2"))
    await _tick(sessions, at(5, 1), _priced(GROQ, "3"))
    await _tick(sessions, at(5, 1), _priced(GROQ, "1"))
    await _tick(sessions, at(9, 1), _priced(GROQ, "4"))
    await _tick(sessions, at(9, 1), _priced(GROQ, "6"))
    groq = await _offer_id(sessions, GROQ)

    candles = await _candles(sessions, groq, 3, Interval.DAY, now=at(9, 2))
    assert [flat(c) for c in candles] == [
        (at(7), "1", "1", "1", "1", "0.0000", 0),
        (at(8), "1", "1", "1", "1", "0.0000", 0),
        (at(9), "1", "6", "1", "6", "500.0000", 2),
    ]


async def test_a_zero_price_in_the_database(sessions) -> None:  # type: ignore[no-untyped-def]
    await _tick(sessions, at(1, 1), _priced(GROQ, "0"))
    await _tick(sessions, at(2, 1), _priced(GROQ, "0.25"))
    groq = await _offer_id(sessions, GROQ)
    candles = await _candles(sessions, groq, 3, Interval.DAY, now=at(2, 5))
    assert [(str(c.open), str(c.close), str(c.change_pct)) for c in candles] == [
        ("0", "0", "0.0000"),
        ("0", "0.25", "0.0000"),
    ]


async def test_a_batch_of_offers_costs_two_statements(sessions, engine: AsyncEngine) -> None:  # type: ignore[no-untyped-def]
    await _tick(sessions, at(1, 3), _priced(GROQ, "0.5"), _priced(TURBO, "0.2"), _priced(PLAIN, "0.3"))
    await _tick(sessions, at(6, 3), _priced(GROQ, "0.4"), _priced(TURBO, "0.25"), _priced(PLAIN, "0.3"))
    await _tick(sessions, at(8, 3), _priced(GROQ, "0.45"))
    silent = replace(PLAIN, provider="together", source_key="together")
    await _tick(sessions, at(2, 0), silent)
    groq, turbo, plain, quiet = [await _offer_id(sessions, e) for e in (GROQ, TURBO, PLAIN, silent)]
    async with sessions() as session, session.begin():
        await session.execute(delete(PriceTick).where(PriceTick.offer_id == quiet))
        await session.execute(delete(CandleRollup).where(CandleRollup.offer_id == quiet))

    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with sessions() as session:
            one = await candles_for_offers(session, [groq], 5, Interval.DAY, now=at(8, 12))
        assert len(statements) == 2
        statements.clear()
        async with sessions() as session:
            many = await candles_for_offers(
                session, [groq, turbo, plain, quiet, 999_999, groq], 5, Interval.DAY, now=at(8, 12)
            )
        assert len(statements) == 2
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)

    assert set(many) == {groq, turbo, plain, quiet, 999_999}
    assert many[groq] == one[groq]
    assert many[quiet] == [] and many[999_999] == []
    assert [(c.start, str(c.close)) for c in many[groq]] == [
        (at(4), "0.5"),
        (at(5), "0.5"),
        (at(6), "0.4"),
        (at(7), "0.4"),
        (at(8), "0.45"),
    ]
    assert [(str(c.open), str(c.close), str(c.change_pct), c.ticks) for c in many[turbo]] == [
        ("0.2", "0.2", "0.0000", 0),
        ("0.2", "0.2", "0.0000", 0),
        ("0.2", "0.25", "25.0000", 1),
        ("0.25", "0.25", "0.0000", 0),
        ("0.25", "0.25", "0.0000", 0),
    ]
    assert {str(c.close) for c in many[plain]} == {"0.3"}  # an unchanged price writes no tick
    async with sessions() as session:
        assert await candles_for_offers(session, [], 5, Interval.DAY, now=at(8, 12)) == {}


@pytest.mark.parametrize("days", [0, 366])
async def test_days_out_of_range_are_rejected_before_any_query(sessions, days: int) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        with pytest.raises(BadInput, match="days"):
            await candles_for_offers(session, [1], days, Interval.HOUR, now=at(1))


# --- the database's aggregation equals the pure path -------------------------------------------------


def _pure(
    ticks: list[tuple[datetime, int, Decimal, Decimal]], days: int, interval: Interval, now: datetime
) -> list[Candle]:
    """build_candles over one offer's raw ticks (observed_at, id, input, output), as the reference."""
    from datasources.money import blended

    start, end = window(days, interval, now)
    ordered = sorted(ticks, key=lambda t: (t[0], t[1]))
    before = [t for t in ordered if t[0] < start]
    prior = blended(before[-1][2], before[-1][3]) if before else None
    inside = [(t[0], blended(t[2], t[3])) for t in ordered if start <= t[0] <= now]
    return build_candles(prior, inside, start, end, interval)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_sql_aggregation_equals_the_pure_path_on_random_series(sessions, seed: int) -> None:  # type: ignore[no-untyped-def]
    import random

    rng = random.Random(seed)
    await _tick(sessions, at(1) - 40 * DAY, _priced(GROQ, "1"), _priced(TURBO, "2"), _priced(PLAIN, "3"))
    offers = [await _offer_id(sessions, e) for e in (GROQ, TURBO, PLAIN)]
    prices = [D(0), D("0.0000000001"), D("0.075"), D("0.5"), D("1.2345678901"), D("3"), D("15"), D("60")]
    rows = []
    for offer_id in offers[:2]:  # PLAIN keeps only its first tick: the prior carries through the window
        moment = at(1) - 35 * DAY
        for _ in range(rng.randint(200, 400)):
            moment += timedelta(seconds=rng.choice([0, 0, 1, 59, 600, 3600, 3 * 3600, 86400, 4 * 86400]))
            rows.append(
                {
                    "offer_id": offer_id,
                    "input_per_1m": rng.choice(prices),
                    "output_per_1m": rng.choice(prices),
                    "observed_at": moment,
                    "source": "test",
                }
            )
    rows.sort(key=lambda r: r["observed_at"])
    rng.shuffle(rows)  # ids no longer follow time: ties on observed_at are broken by id, not by position
    async with sessions() as session, session.begin():
        await session.execute(insert(PriceTick), rows)
        await rollups.rebuild(session)  # ticks written around ingest: the rollups built in SQL
    async with sessions() as session:
        stored = (
            await session.execute(
                select(
                    PriceTick.offer_id,
                    PriceTick.observed_at,
                    PriceTick.id,
                    PriceTick.input_per_1m,
                    PriceTick.output_per_1m,
                )
            )
        ).all()
    assert sum(1 for r in rows if r["input_per_1m"] + r["output_per_1m"] == 0) > 0

    for days, interval, now in [
        (30, Interval.DAY, at(20, 7, 13)),
        (60, Interval.DAY, at(1, 0)),
        (3, Interval.HOUR, at(2, 23, 59)),
        (10, Interval.HOUR, at(8, 12, 30)),
        (1, Interval.DAY, max(r.observed_at for r in stored)),
    ]:
        async with sessions() as session:
            got = await candles_for_offers(session, offers, days, interval, now=now)
            raw = await candles_from_ticks(session, offers, days, interval, now=now)
        assert got == raw, (days, interval, now)
        for offer_id in offers:
            expected = _pure(
                [(r.observed_at, r.id, r.input_per_1m, r.output_per_1m) for r in stored if r.offer_id == offer_id],
                days,
                interval,
                now,
            )
            assert [flat(c) for c in got[offer_id]] == [flat(c) for c in expected], (offer_id, days, interval)
            assert got[offer_id], (offer_id, days, interval)
