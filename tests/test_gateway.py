"""The routing gateway end to end: the official openai client → the gateway (a real server) → fake
providers (a real HTTP server), on a real database."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import URL

from datasources import accounts
from datasources.callers import OperatorToken
from datasources.catalog.record import Observation, record_prices
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import BalanceTransaction, Plan, UsageRecord, UsageState
from datasources.events import BalanceChanged, UsageRecorded
from routing.gateway.app import install
from routing.gateway.metering import prompt_tokens, text_tokens
from routing.gateway.providers import GatewayConfig
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, free_port, pg_server_url, wait_until
from tests.fake_provider import FakeProvider, providers_toml

PLATFORM_CANARY = "sk-CANARY-platform-7f3a9c1e5b"
ADMIN_TOKEN = "operator-token-for-gateway-tests-0123456789"
CUSTOMER_CANARY = "sk-CANARY-customer-2d8e4f6a0c"
MESSAGES = [{"role": "user", "content": "Say hello."}]
D = Decimal

OFFERS = [
    # llama-3.3-70b, cheapest first: deepinfra, groq, together, fireworks
    Observation(
        "llama-3.3-70b", "deepinfra", D("0.20"), D("0.30"), provider_model_id="meta-llama/Llama-3.3-70B-Instruct"
    ),
    Observation("llama-3.3-70b", "groq", D("0.50"), D("0.70"), provider_model_id="llama-3.3-70b-versatile"),
    Observation(
        "llama-3.3-70b", "together", D("0.80"), D("0.90"), provider_model_id="meta-llama/Llama-3.3-70B-Instruct-Turbo"
    ),
    Observation(
        "llama-3.3-70b",
        "fireworks",
        D("0.90"),
        D("0.90"),
        provider_model_id="accounts/fireworks/models/llama-v3p3-70b-instruct",
    ),
    # llama-3.1-8b: nebius (nothing listens) is cheapest, then cerebras, sambanova
    Observation(
        "llama-3.1-8b", "nebius", D("0.01"), D("0.02"), provider_model_id="meta-llama/Meta-Llama-3.1-8B-Instruct"
    ),
    Observation("llama-3.1-8b", "cerebras", D("0.05"), D("0.05"), provider_model_id="llama3.1-8b"),
    Observation("llama-3.1-8b", "sambanova", D("0.10"), D("0.10"), provider_model_id="Meta-Llama-3.1-8B-Instruct"),
    Observation(
        "gpt-4o-mini",
        "openai",
        D("0.15"),
        D("0.60"),
        provider_model_id="gpt-4o-mini",
        supports_vision=True,
        supports_tools=True,
    ),
    Observation("mistral-large", "mistral", D("2"), D("6"), provider_model_id="mistral-large-latest"),
]
KEYED = ["deepinfra", "groq", "together", "fireworks", "nebius", "cerebras", "sambanova", "openai"]


@dataclass
class World:
    url: str
    db: URL
    fake: FakeProvider
    app: Any
    dev: str  # developer plan, 100 USD
    dev_account: int
    free: str
    broke: str  # developer plan, no balance
    broke_account: int

    def client(self, key: str | None = None, prefix: str = "/api/v1/route", **headers: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.url + prefix,
            api_key=key or self.dev,
            max_retries=0,
            default_headers=headers or None,
            timeout=20,
        )

    def post(self, body: dict[str, Any], key: str | None = None, **headers: str) -> httpx.Response:
        auth = {"authorization": f"Bearer {key or self.dev}"} if key != "" else {}
        return httpx.post(
            f"{self.url}/api/v1/route/chat/completions", json=body, headers={**auth, **headers}, timeout=20
        )

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _setup(url: URL) -> tuple[str, int, str, str, int]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            for observation in OFFERS:  # one at a time: each finds the model the first one created
                await record_prices(session, [observation])
            dev, dev_key = await accounts.create_account(session, Plan.DEVELOPER, D(100), "dev")
            _, free_key = await accounts.create_account(session, Plan.FREE, D(100), "free")
            broke, broke_key = await accounts.create_account(session, Plan.DEVELOPER, D(0), "broke")
        return dev_key.secret, dev.id, free_key.secret, broke_key.secret, broke.id
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("gateway")
    databases = Databases("postgresql" if pg_server_url() else "sqlite", tmp)
    url = run(databases.migrated())
    dev, dev_id, free, broke, broke_id = run(_setup(url))
    try:
        with FakeProvider() as fake:
            keys: dict[str, str | None] = {slug: f"pk-{slug}-platform" for slug in KEYED}
            keys["groq"] = PLATFORM_CANARY
            keys["mistral"] = None
            path = tmp / "providers.toml"
            path.write_text(
                providers_toml(
                    fake.url,
                    keys,
                    {
                        "connect_timeout": 1.0,
                        "first_byte_timeout": 1.0,
                        "total_timeout": 2.5,
                        "breaker_failures": 3,
                        "breaker_cooldown": 1.0,
                    },
                    base_urls={"nebius": f"http://127.0.0.1:{free_port()}/v1"},
                )
            )
            app = create_app(
                Settings(
                    database_url=url, migrate_on_start=False, seed_on_start=False, operator=OperatorToken(ADMIN_TOKEN)
                )
            )
            install(app, GatewayConfig.from_file(path))
            with LiveServer(app) as server:
                yield World(server.url, url, fake, app, dev, dev_id, free, broke, broke_id)
    finally:
        run(databases.drop_all())


@pytest.fixture(autouse=True)
def fresh(world: World) -> None:
    world.fake.reset()
    world.gateway.health.providers.clear()


def query(world: World, statement: Any) -> list[Any]:
    async def main() -> list[Any]:
        engine = create_engine(world.db)
        try:
            async with sessionmaker(engine)() as session:
                return list((await session.execute(statement)).all())
        finally:
            await engine.dispose()

    return run(main())


def usage_for(world: World, request_id: str, timeout: float = 5.0) -> UsageRecord:
    """The request's usage record once settled (it is pending while the request is in flight)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = query(
            world,
            select(UsageRecord).where(UsageRecord.request_id == request_id, UsageRecord.state != UsageState.PENDING),
        )
        if rows:
            return rows[0][0]
        time.sleep(0.03)
    raise AssertionError(f"no settled usage record for {request_id}")


def balance(world: World, key: str) -> tuple[Decimal, Decimal]:
    """The account's balance and what is held, as the account reads them (its own writes settled)."""
    body = httpx.get(f"{world.url}/v1/balance", headers={"authorization": f"Bearer {key}"}).json()
    return D(str(body["balance"])), D(str(body["held"]))


def record_price(world: World, observation: Observation) -> None:
    """An operator's observed price, through the server (every process hears of it)."""
    mutation = """mutation ($p: [PriceInput!]!) { recordPrices(prices: $p) { unchanged } }"""
    price = {
        "model": observation.model,
        "provider": observation.provider,
        "inputPer1m": str(observation.input_per_1m),
        "outputPer1m": str(observation.output_per_1m),
    }
    answer = httpx.post(
        f"{world.url}/graphql",
        json={"query": mutation, "variables": {"p": [price]}},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    ).json()
    assert "errors" not in answer, answer


def provider_keys(keys: dict[str, str]) -> str:
    return base64.b64encode(json.dumps(keys).encode()).decode()


# ---- choosing ----------------------------------------------------------------------------------------


def test_the_cheapest_live_provider_answers_with_the_coaxiom_block(world: World) -> None:
    raw = world.client().chat.completions.with_raw_response.create(model="llama-3.3-70b", messages=MESSAGES)
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from the fake provider."
    block = answer.model_extra["_coaxiom"]
    latency = block.pop("latency_ms")
    assert isinstance(latency, int) and latency >= 0
    assert block == {
        "provider": "deepinfra",
        "provider_name": "DeepInfra",
        "model_slug": "llama-3.3-70b",
        "provider_model_id": "meta-llama/Llama-3.3-70B-Instruct",
        "routed_by_price": True,
        "price_per_1m_usd": 0.25,
        "key_source": "platform",
        "version": "1.0",
    }
    [seen] = world.fake.seen()
    assert seen.provider == "deepinfra" and seen.body["model"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert seen.headers["authorization"] == "Bearer pk-deepinfra-platform"
    assert "provider" not in seen.body
    record = usage_for(world, raw.headers["x-request-id"])
    usage = answer.usage
    assert (record.provider_slug, record.model_slug, record.status, record.key_source, record.estimated) == (
        "deepinfra",
        "llama-3.3-70b",
        200,
        "platform",
        False,
    )
    assert (record.prompt_tokens, record.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    expected = (usage.prompt_tokens * D("0.20") + usage.completion_tokens * D("0.30")) / 1_000_000
    assert record.cost == expected.normalize()
    assert record.endpoint == "/api/v1/route/chat/completions"


def test_v1_chat_completions_is_the_same_engine(world: World) -> None:
    answer = world.client(prefix="/v1").chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert answer.model_extra["_coaxiom"]["provider"] == "deepinfra"


def test_a_new_price_reroutes(world: World) -> None:
    record_price(world, Observation("gpt-4o-mini", "openai", D("0.10"), D("0.40")))
    answer = world.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert answer.model_extra["_coaxiom"]["price_per_1m_usd"] == 0.25


# ---- falling back -----------------------------------------------------------------------------------


def test_fallback_through_500_503_and_429_in_price_order(world: World) -> None:
    world.fake.set("deepinfra", status=500)
    world.fake.set("groq", status=503)
    world.fake.set("together", status=429, retry_after="30")
    answer = world.client().chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert answer.model_extra["_coaxiom"]["provider"] == "fireworks"
    assert world.fake.order() == ["deepinfra", "groq", "together", "fireworks"]
    world.fake.reset()
    world.fake.set("deepinfra", status=500)
    world.fake.set("groq", status=503)
    answer = world.client().chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    # together said Retry-After: 30, so it is skipped until then
    assert world.fake.order() == ["deepinfra", "groq", "fireworks"]


def test_fallback_on_connect_refused_and_timeouts(world: World) -> None:
    world.fake.set("cerebras", first_byte_delay=2.0)
    answer = world.client().chat.completions.create(model="llama-3.1-8b", messages=MESSAGES)
    assert answer.model_extra["_coaxiom"]["provider"] == "sambanova"  # nebius refused, cerebras too slow
    assert world.fake.order() == ["cerebras", "sambanova"]
    world.fake.reset()
    world.gateway.health.providers.clear()
    world.fake.set("cerebras", chunk_delay=3.5)  # the first byte comes at once, the rest too late
    answer = world.client().chat.completions.create(model="llama-3.1-8b", messages=MESSAGES)
    assert answer.model_extra["_coaxiom"]["provider"] == "sambanova"


@pytest.mark.parametrize(
    "status,error", [(400, openai.BadRequestError), (401, openai.AuthenticationError), (402, openai.APIStatusError)]
)
def test_no_fallback_on_400_401_402(world: World, status: int, error: type[Exception]) -> None:
    world.fake.set("deepinfra", status=status, error_message="your request is wrong")
    client = world.client(**{"X-Provider-Keys": provider_keys({"deepinfra": "dk-customer"})})
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert world.fake.order() == ["deepinfra"]
    if status != 401:
        assert "deepinfra: your request is wrong" in str(caught.value)


def test_an_upstream_refusing_the_platform_key_is_a_502_not_the_callers_401(world: World) -> None:
    world.fake.set("deepinfra", status=401)
    with pytest.raises(openai.InternalServerError) as caught:
        world.client().chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert caught.value.status_code == 502 and world.fake.order() == ["deepinfra"]


def test_every_provider_failing_is_a_502_listing_what_each_answered(world: World) -> None:
    for slug in ("deepinfra", "groq", "together", "fireworks"):
        world.fake.set(slug, status=500 if slug != "groq" else 503)
    response = world.post({"model": "llama-3.3-70b", "messages": MESSAGES})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "upstream_error" and error["code"] == "upstream_failed"
    assert [a["provider"] for a in error["metadata"]["attempts"]] == ["deepinfra", "groq", "together", "fireworks"]
    assert [a["status"] for a in error["metadata"]["attempts"]] == [500, 503, 500, 500]
    assert "groq: HTTP 503" in error["message"]
    record = usage_for(world, response.headers["x-request-id"])
    assert record.status == 502 and record.cost == 0 and record.provider_slug is None
    assert balance(world, world.dev)[1] == 0  # the hold was released


def test_all_rate_limited_is_a_429_with_retry_after(world: World) -> None:
    world.fake.set("cerebras", status=429, retry_after="7")
    world.fake.set("sambanova", status=429, retry_after="3")
    response = world.post({"model": "llama-3.1-8b", "messages": MESSAGES, "provider": {"ignore": ["nebius"]}})
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert response.json()["error"]["type"] == "rate_limit_error"
    # now every provider but the unreachable one is skipped: 503 without calling anyone
    world.fake.reset()
    response = world.post({"model": "llama-3.1-8b", "messages": MESSAGES, "provider": {"ignore": ["nebius"]}})
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
    assert world.fake.order() == []


def test_the_circuit_opens_after_repeated_failures_and_probes_again(world: World) -> None:
    world.fake.set("deepinfra", status=500)
    for _ in range(3):
        world.client().chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert world.fake.order() == ["deepinfra", "groq"] * 3
    world.fake.reset()
    world.client().chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert world.fake.order() == ["groq"]  # open: skipped
    time.sleep(1.1)
    world.fake.reset()
    answer = world.client().chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert world.fake.order() == ["deepinfra"]  # half-open: one probe, which succeeds and closes it
    assert answer.model_extra["_coaxiom"]["provider"] == "deepinfra"
    world.client().chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert world.fake.order() == ["deepinfra", "deepinfra"]


# ---- pinning and preferences ------------------------------------------------------------------------


def test_pinning_a_provider(world: World) -> None:
    answer = world.client().chat.completions.create(model="groq/llama-3.3-70b", messages=MESSAGES)
    block = answer.model_extra["_coaxiom"]
    assert block["provider"] == "groq" and block["provider_model_id"] == "llama-3.3-70b-versatile"
    assert world.fake.seen("groq")[0].body["model"] == "llama-3.3-70b-versatile"
    assert world.fake.seen("groq")[0].headers["authorization"] == f"Bearer {PLATFORM_CANARY}"
    with pytest.raises(openai.NotFoundError):
        world.client().chat.completions.create(model="openai/llama-3.3-70b", messages=MESSAGES)


@pytest.mark.parametrize(
    "preferences,expected",
    [
        ({"order": ["together", "groq"]}, "together"),
        ({"only": ["fireworks", "groq"]}, "groq"),
        ({"ignore": ["deepinfra"]}, "groq"),
        ({"max_price": {"prompt": 0.85, "completion": 0.9}, "ignore": ["deepinfra", "groq"]}, "together"),
        ({"sort": "price", "allow_fallbacks": True}, "deepinfra"),
    ],
)
def test_provider_preferences(world: World, preferences: dict[str, Any], expected: str) -> None:
    answer = world.client().chat.completions.create(
        model="llama-3.3-70b", messages=MESSAGES, extra_body={"provider": preferences}
    )
    assert answer.model_extra["_coaxiom"]["provider"] == expected
    assert answer.model_extra["_coaxiom"]["routed_by_price"] is ("order" not in preferences)
    assert all("provider" not in seen.body for seen in world.fake.seen())


def test_max_price_that_nothing_meets_is_a_404(world: World) -> None:
    with pytest.raises(openai.NotFoundError, match="preferences"):
        world.client().chat.completions.create(
            model="llama-3.3-70b", messages=MESSAGES, extra_body={"provider": {"max_price": {"prompt": 0.1}}}
        )


def test_allow_fallbacks_false_tries_only_the_first(world: World) -> None:
    world.fake.set("deepinfra", status=500)
    response = world.post({"model": "llama-3.3-70b", "messages": MESSAGES, "provider": {"allow_fallbacks": False}})
    assert response.status_code == 502 and world.fake.order() == ["deepinfra"]


def test_bad_preferences_are_a_400(world: World) -> None:
    for prefs in (
        {"sort": "vibes"},
        {"only": "groq"},
        {"order": ["nosuch"]},
        {"max_price": {"prompt": -1}},
        {"allow_fallbacks": "no"},
        {"colour": "red"},
    ):
        response = world.post({"model": "llama-3.3-70b", "messages": MESSAGES, "provider": prefs})
        assert response.status_code == 400, prefs
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_sort_by_latency_and_by_throughput_after_traffic(world: World) -> None:
    world.fake.set("groq", first_byte_delay=0.3, pieces=8)  # slow to start, then fast
    world.fake.set("together", chunk_delay=0.04, pieces=8)  # quick to start, then slow
    client = world.client()
    for slug in ("groq", "together"):
        for _ in range(2):
            for _chunk in client.chat.completions.create(
                model="llama-3.3-70b",
                messages=MESSAGES,
                stream=True,
                max_tokens=50,
                extra_body={"provider": {"only": [slug]}},
            ):
                pass
    health = world.gateway.health
    assert health.latency("groq") > health.latency("together")
    assert health.tokens_per_s("groq") > health.tokens_per_s("together")
    for sort, expected in (("latency", "together"), ("throughput", "groq")):
        answer = client.chat.completions.create(
            model="llama-3.3-70b", messages=MESSAGES, extra_body={"provider": {"sort": sort, "ignore": ["deepinfra"]}}
        )
        block = answer.model_extra["_coaxiom"]
        assert block["provider"] == expected and block["routed_by_price"] is False


# ---- what passes through ----------------------------------------------------------------------------

VISION = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Read this image, then call the tool if needed."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAE="}},
        ],
    }
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "save_result",
            "description": "Save the result",
            "parameters": {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]},
        },
    }
]


def test_images_tools_and_options_pass_through_and_tool_calls_come_back(world: World) -> None:
    world.fake.set("openai", tool_call=True)
    answer = world.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=VISION,
        tools=TOOLS,
        tool_choice="auto",
        temperature=0.2,
        response_format={"type": "json_object"},
        max_tokens=64,
        seed=7,
        extra_body={"top_k": 40},
    )
    [seen] = world.fake.seen("openai")
    assert seen.body["messages"] == VISION and seen.body["tools"] == TOOLS
    assert (
        seen.body["tool_choice"],
        seen.body["temperature"],
        seen.body["response_format"],
        seen.body["seed"],
        seen.body["top_k"],
        seen.body["max_tokens"],
    ) == ("auto", 0.2, {"type": "json_object"}, 7, 40, 64)
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.name == "save_result" and json.loads(call.function.arguments) == {"summary": "a red square"}
    assert answer.choices[0].finish_reason == "tool_calls"


def test_streamed_tool_calls(world: World) -> None:
    world.fake.set("openai", tool_call=True)
    chunks = list(
        world.client().chat.completions.create(model="gpt-4o-mini", messages=VISION, tools=TOOLS, stream=True)
    )
    calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls and calls[0][0].function.name == "save_result"
    assert world.fake.seen("openai")[0].body["stream_options"] == {"include_usage": True}


# ---- streams ----------------------------------------------------------------------------------------


def test_a_stream_is_relayed_chunk_by_chunk_and_ends_with_the_coaxiom_chunk(world: World) -> None:
    world.fake.set("deepinfra", chunk_delay=0.15, pieces=4)
    arrivals: list[float] = []
    events: list[str] = []
    with httpx.stream(
        "POST",
        f"{world.url}/api/v1/route/chat/completions",
        timeout=20,
        headers={"authorization": f"Bearer {world.dev}"},
        json={"model": "llama-3.3-70b", "messages": MESSAGES, "stream": True},
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["object"] == "chat.completion.chunk" and last["choices"] == []
    assert last["_coaxiom"]["provider"] == "deepinfra" and last["_coaxiom"]["version"] == "1.0"
    usage_chunk = json.loads(events[-3])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0
    sent = [t for slug, t in world.fake.sent_chunks if slug == "deepinfra"]
    content = arrivals[: len(sent) - 1]
    # each chunk reached the client as the fake sent it, not all at the end
    assert content[-1] - content[0] > 0.45
    assert all(b - a > 0.08 for a, b in zip(content[1:], content[2:], strict=False))


def test_the_openai_client_streams_unmodified(world: World) -> None:
    text = ""
    last = None
    for chunk in world.client().chat.completions.create(
        model="llama-3.3-70b", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        last = chunk
    assert text == "Hello from the fake provider."
    assert last is not None and last.model_extra["_coaxiom"]["provider"] == "deepinfra"


def test_a_stream_cut_after_the_first_byte_is_not_retried_and_bills_what_was_produced(world: World) -> None:
    world.fake.set("deepinfra", cut_after=3, pieces=4)
    after = _last_id(world)
    got = ""
    with pytest.raises(openai.APIError):
        for chunk in world.client().chat.completions.create(model="llama-3.3-70b", messages=MESSAGES, stream=True):
            if chunk.choices:
                got += chunk.choices[0].delta.content or ""
    assert got and world.fake.order() == ["deepinfra"]
    before = balance(world, world.dev)[0]
    record = _newer(world, after, 502)
    assert record.status == 502 and record.estimated and record.provider_slug == "deepinfra"
    assert record.completion_tokens == text_tokens(got) and record.cost > 0
    ledger = query(world, select(BalanceTransaction).where(BalanceTransaction.usage_record_id == record.id))
    assert ledger and ledger[0][0].amount == -record.cost
    assert before <= D(100)


def test_a_client_that_disconnects_cancels_the_upstream_and_pays_for_what_it_got(world: World) -> None:
    world.fake.set("deepinfra", chunk_delay=0.2, pieces=20, reply="word " * 40)
    after = _last_id(world)
    with httpx.stream(
        "POST",
        f"{world.url}/api/v1/route/chat/completions",
        timeout=20,
        headers={"authorization": f"Bearer {world.dev}"},
        json={"model": "llama-3.3-70b", "messages": MESSAGES, "stream": True},
    ) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(6)]
    assert any(line.startswith("data: ") for line in received)
    deadline = time.monotonic() + 5
    while "deepinfra" not in world.fake.cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "deepinfra" in world.fake.cancelled
    sent = len([1 for slug, _ in world.fake.sent_chunks if slug == "deepinfra"])
    assert sent < 10
    record = _newer(world, after, 499)
    assert record.estimated and record.completion_tokens > 0 and record.cost > 0


def _last_id(world: World) -> int:
    rows = query(world, select(UsageRecord.id).order_by(UsageRecord.id.desc()).limit(1))
    return rows[0][0] if rows else 0


def _newer(world: World, after: int, status: int) -> UsageRecord:
    statement = select(UsageRecord).where(UsageRecord.id > after, UsageRecord.status == status)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = query(world, statement)
        if rows:
            return rows[0][0]
        time.sleep(0.05)
    raise AssertionError(f"no usage record with status {status}")


# ---- keys -------------------------------------------------------------------------------------------


def test_customer_keys_are_used_first_and_not_charged(world: World) -> None:
    before = balance(world, world.dev)
    client = world.client(**{"X-Provider-Keys": provider_keys({"deepinfra": "dk-customer-1"})})
    raw = client.chat.completions.with_raw_response.create(model="llama-3.3-70b", messages=MESSAGES)
    assert raw.parse().model_extra["_coaxiom"]["key_source"] == "customer"
    assert world.fake.seen("deepinfra")[0].headers["authorization"] == "Bearer dk-customer-1"
    record = usage_for(world, raw.headers["x-request-id"])
    assert record.key_source == "customer" and record.cost > 0
    assert not query(world, select(BalanceTransaction).where(BalanceTransaction.usage_record_id == record.id))
    assert balance(world, world.dev) == before
    # a provider without the customer's key falls back to the platform key
    world.fake.set("deepinfra", status=500)
    answer = client.chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert answer.model_extra["_coaxiom"]["key_source"] == "platform"


def test_a_provider_with_no_key_at_all_is_a_400_naming_the_header(world: World) -> None:
    with pytest.raises(openai.BadRequestError, match="X-Provider-Keys"):
        world.client().chat.completions.create(model="mistral-large", messages=MESSAGES)
    client = world.client(**{"X-Provider-Keys": provider_keys({"mistral": "mk-customer"})})
    answer = client.chat.completions.create(model="mistral-large", messages=MESSAGES)
    assert answer.model_extra["_coaxiom"]["key_source"] == "customer"


@pytest.mark.parametrize(
    "header,problem",
    [
        ("%%%not-base64%%%", "not base64"),
        (base64.b64encode(b"{not json").decode(), "JSON"),
        (base64.b64encode(b'["groq"]').decode(), "object"),
        (provider_keys({"nosuchprovider": "k"}), "unknown provider"),
        (base64.b64encode(b'{"groq": 42}').decode(), "non-empty string"),
    ],
)
def test_a_malformed_provider_keys_header_is_a_400_naming_it(world: World, header: str, problem: str) -> None:
    response = world.post({"model": "llama-3.3-70b", "messages": MESSAGES}, **{"X-Provider-Keys": header})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "X-Provider-Keys" in error["message"] and problem in error["message"]
    assert error["code"] == "invalid_provider_keys" and world.fake.order() == []


def test_canary_keys_never_appear_in_logs_records_ledger_or_errors(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {"X-Provider-Keys": provider_keys({"deepinfra": CUSTOMER_CANARY})}
    bodies: list[str] = []
    after = _last_id(world)
    ok = world.client(**headers).chat.completions.with_raw_response.create(model="llama-3.3-70b", messages=MESSAGES)
    bodies.append(ok.http_response.text)
    pinned = world.client().chat.completions.with_raw_response.create(model="groq/llama-3.3-70b", messages=MESSAGES)
    bodies.append(pinned.http_response.text)
    stream = world.post({"model": "groq/llama-3.3-70b", "messages": MESSAGES, "stream": True})
    bodies.append(stream.text)
    # upstreams that quote the key back, as some do
    world.fake.set("deepinfra", status=401, error_message=f"Incorrect API key provided: {CUSTOMER_CANARY[:12]}***")
    bodies.append(world.post({"model": "llama-3.3-70b", "messages": MESSAGES}, **headers).text)
    world.fake.set("deepinfra", status=400, error_message=f"bad request for key {CUSTOMER_CANARY}")
    bodies.append(world.post({"model": "llama-3.3-70b", "messages": MESSAGES}, **headers).text)
    world.fake.set("groq", status=400, error_message=f"bad request for key ...{PLATFORM_CANARY[-8:]}")
    bodies.append(world.post({"model": "groq/llama-3.3-70b", "messages": MESSAGES}).text)
    world.fake.set("groq", status=500, error_message=f"crash with {PLATFORM_CANARY}")
    bodies.append(world.post({"model": "groq/llama-3.3-70b", "messages": MESSAGES}).text)
    bodies.append(
        world.post(
            {"model": "llama-3.3-70b", "messages": MESSAGES},
            **{"X-Provider-Keys": "x" + provider_keys({"groq": CUSTOMER_CANARY})},
        ).text
    )
    wait_until(
        lambda: (
            not query(
                world, select(UsageRecord.id).where(UsageRecord.id > after, UsageRecord.state == UsageState.PENDING)
            )
        ),
        what="the requests' records settle",
    )
    rows = query(world, select(UsageRecord)) + query(world, select(BalanceTransaction))
    dumped = " ".join(repr(vars(r[0])) for r in rows)
    everything = caplog.text + " ".join(bodies) + dumped + repr(world.gateway.config)
    assert "CANARY" not in everything
    assert len(world.fake.seen()) >= 6  # the keys did reach the providers


# ---- errors the openai client understands -----------------------------------------------------------


def test_error_statuses(world: World) -> None:
    keyless = world.post({"model": "llama-3.3-70b", "messages": MESSAGES}, key="")
    assert keyless.status_code == 401 and "API key required" in keyless.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        world.client("cxm_not_a_key").chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    with pytest.raises(openai.APIStatusError) as free:
        world.client(world.free).chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert free.value.status_code == 402 and "developer plan" in free.value.message
    with pytest.raises(openai.APIStatusError) as broke:
        world.client(world.broke).chat.completions.create(model="llama-3.3-70b", messages=MESSAGES)
    assert broke.value.status_code == 402 and "balance" in broke.value.message
    with pytest.raises(openai.NotFoundError, match="model not found"):
        world.client().chat.completions.create(model="no-such-model", messages=MESSAGES)
    for body, code in (
        ({"messages": MESSAGES}, "missing_model"),
        ({"model": "llama-3.3-70b"}, "invalid_messages"),
        ({"model": "llama-3.3-70b", "messages": MESSAGES, "max_tokens": -1}, "invalid_request"),
    ):
        response = world.post(body)
        assert response.status_code == 400 and response.json()["error"]["code"] == code
    bad_json = httpx.post(
        f"{world.url}/v1/chat/completions", content=b"{nope", headers={"authorization": f"Bearer {world.dev}"}
    )
    assert bad_json.status_code == 400 and set(bad_json.json()["error"]) >= {"message", "type", "code"}
    assert world.fake.order() == []


def test_the_quota_counts_routed_requests_only(world: World) -> None:
    def remaining(response: httpx.Response) -> int:
        return int(response.headers["x-ratelimit-remaining"])

    first = world.post({"model": "llama-3.3-70b", "messages": MESSAGES})
    assert first.status_code == 200 and int(first.headers["x-ratelimit-limit"]) == 10_000
    refused = [
        world.post({"model": "llama-3.3-70b"}),  # 400
        world.post({"model": "llama-3.3-70b", "messages": MESSAGES}, **{"X-Provider-Keys": "%%"}),  # 400
        world.post({"model": "no-such-model", "messages": MESSAGES}),  # 404
    ]
    assert [r.status_code for r in refused] == [400, 400, 404]
    assert all("x-ratelimit-remaining" not in r.headers for r in refused)  # never admitted
    second = world.post({"model": "llama-3.3-70b", "messages": MESSAGES})
    assert second.status_code == 200 and remaining(second) == remaining(first) - 1


def _new_key(world: World, name: str) -> tuple[str, str]:
    """A key created by another program (plain SQL through its own engine, no broker): this process
    finds it in the database on its first use."""

    async def main() -> tuple[str, str]:
        engine = create_engine(world.db)
        try:
            async with sessionmaker(engine)() as session, session.begin():
                issued = await accounts.create_key(session, world.dev_account, name)
            return issued.key.id, issued.secret
        finally:
            await engine.dispose()

    return run(main())


def test_a_key_revoked_through_the_api_is_refused_on_its_next_request(world: World) -> None:
    key_id, secret = _new_key(world, "temp")
    assert world.post({"model": "llama-3.3-70b", "messages": MESSAGES}, key=secret).status_code == 200
    assert world.post({"model": "llama-3.3-70b", "messages": MESSAGES}, key=secret).status_code == 200
    revoked = httpx.post(
        f"{world.url}/graphql",
        json={"query": "mutation ($id: ID!) { revokeApiKey(id: $id) { revoked } }", "variables": {"id": key_id}},
        headers={"authorization": f"Bearer {world.dev}"},
    ).json()
    assert revoked["data"]["revokeApiKey"]["revoked"] is True
    refused = world.post({"model": "llama-3.3-70b", "messages": MESSAGES}, key=secret)
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"


def test_a_key_revoked_elsewhere_is_refused_within_a_second(world: World) -> None:
    key_id, secret = _new_key(world, "elsewhere")
    assert world.post({"model": "llama-3.3-70b", "messages": MESSAGES}, key=secret).status_code == 200

    async def revoke_elsewhere() -> None:  # as a program without a broker would: plain SQL
        engine = create_engine(world.db)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    text("UPDATE api_keys SET revoked_at = created_at WHERE id = :id"), {"id": key_id}
                )
        finally:
            await engine.dispose()

    run(revoke_elsewhere())
    revoked_at = time.monotonic()
    while world.post({"model": "llama-3.3-70b", "messages": MESSAGES}, key=secret).status_code != 401:
        assert time.monotonic() - revoked_at < 2.0, "the revoked key was still accepted after 2 s"
        time.sleep(0.05)
    assert time.monotonic() - revoked_at < 1.0 + 0.5  # the key table's check interval, and a request


# ---- metering -----------------------------------------------------------------------------------------


def test_an_answer_without_usage_is_estimated_not_free(world: World) -> None:
    world.fake.set("deepinfra", usage=False, reply="x" * 41)
    raw = world.client().chat.completions.with_raw_response.create(model="llama-3.3-70b", messages=MESSAGES)
    assert raw.parse().usage is None
    record = usage_for(world, raw.headers["x-request-id"])
    expected_prompt = prompt_tokens({"messages": MESSAGES})
    assert record.estimated and (record.prompt_tokens, record.completion_tokens) == (expected_prompt, 11)
    assert record.cost == ((expected_prompt * D("0.20") + 11 * D("0.30")) / 1_000_000).normalize()
    world.fake.set("deepinfra", usage=False)
    stream = world.post({"model": "llama-3.3-70b", "messages": MESSAGES, "stream": True})
    record = usage_for(world, stream.headers["x-request-id"])
    assert record.estimated and record.completion_tokens == text_tokens("Hello from the fake provider.")


def test_the_balance_pays_platform_requests_exactly(world: World) -> None:
    listener = world.app.state.broker.listen(lambda e: isinstance(e, UsageRecorded | BalanceChanged))
    before, _ = balance(world, world.dev)
    raw = world.client().chat.completions.with_raw_response.create(
        model="llama-3.3-70b", messages=MESSAGES, max_tokens=100
    )
    record = usage_for(world, raw.headers["x-request-id"])
    [(row,)] = query(world, select(BalanceTransaction).where(BalanceTransaction.usage_record_id == record.id))
    assert row.type == "usage" and row.amount == -record.cost
    after, held = balance(world, world.dev)
    assert after == before - record.cost and held == 0
    events = list(listener.queue._queue)  # type: ignore[attr-defined]
    listener.close()
    used = [e for e in events if isinstance(e, UsageRecorded) and e.usage_id == record.id]
    charged = [e for e in events if isinstance(e, BalanceChanged) and e.transaction_id == row.id]
    assert used and used[0].cost == record.cost and used[0].provider == "deepinfra"
    assert charged and charged[0].amount == -record.cost and charged[0].balance == after


def test_routable_models(world: World) -> None:
    response = httpx.get(f"{world.url}/api/v1/route/models", headers={"authorization": f"Bearer {world.dev}"})
    assert response.status_code == 200
    data = response.json()
    assert data["count"] == len(data["models"]) >= 4
    llama = next(m for m in data["models"] if m["slug"] == "llama-3.3-70b")
    assert llama["providers"][0] == {
        "provider": "deepinfra",
        "model_id": "meta-llama/Llama-3.3-70B-Instruct",
        "configured": True,
    }
    mistral = next(m for m in data["models"] if m["slug"] == "mistral-large")
    assert mistral["providers"] == [{"provider": "mistral", "model_id": "mistral-large-latest", "configured": False}]
    assert httpx.get(f"{world.url}/api/v1/route/models").status_code == 402


def test_the_providers_file_is_read_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[providers.groq]\nbase_url = "http://127.0.0.1:9101/v1"\napi_key = "gsk_x"\n')
    env = {"PROVIDERS_FILE": str(path)}
    config = Settings.from_env(environ=env).gateway
    assert config.providers["groq"].base_url == "http://127.0.0.1:9101/v1" and config.providers["groq"].configured
    assert not config.providers["together"].configured and "gsk_x" not in repr(config)
    path.write_text('[providers.nosuch]\napi_key = "secret-value"\n')
    with pytest.raises(ValueError, match="unknown provider") as caught:
        Settings.from_env(environ=env)
    assert "secret-value" not in str(caught.value)
