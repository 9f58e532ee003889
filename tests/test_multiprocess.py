"""Several server processes on one PostgreSQL database share one truth."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Databases, free_port, pg_server_url

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "multiprocess-admin"


def start_server(database_url: str, workdir: Path, **settings: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "ADMIN_TOKEN": ADMIN,
        **settings,
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py")],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_healthy(process: subprocess.Popen[str], base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {process.stderr.read() if process.stderr else ''}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError("the server did not answer /healthz within 120 s")


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    if pg_server_url() is None:
        pytest.skip("several processes share a database only on PostgreSQL: set TEST_DATABASE_URL")
    workdir = tmp_path_factory.mktemp("procs")
    databases = Databases("postgresql", workdir)
    url = asyncio.run(databases.new()).render_as_string(hide_password=False)
    # Both start on an empty database at once: migrations and seeding must not race.
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


def test_both_processes_serve_one_catalog(two_servers: list[str]) -> None:
    counts = [
        len(httpx.get(f"{b}/api/v1/models", headers={"X-Forwarded-For": "192.0.2.1"}).json()["models"])
        for b in two_servers
    ]
    assert counts[0] == counts[1] >= 300


def test_the_free_quota_is_shared_exactly_across_processes(two_servers: list[str]) -> None:
    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=32)) as client:
            responses = await asyncio.gather(
                *(
                    client.get(
                        f"{two_servers[i % 2]}/api/v1/prices",
                        params={"model": "gpt-4o"},
                        headers={"X-Forwarded-For": "192.0.2.99"},
                    )
                    for i in range(150)
                )
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(burst())
    assert statuses.count(200) == 100 and statuses.count(429) == 50


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_a_tick_recorded_on_one_process_reaches_a_subscriber_on_the_other(
    two_servers: list[str], protocol: str
) -> None:
    from decimal import Decimal

    from gql import Client, gql
    from gql.transport.websockets import WebsocketsTransport

    recorder, listener = two_servers
    base = Decimal("1.5") + Decimal(len(protocol)) / 100
    subscription = gql(
        'subscription { priceChanged(model: "gpt-4o-mini", provider: "openai") { inputPer1m provider } }'
    )
    mutation = """mutation ($i: Decimal!) { recordPrices(prices: [{model: "gpt-4o-mini", provider: "openai",
                  inputPer1m: $i, outputPer1m: "0.6"}]) { ticks { model } } }"""
    recorded: list[Decimal] = []

    async def scenario() -> dict[str, object]:
        transport = WebsocketsTransport(url=listener.replace("http", "ws") + "/graphql", subprotocols=[protocol])
        async with Client(transport=transport) as session:

            async def first() -> dict[str, object]:
                async for result in session.subscribe(subscription):
                    return result["priceChanged"]
                raise AssertionError("the subscription ended")

            task = asyncio.create_task(first())
            async with httpx.AsyncClient() as client:
                # Until the subscription is registered on the other process a tick passes it by: record a new
                # price until the first one arrives, and check it is one that was recorded.
                while not task.done() and len(recorded) < 50:
                    price = base + Decimal(len(recorded)) / 10_000
                    answer = await client.post(
                        f"{recorder}/graphql",
                        headers={"Authorization": f"Bearer {ADMIN}"},
                        json={"query": mutation, "variables": {"i": str(price)}},
                    )
                    assert answer.json()["data"]["recordPrices"]["ticks"] == [{"model": "gpt-4o-mini"}]
                    recorded.append(price)
                    await asyncio.wait({task}, timeout=0.2)
            return await asyncio.wait_for(task, timeout=10)

    tick = asyncio.run(scenario())
    assert tick["provider"] == "openai" and Decimal(str(tick["inputPer1m"])) in recorded
