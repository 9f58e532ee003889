"""Requests billed by every dimension of the price, at real prices: the LiteLLM entries in
tests/fixtures (unchanged from the published map), imported as a user would, and a gateway in front of
local fake providers that report usage in each provider's own shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from datasources import accounts
from datasources.callers import OperatorToken
from datasources.catalog.importer import import_file
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Plan, UsageRecord, UsageState
from datasources.pricing import COST_PARTS
from routing.gateway.app import install
from routing.gateway.providers import GatewayConfig
from server import Settings, create_app
from tests.conftest import FIXTURES, Databases, LiveServer, pg_server_url, wait_until
from tests.fake_provider import FakeProvider, providers_toml

OPERATOR = "operator-token-for-billing"
MESSAGES = [{"role": "user", "content": "Summarize the attached contract."}]
# Providers the gateway may call (all at the fake), each with a platform key.
ROUTED = ("anthropic", "openai", "google", "vertex", "deepinfra", "together")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@dataclass
class World:
    url: str
    db: URL
    fake: FakeProvider
    key: str

    def post(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/chat/completions",
            json={"messages": MESSAGES, **body},
            headers={"authorization": f"Bearer {self.key}"},
            timeout=20,
        )

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.url}{path}", params=params, headers={"authorization": f"Bearer {self.key}"}, timeout=20
        )
        assert response.status_code == 200, response.text
        return json.loads(response.text, parse_float=D)

    def record(self, request_id: str) -> UsageRecord:
        async def settled() -> UsageRecord | None:
            engine = create_engine(self.db)
            try:
                async with sessionmaker(engine)() as session:
                    return (
                        await session.execute(
                            select(UsageRecord).where(
                                UsageRecord.request_id == request_id, UsageRecord.state == UsageState.SETTLED
                            )
                        )
                    ).scalar_one_or_none()
            finally:
                await engine.dispose()

        found: UsageRecord = wait_until(lambda: run(settled()), what=f"the usage record of {request_id}")
        return found


async def _prepare(url: URL) -> str:
    engine = create_engine(url)
    try:
        await import_file(sessionmaker(engine), FIXTURES / "litellm_model_prices.json", "litellm")
        async with sessionmaker(engine)() as session, session.begin():
            _, key = await accounts.create_account(session, Plan.TEAM, D(100), "billing")
        return key.secret
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("billing")
    databases = Databases("postgresql" if pg_server_url() else "sqlite", tmp)
    url = run(databases.migrated())
    secret = run(_prepare(url))
    try:
        with FakeProvider() as fake:
            path = tmp / "providers.toml"
            path.write_text(providers_toml(fake.url, {slug: f"pk-{slug}" for slug in ROUTED}))
            settings = Settings(
                database_url=url, migrate_on_start=False, seed_on_start=False, operator=OperatorToken(OPERATOR)
            )
            app = create_app(settings)
            install(app, GatewayConfig.from_file(path))
            with LiveServer(app) as server:
                yield World(server.url, url, fake, secret)
    finally:
        run(databases.drop_all())


@pytest.fixture(autouse=True)
def fresh(world: World) -> None:
    world.fake.reset()


def parts(record: UsageRecord) -> dict[str, D]:
    return {part: getattr(record, f"cost_{part}") for part in COST_PARTS if getattr(record, f"cost_{part}")}


def billed(world: World, body: dict[str, Any], provider: str, usage: dict[str, Any]) -> UsageRecord:
    world.fake.reset()
    world.fake.set(provider, usage_block=usage)
    response = world.post(body)
    assert response.status_code == 200, response.text
    assert world.fake.order() == [provider]
    record = world.record(response.headers["x-request-id"])
    assert record.cost == sum(parts(record).values())  # the parts add up to what was charged
    return record


# claude-sonnet-4-5 in LiteLLM's map: input 3e-06, output 1.5e-05, cache read 3e-07, cache write 3.75e-06,
# 1-hour cache write 6e-06 per token, i.e. 3, 15, 0.3, 3.75 and 6 USD per 1M.


def test_a_cached_prompt_in_openai_s_shape_is_billed_at_the_cache_read_price(world: World) -> None:
    usage = {
        "prompt_tokens": 10_000,
        "completion_tokens": 500,
        "total_tokens": 10_500,
        "prompt_tokens_details": {"cached_tokens": 9_000},
    }
    record = billed(world, {"model": "claude-sonnet-4.5"}, "anthropic", usage)
    # 1,000 uncached × 3 + 9,000 cached × 0.3 + 500 × 15, per 1M; at the full input price it was 0.0375
    assert parts(record) == {"input": D("0.003"), "cache_read": D("0.0027"), "output": D("0.0075")}
    assert record.cost == D("0.0132")
    assert (record.prompt_tokens, record.cache_read_tokens, record.completion_tokens) == (10_000, 9_000, 500)


def test_cache_reads_and_writes_in_anthropic_s_shape_are_billed_at_their_prices(world: World) -> None:
    usage = {  # input_tokens counts only the uncached part; the cache counts come on top
        "input_tokens": 1_000,
        "cache_read_input_tokens": 9_000,
        "cache_creation_input_tokens": 2_000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1_500, "ephemeral_1h_input_tokens": 500},
        "output_tokens": 500,
    }
    record = billed(world, {"model": "claude-sonnet-4.5"}, "anthropic", usage)
    # writes: 1,500 × 3.75 (5 minutes) + 500 × 6 (1 hour)
    assert parts(record) == {
        "input": D("0.003"),
        "cache_read": D("0.0027"),
        "cache_write": D("0.008625"),
        "output": D("0.0075"),
    }
    assert record.cost == D("0.021825")
    assert (record.prompt_tokens, record.cache_read_tokens, record.cache_write_tokens) == (12_000, 9_000, 2_000)


def test_a_prompt_above_the_context_tier_is_billed_whole_at_the_tier(world: World) -> None:
    # gemini/gemini-2.5-pro: 1.25 / 10 per 1M, and above 200k prompt tokens 2.5 / 15 (cache read 0.25)
    below = billed(
        world,
        {"model": "gemini-2.5-pro"},
        "google",
        {"prompt_tokens": 200_000, "completion_tokens": 1_000, "total_tokens": 201_000},
    )
    assert parts(below) == {"input": D("0.25"), "output": D("0.01")}
    above = billed(
        world,
        {"model": "gemini-2.5-pro"},
        "google",
        {
            "prompt_tokens": 250_000,
            "completion_tokens": 1_000,
            "total_tokens": 251_000,
            "prompt_tokens_details": {"cached_tokens": 50_000},
        },
    )
    assert parts(above) == {"input": D("0.5"), "cache_read": D("0.0125"), "output": D("0.015")}


def test_the_priority_tier_is_an_offer_of_its_own_routed_when_asked_for(world: World) -> None:
    # gpt-4o: 2.5 / 10 per 1M; priority 4.25 / 17; batches 1.25 / 5
    listed = world.get("/api/v1/prices", model="gpt-4o", provider="openai")["prices"]
    by_variant = {p["variant"]: (p["input_per_1m"], p["output_per_1m"]) for p in listed}
    assert by_variant[""] == (D("2.5"), 10) and by_variant["priority"] == (D("4.25"), 17)
    assert by_variant["batch"] == (D("1.25"), 5)
    usage = {"prompt_tokens": 1_000, "completion_tokens": 100, "total_tokens": 1_100}
    standard = billed(world, {"model": "gpt-4o"}, "openai", usage)  # never the batch price: another API
    assert (standard.variant, parts(standard)) == ("", {"input": D("0.0025"), "output": D("0.001")})
    priority = billed(world, {"model": "gpt-4o", "service_tier": "priority"}, "openai", usage)
    assert (priority.variant, parts(priority)) == ("priority", {"input": D("0.00425"), "output": D("0.0017")})
    assert world.fake.requests[-1].body["service_tier"] == "priority"  # passed on as asked
    refused = world.post({"model": "gpt-4o", "service_tier": "batch"})
    assert refused.status_code == 400 and "service_tier" in refused.json()["error"]["message"]


def test_a_zero_priced_offer_is_listed_but_never_cheapest_nor_routed_to(world: World) -> None:
    # vertex_ai/meta/llama-3.1-70b-instruct-maas is priced 0 / 0 in the map: it says nothing of a price
    listed = world.get("/api/v1/prices", model="llama-3.1-70b")["prices"]
    vertex = [p for p in listed if p["provider"] == "vertex"]
    assert vertex and all(p["price_kind"] == "unpriced" for p in vertex)
    priced = [p for p in listed if p["price_kind"] == "priced"]
    assert priced and listed[: len(priced)] == priced  # the zero comes after every real price
    compared = world.get("/api/v1/compare", models="llama-3.1-70b")["models"][0]
    assert compared["cheapest_provider"] != "vertex" and compared["cheapest_blended"] > 0
    standard = [p for p in priced if p["variant"].rsplit("-", 1)[-1] not in ("batch", "flex", "priority")]
    mean = sum(p["blended_per_1m"] for p in standard) / len(standard)
    assert compared["avg_blended"] == mean.quantize(D("1e-10"), ROUND_HALF_EVEN).normalize()
    response = world.post({"model": "llama-3.1-70b"})
    assert response.status_code == 200, response.text
    assert "vertex" not in world.fake.order() and world.fake.order()
    pinned = world.post({"model": "vertex/llama-3.1-70b"})
    assert pinned.status_code == 404 and "at a price" in pinned.json()["error"]["message"]


def test_usage_totals_split_the_tokens_and_the_cost(world: World) -> None:
    before = world.get("/v1/usage/summary")
    record = billed(
        world,
        {"model": "claude-sonnet-4.5"},
        "anthropic",
        {"prompt_tokens": 2_000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 1_000}},
    )
    after = world.get("/v1/usage/summary")
    assert after["cached_tokens"] - before["cached_tokens"] == 1_000
    assert after["total_cost"] - before["total_cost"] == record.cost == D("0.0048")
    moved = {part: after["cost_breakdown"][part] - before["cost_breakdown"][part] for part in COST_PARTS}
    assert {k: v for k, v in moved.items() if v} == {
        "input": D("0.003"),
        "cache_read": D("0.0003"),
        "output": D("0.0015"),
    }
    logged = world.get("/v1/usage/logs", limit=1)["data"][0]
    assert logged["cached_tokens"] == 1_000 and logged["cost_breakdown"]["cache_read"] == D("0.0003")


def test_the_price_schema_in_graphql(world: World) -> None:
    query = """{ prices(model: "gemini-2.5-pro", provider: "google") { variant priceKind inputPer1m
                 cacheReadPer1m perSearch tiers { aboveTokens inputPer1m outputPer1m cacheReadPer1m } } }"""
    answer = httpx.post(f"{world.url}/graphql", json={"query": query}, timeout=20).json()
    assert "errors" not in answer, answer
    standard = next(p for p in answer["data"]["prices"] if p["variant"] == "")
    assert standard == {
        "variant": "",
        "priceKind": "PRICED",
        "inputPer1m": "1.25",
        "cacheReadPer1m": "0.125",
        "perSearch": "0.035",
        "tiers": [{"aboveTokens": 200_000, "inputPer1m": "2.5", "outputPer1m": "15", "cacheReadPer1m": "0.25"}],
    }


def test_the_fixture_entries_are_the_ones_quoted_here() -> None:
    entries = json.loads(Path(FIXTURES / "litellm_model_prices.json").read_text())
    claude = entries["claude-sonnet-4-5"]
    assert (claude["input_cost_per_token"], claude["cache_read_input_token_cost"]) == (3e-06, 3e-07)
    assert claude["cache_creation_input_token_cost_above_1hr"] == 6e-06
    gemini = entries["gemini/gemini-2.5-pro"]
    assert gemini["input_cost_per_token_above_200k_tokens"] == 2.5e-06
    assert entries["gpt-4o"]["input_cost_per_token_priority"] == 4.25e-06
    vertex = entries["vertex_ai/meta/llama-3.1-70b-instruct-maas"]
    assert (vertex["input_cost_per_token"], vertex["output_cost_per_token"]) == (0.0, 0.0)
