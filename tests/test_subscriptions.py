"""Live price subscriptions over both websocket subprotocols, with a real GraphQL websocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
import pytest
import websockets
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy.engine import URL

from server import Settings, create_app
from tests.conftest import LiveServer, await_until, subscribed

ADMIN = "admin-token-for-tests"
PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
PRICE_CHANGED = gql("""
subscription ($model: String, $provider: String, $min: Decimal) {
  priceChanged(model: $model, provider: $provider, minChangePct: $min) {
    model provider variant inputPer1m outputPer1m blendedPer1m previousBlendedPer1m changePct status observedAt
  }
}
""")
RECORD = """
mutation ($prices: [PriceInput!]!) { recordPrices(prices: $prices) { ticks { model provider changePct } unchanged } }
"""


@pytest.fixture
def server(seeded_url: URL) -> Iterator[LiveServer]:
    settings = Settings.from_env(
        seeded_url.render_as_string(hide_password=False),
        {"ADMIN_TOKEN": ADMIN, "WS_MAX_CONNECTIONS": "3", "WS_QUEUE_SIZE": "5", "WS_KEY_RECHECK_SECONDS": "0.3"},
    )
    app = create_app(replace(settings, migrate_on_start=False, seed_on_start=False, connection_init_timeout=1.0))
    with LiveServer(app) as live:
        yield live


def post(server: LiveServer, query: str, token: str | None = ADMIN, **variables: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{server.url}/graphql", json={"query": query, "variables": variables}, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()


async def apost(server: LiveServer, query: str, token: str | None = ADMIN, **variables: Any) -> dict[str, Any]:
    return await asyncio.to_thread(post, server, query, token, **variables)


def record(server: LiveServer, *prices: tuple[str, str, str, str]) -> dict[str, Any]:
    rows = [{"model": m, "provider": p, "inputPer1m": i, "outputPer1m": o} for m, p, i, o in prices]
    body = post(server, RECORD, prices=rows)
    assert "errors" not in body, body
    return body["data"]["recordPrices"]


def new_key(server: LiveServer, plan: str = "DEVELOPER") -> str:
    body = post(server, "mutation ($p: Plan!) { createAccount(plan: $p) { secret } }", p=plan)
    return body["data"]["createAccount"]["secret"]


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/graphql"


def transport(server: LiveServer, protocol: str, key: str | None = None) -> WebsocketsTransport:
    payload = {"Authorization": f"Bearer {key}"} if key else {}
    return WebsocketsTransport(url=ws_url(server), init_payload=payload, subprotocols=[protocol])


async def first(
    server: LiveServer, protocol: str, key: str | None, variables: dict[str, Any], trigger: Any, count: int = 1
) -> list[dict[str, Any]]:
    """Subscribe, run `trigger` once the subscription is live, return the first `count` results."""
    async with Client(transport=transport(server, protocol, key)) as session:
        received: list[dict[str, Any]] = []

        async def collect() -> None:
            async for result in session.subscribe(PRICE_CHANGED, variable_values=variables):
                received.append(result["priceChanged"])
                if len(received) == count:
                    return

        broker = server.app.state.broker
        before = broker.listeners.copy()
        task = asyncio.create_task(collect())
        await subscribed(broker, before)
        await trigger()
        await asyncio.wait_for(task, timeout=15)
        return received


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_recorded_price_reaches_matching_subscribers_only(server: LiveServer, protocol: str) -> None:
    before = post(server, '{ prices(model: "gpt-4o", provider: "openai") { inputPer1m outputPer1m variant } }')
    current = next(p for p in before["data"]["prices"] if p["variant"] == "")
    new_input = str(Decimal(current["inputPer1m"]) * 2)

    async def trigger() -> None:
        # A change of another model first: the gpt-4o subscriber must not see it.
        await asyncio.to_thread(record, server, ("llama-3.3-70b", "nebius", "0.11", "0.33"))
        await asyncio.to_thread(record, server, ("gpt-4o", "openai", new_input, current["outputPer1m"]))

    ticks = await first(server, protocol, new_key(server), {"model": "gpt-4o"}, trigger)
    tick = ticks[0]
    assert (tick["model"], tick["provider"], tick["variant"], tick["status"]) == ("gpt-4o", "openai", "", "LIVE")
    assert Decimal(tick["inputPer1m"]) == Decimal(new_input)
    old_blended = (Decimal(current["inputPer1m"]) + Decimal(current["outputPer1m"])) / 2
    new_blended = (Decimal(new_input) + Decimal(current["outputPer1m"])) / 2
    assert Decimal(tick["previousBlendedPer1m"]) == old_blended
    assert Decimal(tick["blendedPer1m"]) == new_blended
    assert Decimal(tick["changePct"]) == ((new_blended - old_blended) * 100 / old_blended).quantize(Decimal("0.0001"))


async def test_filters_by_provider_and_size_of_move(server: LiveServer) -> None:
    async def trigger() -> None:
        await asyncio.to_thread(record, server, ("llama-3.3-70b", "nebius", "0.13", "0.41"))  # +~2%: too small
        await asyncio.to_thread(record, server, ("llama-3.3-70b", "hyperbolic", "0.5", "0.5"))  # other provider
        await asyncio.to_thread(record, server, ("llama-3.3-70b", "nebius", "0.26", "0.82"))  # +100%

    ticks = await first(
        server,
        "graphql-transport-ws",
        None,
        {"model": "Llama-3.3-70B-Instruct", "provider": "nebius", "min": "10"},
        trigger,
    )
    assert (ticks[0]["provider"], Decimal(ticks[0]["inputPer1m"])) == ("nebius", Decimal("0.26"))
    assert Decimal(ticks[0]["changePct"]) > 10


async def test_unknown_model_filter_is_an_error(server: LiveServer) -> None:
    async with Client(transport=transport(server, "graphql-transport-ws")) as session:
        with pytest.raises(Exception, match="model not found"):
            async for _ in session.subscribe(PRICE_CHANGED, variable_values={"model": "no-such-model"}):
                pass


# ---- the protocol, byte by byte -------------------------------------------------------------------


async def raw(server: LiveServer, protocol: str = "graphql-transport-ws") -> websockets.ClientConnection:
    return await websockets.connect(ws_url(server), subprotocols=[protocol])  # type: ignore[list-item]


async def closed_with(ws: websockets.ClientConnection) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        for _ in range(100):
            await asyncio.wait_for(ws.recv(), timeout=10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def subscribe_message(id_: str, query: str = "subscription { priceChanged { model } }") -> str:
    return json.dumps({"id": id_, "type": "subscribe", "payload": {"query": query}})


async def test_close_codes(server: LiveServer) -> None:
    bad_key = await raw(server)
    await bad_key.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer cxm_wrong"}}))
    code, reason = await closed_with(bad_key)
    assert code == 4403 and "invalid or revoked" in reason

    no_init = await raw(server)
    await no_init.send(subscribe_message("1"))
    assert (await closed_with(no_init))[0] == 4401

    bad_payload = await raw(server)
    await bad_payload.send(json.dumps({"type": "connection_init", "payload": "not an object"}))
    assert (await closed_with(bad_payload))[0] == 4400

    silent = await raw(server)  # never sends connection_init
    assert (await closed_with(silent))[0] == 4408

    duplicate = await raw(server)
    await duplicate.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await duplicate.recv())["type"] == "connection_ack"
    await duplicate.send(subscribe_message("same"))
    await duplicate.send(subscribe_message("same"))
    assert (await closed_with(duplicate))[0] == 4409


async def test_connections_per_key_are_capped(server: LiveServer) -> None:
    key = new_key(server)
    open_ones = []
    for _ in range(3):
        ws = await raw(server)
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        open_ones.append(ws)
    fourth = await raw(server)
    await fourth.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
    code, reason = await closed_with(fourth)
    assert code == 4429 and "too many connections" in reason
    await open_ones.pop().close()

    async def admitted() -> websockets.ClientConnection | None:  # once the server has seen the close
        ws = await raw(server)
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        try:
            return ws if json.loads(await ws.recv())["type"] == "connection_ack" else None
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4429
            return None

    again = await await_until(admitted, what="a connection in the freed place")
    for ws in (*open_ones, again):
        await ws.close()


async def test_a_revoked_key_ends_its_subscriptions(server: LiveServer) -> None:
    key = new_key(server)
    ws = await raw(server)
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    before = server.app.state.broker.listeners.copy()
    await ws.send(subscribe_message("1"))
    await subscribed(server.app.state.broker, before)
    keys = await apost(server, "{ apiKeys { id } }", token=key)
    revoked = await apost(
        server,
        "mutation ($id: ID!) { revokeApiKey(id: $id) { revoked } }",
        token=key,
        id=keys["data"]["apiKeys"][0]["id"],
    )
    assert revoked["data"]["revokeApiKey"]["revoked"] is True
    code, reason = await closed_with(ws)
    assert code == 4403 and "revoked" in reason


async def test_a_slow_consumer_is_cut_off_and_others_carry_on(server: LiveServer) -> None:
    rows = post(server, '{ prices(provider: "deepinfra") { model { slug } variant inputPer1m outputPer1m } }')
    offers = [p for p in rows["data"]["prices"] if p["variant"] == ""][:12]
    assert len(offers) == 12
    before = server.app.state.broker.listeners.copy()
    greedy = await raw(server)  # everything, queue of 5: a burst of 12 overflows it
    await greedy.send(json.dumps({"type": "connection_init", "payload": {}}))
    await greedy.recv()
    await greedy.send(subscribe_message("all"))
    target = offers[0]["model"]["slug"]
    calm = await raw(server)
    await calm.send(json.dumps({"type": "connection_init", "payload": {}}))
    await calm.recv()
    await calm.send(subscribe_message("one", f'subscription {{ priceChanged(model: "{target}") {{ model }} }}'))
    await subscribed(server.app.state.broker, before, count=2)

    burst = [(o["model"]["slug"], "deepinfra", str(Decimal(o["inputPer1m"]) + 1), o["outputPer1m"]) for o in offers]
    assert len((await asyncio.to_thread(record, server, *burst))["ticks"]) == 12

    code, reason = await closed_with(greedy)
    assert code == 1013 and "slow consumer" in reason
    message = json.loads(await asyncio.wait_for(calm.recv(), timeout=10))
    assert message["type"] == "next" and message["payload"]["data"]["priceChanged"]["model"] == target
    await calm.close()
