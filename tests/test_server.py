from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import event
from sqlalchemy.engine import URL

from server import Settings, create_app
from tests.conftest import FIXTURES, Databases, LiveServer, free_port

ROOT = Path(__file__).resolve().parents[1]

CATALOG = """
query ($first: Int!, $offset: Int!, $offers: Int = 50) {
  models(first: $first, offset: $offset) {
    slug displayName family paramsB isBenchmark providerCount
    offers(first: $offers) { variant providerModelId inputPer1m outputPer1m blendedPer1m status priceKind
             provider { slug name } model { slug } }
  }
}
"""


def gql(base: str, query: str, **variables: object) -> dict:  # type: ignore[type-arg]
    response = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python server.py` exactly as README starts it, on a fresh database in an empty directory."""
    workdir = tmp_path_factory.mktemp("fresh")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    server_url = os.environ.get("TEST_DATABASE_URL")
    if server_url:  # a fresh PostgreSQL database for this module
        import asyncio

        databases = Databases("postgresql", workdir)
        url = asyncio.run(databases.new())
        env["DATABASE_URL"] = url.render_as_string(hide_password=False)
    env["PORT"] = str(port)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py")],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the server exited: {process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not answer /healthz within 120 s")
        if not server_url:
            assert (workdir / "pricegraph.db").exists()
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        if server_url:
            asyncio.run(databases.drop_all())


def test_healthz(started: str) -> None:
    body = httpx.get(f"{started}/healthz").json()
    expected = "postgresql" if os.environ.get("TEST_DATABASE_URL") else "sqlite"
    assert body == {"status": "ok", "database": expected}


def test_fresh_start_serves_the_seed_catalog(started: str) -> None:
    providers: list[dict] = []  # type: ignore[type-arg]
    query = "query ($o: Int!) { providers(first: 40, offset: $o) { slug name modelCount models(first: 500) { slug } } }"
    while batch := gql(started, query, o=len(providers))["providers"]:
        providers += batch
    assert len(providers) >= 15
    for provider in providers:
        assert provider["modelCount"] == len({m["slug"] for m in provider["models"]}) > 0
    slugs = {p["slug"] for p in providers}
    assert {"together", "groq", "fireworks", "deepinfra", "openai", "anthropic"} <= slugs
    assert not slugs & {"openrouter", "vercel_ai_gateway", "github_copilot"}

    models = []
    while batch := gql(started, CATALOG, first=20, offset=len(models), offers=100)["models"]:
        models += batch
    assert len(models) >= 300
    assert len({m["slug"] for m in models}) == len(models)
    for model in models:
        offers = model["offers"]
        tiers = ("batch", "flex", "priority")  # standard priced offers, service tiers, then free and unpriced
        order = [
            (
                2 if o["priceKind"] != "PRICED" else int(o["variant"].rsplit("-", 1)[-1] in tiers),
                Decimal(o["blendedPer1m"]),
            )
            for o in offers
        ]
        assert order == sorted(order)
        assert all(
            Decimal(o["blendedPer1m"]) == (Decimal(o["inputPer1m"]) + Decimal(o["outputPer1m"])) / 2 for o in offers
        )
        assert model["providerCount"] == len({o["provider"]["slug"] for o in offers})
        assert all(o["model"]["slug"] == model["slug"] for o in offers)


def _litellm_price(key: str) -> tuple[Decimal, Decimal]:
    """The entry's prices in LiteLLM's file (tests/fixtures holds the entry unchanged), per 1M tokens."""
    entry = json.loads((FIXTURES / "litellm_model_prices.json").read_text())[key]
    per_1m = [Decimal(repr(entry[f"{side}_cost_per_token"])) * 1_000_000 for side in ("input", "output")]
    return per_1m[0], per_1m[1]


@pytest.mark.parametrize(
    ("slug", "provider", "key"),
    [
        ("llama-3.3-70b", "together", "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ("llama-3.3-70b", "nebius", "nebius/meta-llama/Llama-3.3-70B-Instruct"),
        ("deepseek-v3", "together", "together_ai/deepseek-ai/DeepSeek-V3"),
        ("deepseek-v3", "fireworks", "fireworks_ai/accounts/fireworks/models/deepseek-v3"),
    ],
)
def test_benchmark_models_span_providers_at_the_file_prices(started: str, slug: str, provider: str, key: str) -> None:
    query = "query ($slug: String!) { model(slug: $slug) { providerCount offers { inputPer1m outputPer1m provider { slug } } } }"
    model = gql(started, query, slug=slug)["model"]
    assert model["providerCount"] >= 4
    prices = {
        (Decimal(o["inputPer1m"]), Decimal(o["outputPer1m"]))
        for o in model["offers"]
        if o["provider"]["slug"] == provider
    }
    assert _litellm_price(key) in prices


def test_graphql_get_graphiql_and_unknown_model(started: str) -> None:
    page = httpx.get(f"{started}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    get = httpx.get(f"{started}/graphql", params={"query": "{ providers { slug } }"})
    assert get.status_code == 200 and get.json()["data"]["providers"]
    assert gql(started, '{ model(slug: "no-such-model") { slug } }') == {"model": None}
    bad = httpx.post(f"{started}/graphql", json={"query": "{ models(first: 0) { slug } }"}).json()
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def test_rest_mounts_answer_json_errors(started: str) -> None:
    for path in ("/api/v1/nothing-here", "/v1/nothing-here"):
        response = httpx.get(f"{started}{path}")
        assert response.status_code == 404
        assert response.json() == {"error": "Not Found", "code": 404}


@pytest.mark.parametrize(
    ("protocol", "init", "ack"),
    [
        ("graphql-transport-ws", "connection_init", "connection_ack"),
        ("graphql-ws", "connection_init", "connection_ack"),
    ],
)
async def test_websocket_route_speaks_both_protocols(started: str, protocol: str, init: str, ack: str) -> None:
    uri = started.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(uri, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == protocol
        await ws.send(json.dumps({"type": init, "payload": {}}))
        assert json.loads(await ws.recv())["type"] == ack


async def test_nested_catalog_queries_are_answered_from_memory(seeded_url: URL) -> None:
    app = create_app(Settings(database_url=seeded_url, migrate_on_start=False, seed_on_start=False))
    with LiveServer(app) as server:
        statements: list[str] = []

        def executed(conn, cursor, sql, *rest) -> None:  # type: ignore[no-untyped-def]
            task = asyncio.current_task()
            if task is None or not task.get_name().startswith("pricegraph: "):  # not a background task's
                statements.append(sql)

        event.listen(app.state.engine.sync_engine, "before_cursor_execute", executed)
        counts = []
        for first in (5, 50, 70):
            statements.clear()
            models = gql(server.url, CATALOG, first=first, offset=0)["models"]
            assert len(models) == first and all(m["offers"] for m in models)
            counts.append(len(statements))
            assert all("request_counters" in sql for sql in statements), statements
    # The models, their offers and providers come from the price book, whatever the number of models;
    # only the quota's first lease (an upsert and the rolling window's sum) reaches the database.
    assert counts == [2, 0, 0]
