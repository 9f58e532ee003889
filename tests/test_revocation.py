"""A revoked API key stops at once, everywhere: its websockets close with 4403 and its next request is
refused within a second, on the process that revoked it and on any other sharing the database.

One server in this process on the test database; with TEST_DATABASE_URL, also two `python server.py`
processes on one PostgreSQL database, the key revoked on one and used on the other.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import select, update
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources import accounts
from datasources.accounts import hash_secret
from datasources.callers import OperatorToken
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import ApiKey, Plan
from datasources.events import MemoryBroker
from datasources.keytable import KeyTable
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, pg_server_url
from tests.test_multiprocess import ADMIN, start_server, wait_healthy

CREATE = 'mutation { createAccount(plan: DEVELOPER, name: "revoked") { secret key { id } } }'
REVOKE = "mutation ($id: ID!) { revokeApiKey(id: $id) { revoked } }"


def graphql(base: str, query: str, token: str, **variables: object) -> dict:  # type: ignore[type-arg]
    answer = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    assert "errors" not in answer, answer
    return answer["data"]


async def _subscribed(base: str, key: str) -> websockets.ClientConnection:
    ws = await websockets.connect(base.replace("http://", "ws://") + "/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(
        json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "subscription { priceChanged { model } }"}})
    )
    return ws


async def _closed_within(ws: websockets.ClientConnection, seconds: float) -> tuple[int, float]:
    started = time.monotonic()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(seconds):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, time.monotonic() - started


def _refused_within(base: str, key: str, seconds: float) -> None:
    started = time.monotonic()
    while (status := httpx.get(f"{base}/v1/me", headers={"authorization": f"Bearer {key}"}).status_code) != 401:
        assert status == 200 and time.monotonic() - started < seconds, "the revoked key was still accepted"
        time.sleep(0.02)


def _scenario(revoking: str, using: str) -> tuple[int, float, float]:
    """A key created on `revoking`, subscribed with on `using`, revoked on `revoking`: the close code,
    how long the websocket took to close and the key to be refused."""
    created = graphql(revoking, CREATE, ADMIN)["createAccount"]
    key, key_id = created["secret"], created["key"]["id"]
    deadline = time.monotonic() + 5
    while httpx.get(f"{using}/v1/me", headers={"authorization": f"Bearer {key}"}).status_code != 200:
        assert time.monotonic() < deadline, "the new key was not accepted"
        time.sleep(0.05)

    async def main() -> tuple[int, float, float]:
        ws = await _subscribed(using, key)
        try:
            revoked_at = time.monotonic()
            assert graphql(revoking, REVOKE, key, id=key_id)["revokeApiKey"]["revoked"] is True
            code, _ = await _closed_within(ws, 5)
            closed_after = time.monotonic() - revoked_at
        finally:
            await ws.close()
        _refused_within(using, key, 5)
        return code, closed_after, time.monotonic() - revoked_at

    return asyncio.run(main())


@pytest.fixture(scope="module")
def one_server(databases_by_backend: dict[str, Databases]) -> Iterator[str]:
    backend = "postgresql" if pg_server_url() else "sqlite"
    url = asyncio.run(databases_by_backend[backend].migrated(seeded=True))
    settings = Settings(database_url=url, migrate_on_start=False, seed_on_start=False, operator=OperatorToken(ADMIN))
    with LiveServer(create_app(settings)) as server:
        yield server.url


def test_a_key_revoked_through_the_api_closes_its_websockets_at_once(one_server: str) -> None:
    code, closed_after, refused_after = _scenario(one_server, one_server)
    assert code == 4403
    assert closed_after < 1.0 and refused_after < 1.0


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    if pg_server_url() is None:
        pytest.skip("several processes share a database only on PostgreSQL: set TEST_DATABASE_URL")
    workdir: Path = tmp_path_factory.mktemp("revocation")
    databases = Databases("postgresql", workdir)
    url = asyncio.run(databases.new()).render_as_string(hide_password=False)
    started = [start_server(url, workdir) for _ in range(2)]
    try:
        for process, base in started:
            wait_healthy(process, base)
        yield [base for _, base in started]
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=30)
        asyncio.run(databases.drop_all())


def test_a_key_revoked_on_one_process_stops_on_the_other_within_a_second(two_servers: list[str]) -> None:
    revoking, using = two_servers
    code, closed_after, refused_after = _scenario(revoking, using)
    assert code == 4403
    assert closed_after < 1.0 and refused_after < 1.0


# ---- when a key was last used ------------------------------------------------------------------------


async def test_the_last_use_of_each_key_is_written_together_and_only_moves_forward(db_url: URL) -> None:
    engine = create_engine(db_url)
    sessions = sessionmaker(engine)
    try:
        async with sessions() as session, session.begin():
            _, first = await accounts.create_account(session, Plan.DEVELOPER, name="a")
            _, second = await accounts.create_account(session, Plan.TEAM, name="b")
        table = KeyTable(sessions, MemoryBroker())
        await table.start()
        try:
            before = datetime.now(UTC).replace(microsecond=0)
            for issued in (first, second, first):
                assert await table.find(hash_secret(issued.secret)) is not None
            assert await _last_used(sessions, first.key.id) is None  # noted in memory only, so far
            await table.write_used()
            used = {k: await _last_used(sessions, k) for k in (first.key.id, second.key.id)}
            for at in used.values():
                assert at is not None and before <= at <= datetime.now(UTC)
            # A time older than the one written (another process wrote a later one) leaves it as it is.
            async with sessions() as session, session.begin():
                await session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == first.key.id)
                    .values(last_used_at=datetime(2100, 1, 1, tzinfo=UTC))
                )
            await table.find(hash_secret(first.secret))
            await table.write_used()
            assert await _last_used(sessions, first.key.id) == datetime(2100, 1, 1, tzinfo=UTC)
            await table.find(hash_secret(second.secret))
        finally:
            await table.stop()  # writes what the last request noted
        last = await _last_used(sessions, second.key.id)
        assert last is not None and used[second.key.id] is not None and last >= used[second.key.id]
    finally:
        await engine.dispose()


def test_me_answers_when_the_key_was_last_used(one_server: str) -> None:
    created = graphql(one_server, CREATE, ADMIN)["createAccount"]
    headers = {"authorization": f"Bearer {created['secret']}"}
    first = httpx.get(f"{one_server}/v1/me", headers=headers, timeout=30).json()
    assert first["api_key"]["last_used"] is None or isinstance(first["api_key"]["last_used"], int)
    keys = "query { apiKeys { id lastUsedAt } }"
    deadline = time.monotonic() + 30
    while True:  # written within USED_WRITE_SECONDS
        found = graphql(one_server, keys, created["secret"])["apiKeys"]
        if found[0]["lastUsedAt"] is not None:
            break
        assert time.monotonic() < deadline, "the last use was never written"
        threading.Event().wait(0.2)
    me = httpx.get(f"{one_server}/v1/me", headers=headers, timeout=30).json()
    # At least that time: a later write may have moved it on since.
    assert me["api_key"]["last_used"] >= int(datetime.fromisoformat(found[0]["lastUsedAt"]).timestamp())


async def _last_used(sessions: async_sessionmaker[AsyncSession], key_id: str) -> datetime | None:
    async with sessions() as session:
        return (await session.execute(select(ApiKey.last_used_at).where(ApiKey.id == key_id))).scalar_one()
