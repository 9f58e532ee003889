"""`candleUpdated`: the forming candle over both websocket protocols, and the rules it follows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from gql import Client, gql

from datasources.candles import Candle, Interval
from datasources.forming_candle import FormingCandle
from datasources.money import percent_change
from tests.conftest import LiveServer, await_until
from tests.test_subscriptions import PROTOCOLS, new_key, post, record, server, transport  # noqa: F401

CANDLE_UPDATED = gql("""
subscription ($interval: CandleInterval!) {
  candleUpdated(model: "gpt-4o-mini", provider: "openai", interval: $interval) {
    start open high low close changePct ticks
  }
}
""")


async def candles_while(live: LiveServer, protocol: str, key: str, count: int, *moves: tuple[str, str]) -> list[Any]:
    """The first `count` candles of a subscription, recording `moves` (input, output) once it is live."""
    received: list[dict[str, Any]] = []
    async with Client(transport=transport(live, protocol, key)) as session:

        async def collect() -> None:
            async for result in session.subscribe(CANDLE_UPDATED, variable_values={"interval": "DAY"}):
                received.append(result["candleUpdated"])
                if len(received) == count:
                    return

        task = asyncio.create_task(collect())
        await await_until(lambda: len(received) >= 1, what="the current candle")  # listening by then
        for move in moves:
            await asyncio.to_thread(record, live, ("gpt-4o-mini", "openai", *move))
        await asyncio.wait_for(task, timeout=15)
    return received


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_forming_candle_follows_each_tick(server: LiveServer, protocol: str) -> None:  # noqa: F811
    key = new_key(server)
    prices = post(server, '{ prices(model: "gpt-4o-mini", provider: "openai") { variant blendedPer1m } }')
    seeded = D(next(p for p in prices["data"]["prices"] if p["variant"] == "")["blendedPer1m"])
    first, up, down = await candles_while(server, protocol, key, 3, ("0.5", "1.5"), ("0.05", "0.15"))
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert first["start"].startswith(today) and D(first["close"]) == seeded  # the seed's tick, today
    assert (D(up["close"]), D(up["high"]), up["ticks"]) == (D("1"), D("1"), first["ticks"] + 1)
    assert (D(down["close"]), D(down["low"]), D(down["high"]), down["ticks"]) == (
        D("0.1"),
        min(D("0.1"), D(first["low"])),
        D("1"),
        first["ticks"] + 2,
    )
    assert D(down["changePct"]) == percent_change(D("0.1"), D(first["open"]))
    assert down["open"] == first["open"] == up["open"]


async def test_a_free_plan_is_refused_and_an_unknown_offer_is_an_error(server: LiveServer) -> None:  # noqa: F811
    async with Client(transport=transport(server, "graphql-transport-ws")) as session:
        with pytest.raises(Exception) as refused:
            async for _ in session.subscribe(CANDLE_UPDATED, variable_values={"interval": "DAY"}):
                break
    assert "developer plan" in str(refused.value)
    unknown = gql('subscription { candleUpdated(model: "no-such-model", provider: "openai") { close } }')
    async with Client(transport=transport(server, "graphql-transport-ws", new_key(server))) as session:
        with pytest.raises(Exception) as missing:
            async for _ in session.subscribe(unknown):
                break
    assert "not found" in str(missing.value)


# ---- the rules, on a clock of our own ---------------------------------------------------------------

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)


def test_ticks_move_the_current_interval_and_the_clock_opens_the_next() -> None:
    forming = FormingCandle(Interval.DAY, Candle(T0.replace(hour=0), D(2), D(3), D("1.5"), D(2), D(0), 4))
    moved = forming.tick(D("2.5"), T0)
    assert moved == Candle(T0.replace(hour=0), D(2), D(3), D("1.5"), D("2.5"), D("25.0000"), 5)
    assert forming.tick(D(9), T0 - timedelta(days=2)) is None  # a back-dated observation: history's
    assert forming.boundary(T0) == datetime(2026, 12, 1, tzinfo=UTC)
    assert forming.roll(T0 + timedelta(hours=1)) is None  # still the same day
    opened = forming.roll(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC))
    assert opened == Candle(datetime(2026, 12, 1, tzinfo=UTC), D("2.5"), D("2.5"), D("2.5"), D("2.5"), D("0.0000"), 0)
    nxt = forming.tick(D(2), datetime(2026, 12, 1, 9, tzinfo=UTC))
    assert nxt is not None and (nxt.open, nxt.low, nxt.close, nxt.ticks) == (D("2.5"), D(2), D(2), 1)


def test_before_the_first_tick_there_is_no_candle_until_one_comes() -> None:
    forming = FormingCandle(Interval.HOUR)
    assert forming.roll(T0) is None
    first = forming.tick(D("0.4"), T0 + timedelta(minutes=10))
    assert first == Candle(T0, D("0.4"), D("0.4"), D("0.4"), D("0.4"), D("0.0000"), 1)
    later = forming.tick(D("0.5"), T0 + timedelta(hours=2, minutes=1))  # a tick past the end opens it too
    assert later == Candle(T0 + timedelta(hours=2), D("0.4"), D("0.5"), D("0.4"), D("0.5"), D("25.0000"), 1)
