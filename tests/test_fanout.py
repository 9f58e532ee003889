"""Shared fan-out: subscribers of the same operation share one execution per event (routing/fanout.py),
against a real server with real websocket clients of both protocols."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import websockets
from sqlalchemy.engine import URL

from routing.fanout import Registry
from server import Settings, create_app
from tests.conftest import LiveServer, await_until
from tests.test_subscriptions import ADMIN, new_key, post, record, ws_url

QUEUE = 20
TICK = "subscription ($model: String) { priceChanged(model: $model) { model provider inputPer1m observedAt } }"
# A wide selection, so that a client that stops reading fills its socket buffers in a few events.
WIDE = "subscription { priceChanged { " + " ".join(f"f{i}: observedAt m{i}: model" for i in range(14)) + " } }"


@pytest.fixture
def server(seeded_url: URL) -> Iterator[LiveServer]:
    settings = Settings.from_env(
        seeded_url.render_as_string(hide_password=False),
        {"ADMIN_TOKEN": ADMIN, "WS_MAX_CONNECTIONS": "50", "WS_QUEUE_SIZE": str(QUEUE)},
    )
    app = create_app(replace(settings, migrate_on_start=False, seed_on_start=False))
    with LiveServer(app) as live:
        yield live


def registry(server: LiveServer) -> Registry:
    found: Registry | None = getattr(server.app.state, "fanout", None)
    return found if found is not None else Registry()


def members(server: LiveServer) -> int:
    return sum(len(group.members) for group in list(registry(server).groups.values()))


class Client:
    def __init__(self, ws: websockets.ClientConnection, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol

    @classmethod
    async def open(cls, server: LiveServer, protocol: str, key: str | None = None, **options: Any) -> Client:
        ws = await websockets.connect(ws_url(server), subprotocols=[protocol], **options)  # type: ignore[list-item]
        payload = {"Authorization": f"Bearer {key}"} if key else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        return cls(ws, protocol)

    async def subscribe(self, id_: str, query: str = TICK, **variables: Any) -> None:
        kind = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        payload = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"id": id_, "type": kind, "payload": payload}))

    async def stop(self, id_: str) -> None:
        kind = "complete" if self.protocol == "graphql-transport-ws" else "stop"
        await self.ws.send(json.dumps({"id": id_, "type": kind}))

    async def frame(self, timeout: float = 10) -> str:
        while True:
            text = await asyncio.wait_for(self.ws.recv(), timeout)
            assert isinstance(text, str)
            if json.loads(text)["type"] != "ka":
                return text


def payload_of(frame: str) -> str:
    """The payload's text, exactly as it was written."""
    at = frame.index('"payload":') + len('"payload":')
    return frame[at:-1]


def offers(server: LiveServer, provider: str, count: int, model: str | None = None) -> list[dict[str, Any]]:
    which = f'provider: "{provider}"' + (f', model: "{model}"' if model else "")
    rows = post(server, f"{{ prices({which}) {{ model {{ slug }} variant inputPer1m outputPer1m }} }}")
    found = [p for p in rows["data"]["prices"] if p["variant"] == ""][:count]
    assert len(found) == count
    return found


def bump(server: LiveServer, rows: list[dict[str, Any]], provider: str, step: int) -> None:
    prices = [(o["model"]["slug"], provider, str(Decimal(o["inputPer1m"]) + step), o["outputPer1m"]) for o in rows]
    assert len(record(server, *prices)["ticks"]) == len(rows)


async def test_subscribers_of_one_operation_share_one_execution(server: LiveServer) -> None:
    clients = [await Client.open(server, p) for p in ["graphql-transport-ws", "graphql-ws"] * 4]
    for n, client in enumerate(clients):
        await client.subscribe(f"op-{n}", model="gpt-4o")
    await await_until(lambda: members(server) == len(clients), what="every subscriber in its group")
    groups = list(registry(server).groups.values())
    assert len(groups) == 1
    await await_until(lambda: len(server.app.state.broker.listeners) >= 1, what="the group listening")
    listeners = len(server.app.state.broker.listeners)

    gpt = offers(server, "openai", 1, "gpt-4o")
    for step in (1, 2):
        await asyncio.to_thread(bump, server, gpt, "openai", step)
        frames = [await client.frame() for client in clients]
        for n, (client, frame) in enumerate(zip(clients, frames, strict=True)):
            message = json.loads(frame)
            assert message["id"] == f"op-{n}"
            assert message["type"] == ("next" if client.protocol == "graphql-transport-ws" else "data")
            assert message["payload"]["data"]["priceChanged"]["model"] == "gpt-4o"
        assert len({payload_of(frame) for frame in frames}) == 1  # byte for byte the same
    assert groups[0].executions == 2  # once per event, for eight subscribers
    assert len(server.app.state.broker.listeners) == listeners  # one listener for the group

    # Leaving: one stops its operation, one disconnects; the rest still get every event.
    await clients[0].stop("op-0")
    await clients[1].ws.close()
    await await_until(lambda: members(server) == len(clients) - 2, what="two members gone")
    await asyncio.to_thread(bump, server, gpt, "openai", 3)
    for client in clients[2:]:
        assert json.loads(await client.frame())["payload"]["data"]["priceChanged"]["model"] == "gpt-4o"
    assert groups[0].executions == 3

    # The last to leave stops the group and its listener.
    for client in clients[2:]:
        await client.ws.close()
    await await_until(lambda: not registry(server).groups, what="the empty group stopped")
    await await_until(lambda: len(server.app.state.broker.listeners) == listeners - 1, what="its listener gone")
    for client in clients[:1]:
        await client.ws.close()


async def test_different_variables_or_visibility_make_different_groups(server: LiveServer) -> None:
    keyless = await Client.open(server, "graphql-transport-ws")
    keyed = await Client.open(server, "graphql-ws", new_key(server))
    other = await Client.open(server, "graphql-transport-ws")
    await keyless.subscribe("a", model="gpt-4o")
    await keyed.subscribe("b", model="gpt-4o")  # another plan
    await other.subscribe("c", model="gpt-4o-mini")  # other variables
    await other.subscribe("d", model="gpt-4o")  # the same as the keyless one
    await await_until(lambda: members(server) == 4, what="four members")
    groups = registry(server).groups
    assert len(groups) == 3
    assert sorted(len(g.members) for g in groups.values()) == [1, 1, 2]

    gpt = offers(server, "openai", 1, "gpt-4o")
    await asyncio.to_thread(bump, server, gpt, "openai", 1)
    first, second, third = await keyless.frame(), await keyed.frame(), await other.frame()
    assert json.loads(third)["id"] == "d"
    assert payload_of(first) == payload_of(third) == payload_of(second)  # what they see is the same here
    executed = {key.plan: group.executions for key, group in groups.items() if key.variables == '{"model":"gpt-4o"}'}
    assert executed == {"free": 1, "developer": 1}
    assert sum(g.executions for k, g in groups.items() if "mini" in k.variables) == 0
    for client in (keyless, keyed, other):
        await client.ws.close()
    await await_until(lambda: not registry(server).groups, what="every group stopped")


async def test_errors_in_execution_reach_every_member(server: LiveServer) -> None:
    # minChangePct is checked by each subscriber's own operation, before it joins a group.
    client = await Client.open(server, "graphql-transport-ws")
    await client.subscribe("bad", "subscription { priceChanged(minChangePct: -1) { model } }")
    message = json.loads(await client.frame())
    assert message["id"] == "bad" and "non-negative" in message["payload"]["errors"][0]["message"]
    assert json.loads(await client.frame())["type"] == "complete"
    assert not registry(server).groups
    await client.ws.close()


def small_socket(server: LiveServer) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    return sock


async def test_a_slow_member_is_cut_off_and_the_others_get_every_event(server: LiveServer) -> None:
    fast = [await Client.open(server, p) for p in ("graphql-transport-ws", "graphql-ws", "graphql-transport-ws")]
    slow = await Client.open(server, "graphql-transport-ws", sock=small_socket(server), max_queue=1, ping_interval=None)
    for n, client in enumerate([*fast, slow]):
        await client.subscribe(f"w{n}", WIDE)
    await await_until(lambda: members(server) == 4, what="four members")
    (group,) = registry(server).groups.values()
    await await_until(lambda: len(server.app.state.broker.listeners) >= 1, what="the group listening")
    rows = offers(server, "deepinfra", 12)  # a burst of 12 per commit: within the queue of 20
    received = [0] * len(fast)

    async def read(n: int, client: Client) -> None:
        while True:
            message = json.loads(await client.frame(timeout=30))
            if message["type"] in ("next", "data"):
                received[n] += 1

    readers = [asyncio.create_task(read(n, c)) for n, c in enumerate(fast)]
    bursts = 0
    while len(group.members) == 4:
        bursts += 1
        assert bursts <= 1000, "the slow member was never cut off"
        await asyncio.to_thread(bump, server, rows, "deepinfra", bursts)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(slow.ws.recv(), 10)
    # The close frame (1013) queues behind what the client never read; the server may give up on the
    # closing handshake and drop the connection before the client reaches it.
    if closed.value.rcvd is not None:
        assert closed.value.rcvd.code == 1013 and "slow consumer" in closed.value.rcvd.reason

    for more in range(2):  # the others carry on
        await asyncio.to_thread(bump, server, rows, "deepinfra", bursts + 1 + more)
    total = (bursts + 2) * len(rows)
    await await_until(lambda: received == [total] * len(fast), timeout=20, what="every event at every fast member")
    assert group.executions == total  # once per event, slow member or not
    for task in readers:
        task.cancel()
    for client in fast:
        await client.ws.close()
