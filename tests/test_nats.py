"""BROKER_URL: instances exchange events through NATS, and every tick lands in a JetStream stream.

Two real servers (uvicorn in threads) on one database, both with BROKER_URL at the NATS on
127.0.0.1:4222: a tick recorded on one reaches a subscriber on the other (and each subscriber once), a
key revoked on one is refused on the other, and a plain nats-py consumer replays the tick stream from
sequence 1 or from a time. Each server pair has its own namespace, hence its own subjects and stream.
SQLite always; PostgreSQL too when TEST_DATABASE_URL is set. Skipped only when NATS is unreachable.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import nats
import pytest
import websockets
from nats.js.api import ConsumerConfig, DeliverPolicy

from datasources.callers import OperatorToken
from datasources.nats import NatsBroker, NatsConfig, subject_token
from server import Settings, create_app
from tests.conftest import BACKENDS, Databases, LiveServer, free_port, subscribed, wait_until
from tests.test_multiprocess import ADMIN
from tests.test_revocation import _scenario

NATS_URL = "nats://127.0.0.1:4222"
RECORD = """mutation ($prices: [PriceInput!]!) {
  recordPrices(prices: $prices) { ticks { model provider inputPer1m outputPer1m } } }"""


async def _jetstream_available() -> str | None:
    """Why the tests cannot run, or None."""
    try:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0)
    except Exception as exc:
        return f"no NATS server at {NATS_URL} ({exc or type(exc).__name__})"
    try:
        await client.jetstream().account_info()
    except Exception as exc:
        return f"the NATS server at {NATS_URL} has no JetStream ({exc or type(exc).__name__})"
    finally:
        await client.close()
    return None


@pytest.fixture(scope="module")
def nats_available() -> None:
    reason = asyncio.run(_jetstream_available())
    if reason is not None:
        pytest.skip(reason)


@dataclass
class Pair:
    recorder: LiveServer
    listener: LiveServer
    config: NatsConfig
    recorded: list[dict[str, str]] = field(default_factory=list)  # every price recorded, in order

    def record(self, server: LiveServer, prices: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Record prices on `server`; return their ticks once JetStream has them all (so that the
        next tick, on either instance, comes after them in the stream)."""
        ticks = _record(server.url, prices)
        self.recorded += prices
        wait_until(
            lambda: _broker(self.recorder).appended + _broker(self.listener).appended == len(self.recorded),
            10,
            "the ticks appended to the stream",
        )
        return ticks


def _broker(server: LiveServer) -> NatsBroker:
    broker = server.app.state.broker
    assert isinstance(broker, NatsBroker)
    return broker


async def _delete_stream(name: str) -> None:
    client = await nats.connect(NATS_URL)
    try:
        await client.jetstream().delete_stream(name)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await client.close()


@pytest.fixture(scope="module", params=BACKENDS)
def pair(
    request: pytest.FixtureRequest, nats_available: None, databases_by_backend: dict[str, Databases]
) -> Iterator[Pair]:
    backend: str = request.param
    url = asyncio.run(databases_by_backend[backend].migrated(seeded=True))  # skips PostgreSQL without it
    config = NatsConfig((NATS_URL,), namespace=f"t{uuid.uuid4().hex[:12]}")
    settings = Settings(
        database_url=url, migrate_on_start=False, seed_on_start=False, operator=OperatorToken(ADMIN), broker=config
    )
    try:
        with LiveServer(create_app(settings)) as recorder, LiveServer(create_app(settings)) as listener:
            yield Pair(recorder, listener, config)
    finally:
        asyncio.run(_delete_stream(config.stream))


def _record(base: str, prices: list[dict[str, str]]) -> list[dict[str, Any]]:
    answer = httpx.post(
        f"{base}/graphql",
        json={"query": RECORD, "variables": {"prices": prices}},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    ).json()
    assert "errors" not in answer, answer
    ticks: list[dict[str, Any]] = answer["data"]["recordPrices"]["ticks"]
    assert len(ticks) == len(prices)
    return ticks


async def _subscribe(base: str, query: str) -> websockets.ClientConnection:
    ws = await websockets.connect(base.replace("http://", "ws://") + "/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    return ws


async def _next_data(ws: websockets.ClientConnection, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "next":
                data: dict[str, Any] = message["payload"]["data"]
                return data
            assert message["type"] in ("ping", "pong"), message


def test_subject_tokens_replace_what_nats_reserves() -> None:
    assert subject_token("gpt-4.1") == "gpt-4_1"
    assert subject_token("a b*c>d\te") == "a_b_c_d_e"
    assert subject_token("meta-llama/llama-3.3-70b") == "meta-llama/llama-3_3-70b"
    assert subject_token("") == "_"
    config = NatsConfig(("nats://user:secret@127.0.0.1:4222",), namespace="staging")
    assert config.ticks_subject("gpt-4.1", "openai") == "staging.ticks.gpt-4_1.openai"
    assert (config.stream, config.events_subject) == ("PRICEGRAPH_TICKS_staging", "staging.pricegraph.events")
    assert NatsConfig((NATS_URL,)).ticks_subject("gpt-4o", "azure") == "ticks.gpt-4o.azure"
    assert NatsConfig((NATS_URL,)).stream == "PRICEGRAPH_TICKS"
    assert "secret" not in repr(config)


def test_a_tick_recorded_on_one_instance_reaches_subscribers_on_both_once(pair: Pair) -> None:
    query = 'subscription { priceChanged(model: "gpt-4o-mini", provider: "openai") { model provider inputPer1m } }'
    servers = (pair.recorder, pair.listener)

    async def main() -> None:
        before = [_broker(s).listeners.copy() for s in servers]
        sockets = [await _subscribe(s.url, query) for s in servers]
        try:
            for server, listening in zip(servers, before, strict=True):
                await subscribed(_broker(server), listening)
            received_before = _broker(pair.listener).published
            price = {"model": "gpt-4o-mini", "provider": "openai", "inputPer1m": "0.1537", "outputPer1m": "0.61"}
            await asyncio.to_thread(pair.record, pair.recorder, [price])
            for ws in sockets:
                tick = (await _next_data(ws, 5))["priceChanged"]
                assert (tick["model"], tick["provider"], Decimal(str(tick["inputPer1m"]))) == (
                    "gpt-4o-mini",
                    "openai",
                    Decimal("0.1537"),
                )
            for ws in sockets:  # once each: the recorder does not deliver its own event again from NATS
                with pytest.raises(TimeoutError):
                    await _next_data(ws, 0.5)
            assert _broker(pair.listener).published == received_before + 1
        finally:
            for ws in sockets:
                await ws.close()

    asyncio.run(main())


def test_a_key_revoked_on_one_instance_is_refused_on_the_other(pair: Pair) -> None:
    # Without the event, the other instance would notice only at its key recheck (10 s).
    code, closed_after, refused_after = _scenario(pair.recorder.url, pair.listener.url)
    assert code == 4403
    assert closed_after < 1.0 and refused_after < 1.0


async def _replay(config: NatsConfig, count: int, **start: Any) -> list[tuple[int, str, dict[str, Any]]]:
    """`count` ticks read with plain nats-py from the stream: (stream sequence, subject, body)."""
    client = await nats.connect(NATS_URL)
    try:
        js = client.jetstream()
        sub = await js.subscribe(
            config.ticks_subjects, stream=config.stream, ordered_consumer=True, config=ConsumerConfig(**start)
        )
        read = []
        for _ in range(count):
            msg = await sub.next_msg(timeout=5)
            read.append((msg.metadata.sequence.stream, msg.subject, json.loads(msg.data)))
        with pytest.raises(nats.errors.TimeoutError):  # and nothing more
            await sub.next_msg(timeout=0.3)
        await sub.unsubscribe()
        return read
    finally:
        await client.close()


def test_every_tick_is_in_the_stream_in_order_and_replays_from_a_sequence_or_a_time(pair: Pair) -> None:
    first = [
        {"model": "gpt-4.1", "provider": "openai", "inputPer1m": "2.0001", "outputPer1m": "8.12345678"},
        {"model": "gpt-4.1-mini", "provider": "openai", "inputPer1m": "0.4002", "outputPer1m": "1.6"},
        {"model": "o3", "provider": "openai", "inputPer1m": "2.0007", "outputPer1m": "8.0007"},
    ]
    second = [
        {"model": "gpt-4.1", "provider": "openai", "inputPer1m": "2.0004", "outputPer1m": "8.5"},
        {"model": "gpt-4.1-nano", "provider": "openai", "inputPer1m": "0.100005", "outputPer1m": "0.4"},
    ]
    ticks = pair.record(pair.recorder, first[:1]) + pair.record(pair.recorder, first[1:2])
    ticks += pair.record(pair.listener, first[2:])  # the other instance appends its ticks too
    between = datetime.now(UTC)
    ticks += pair.record(pair.recorder, second)  # two in one transaction
    assert [(t["model"], str(t["inputPer1m"])) for t in ticks] == [
        (p["model"], p["inputPer1m"]) for p in first + second
    ]

    # From sequence 1: every tick either instance recorded (in this module), in order, exactly.
    everything = asyncio.run(
        _replay(pair.config, len(pair.recorded), deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=1)
    )
    assert [seq for seq, _, _ in everything] == list(range(1, len(pair.recorded) + 1))
    for (_, subject, body), price in zip(everything, pair.recorded, strict=True):
        assert subject == pair.config.ticks_subject(price["model"], "openai")
        assert subject.split(".")[-2] == price["model"].replace(".", "_")
        assert body["kind"] == "price" and (body["model"], body["provider"]) == (price["model"], "openai")
        assert (body["input_per_1m"], body["output_per_1m"]) == (price["inputPer1m"], price["outputPer1m"])
        assert body["previous_input_per_1m"] is not None  # every one of these offers was in the seed
    # The second gpt-4.1 tick's previous price is the first one's, exactly.
    assert everything[-2][2]["previous_input_per_1m"] == "2.0001"

    # From a time: only what came after it.
    later = asyncio.run(_replay(pair.config, 2, deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=between))
    assert [seq for seq, _, _ in later] == [len(pair.recorded) - 1, len(pair.recorded)]
    assert [body["input_per_1m"] for _, _, body in later] == ["2.0004", "0.100005"]


# ---- NATS away: the writer never notices ---------------------------------------------------------


@pytest.fixture
def unreachable_nats(databases_by_backend: dict[str, Databases], backend: str) -> Iterator[LiveServer]:
    url = asyncio.run(databases_by_backend[backend].migrated(seeded=True))
    config = NatsConfig((f"nats://127.0.0.1:{free_port()}",), namespace=f"t{uuid.uuid4().hex[:12]}", connect_wait=0.5)
    settings = Settings(
        database_url=url, migrate_on_start=False, seed_on_start=False, operator=OperatorToken(ADMIN), broker=config
    )
    with LiveServer(create_app(settings)) as server:
        yield server


def test_without_nats_the_server_starts_and_writes_and_delivers_locally(unreachable_nats: LiveServer) -> None:
    server = unreachable_nats
    query = 'subscription { priceChanged(model: "gpt-4o", provider: "openai") { inputPer1m } }'

    async def main() -> dict[str, Any]:
        before = _broker(server).listeners.copy()
        ws = await _subscribe(server.url, query)
        try:
            await subscribed(_broker(server), before)
            ticks = await asyncio.to_thread(
                _record,
                server.url,
                [{"model": "gpt-4o", "provider": "openai", "inputPer1m": "2.4999", "outputPer1m": "10"}],
            )
            assert ticks[0]["model"] == "gpt-4o"
            return await _next_data(ws, 5)
        finally:
            await ws.close()

    tick = asyncio.run(main())["priceChanged"]
    assert Decimal(str(tick["inputPer1m"])) == Decimal("2.4999")
    assert _broker(server).appended == 0
