"""A whole catalogue import changes thousands of prices in one transaction: a subscriber on another
server process receives every one of its ticks (LISTEN/NOTIFY payloads are capped at 8,000 bytes)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import Databases, pg_server_url
from tests.test_multiprocess import ADMIN, ROOT, start_server, wait_healthy

SUBSCRIPTION = "subscription { priceChanged { model provider variant inputPer1m } }"
SENTINEL = """mutation { recordPrices(prices: [{model: "gpt-4o-mini", provider: "openai", variant: "volume-sentinel",
              inputPer1m: "9", outputPer1m: "9"}]) { ticks { model } } }"""


def modified_copy(source: Path, target: Path) -> None:
    """The map with every chat entry's input price raised by a quarter."""
    data = json.loads(source.read_text())
    for entry in data.values():
        if isinstance(entry, dict) and entry.get("mode") == "chat" and entry.get("input_cost_per_token"):
            entry["input_cost_per_token"] = entry["input_cost_per_token"] * 1.25
    target.write_text(json.dumps(data))


@pytest.mark.real_data
def test_every_tick_of_a_full_import_reaches_a_subscriber_on_another_process(tmp_path: Path, shared_data: Path) -> None:
    if pg_server_url() is None:
        pytest.skip("several processes share a database only on PostgreSQL: set TEST_DATABASE_URL")
    databases = Databases("postgresql", tmp_path)
    url = asyncio.run(databases.new()).render_as_string(hide_password=False)
    process, base = start_server(url, tmp_path, WS_QUEUE_SIZE="50000")
    changed = tmp_path / "litellm_changed.json"
    modified_copy(shared_data / "litellm_model_prices.json", changed)
    try:
        wait_healthy(process, base)

        async def scenario() -> tuple[int, list[dict[str, str]]]:
            received: list[dict[str, str]] = []
            ws_url = base.replace("http://", "ws://") + "/graphql"
            async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"], max_size=None) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}}))
                async with httpx.AsyncClient(timeout=60) as client:  # listening once its own tick comes back
                    answer = await client.post(
                        f"{base}/graphql", json={"query": SENTINEL}, headers={"Authorization": f"Bearer {ADMIN}"}
                    )
                    assert answer.json()["data"]["recordPrices"]["ticks"], answer.text
                sentinel = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert sentinel["payload"]["data"]["priceChanged"]["variant"] == "volume-sentinel"

                env = {**os.environ, "DATABASE_URL": url}
                imported = await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, str(ROOT / "server.py"), "import", str(changed), "--format", "litellm"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert imported.returncode == 0, imported.stderr
                ticks = int(imported.stdout.split(" price ticks")[0].rsplit(" ", 1)[-1])
                while len(received) < ticks:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    assert message["type"] == "next", message
                    received.append(message["payload"]["data"]["priceChanged"])
                return ticks, received

        ticks, received = asyncio.run(scenario())
        assert ticks > 2000  # thousands of prices in one transaction
        offers = {(t["model"], t["provider"], t["variant"]) for t in received}
        assert len(received) == len(offers) == ticks  # every tick, once
    finally:
        process.terminate()
        process.wait(timeout=30)
        asyncio.run(databases.drop_all())
