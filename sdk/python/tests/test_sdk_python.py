"""The SDK against a real Pricegraph server (gateway in front of fake providers, on a real database)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import coaxiom
import httpx
import pytest
from coaxiom import cli
from sqlalchemy import update
from sqlalchemy.engine import URL
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from datasources import accounts
from datasources.callers import OperatorToken
from datasources.catalog.record import Observation, record_prices
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import ApiKey, Plan
from routing.gateway.app import install
from routing.gateway.keys import parse_provider_keys
from routing.gateway.providers import GatewayConfig
from server import Settings, create_app
from tests.conftest import SHARED_DOCS, Databases, LiveServer, await_until, pg_server_url
from tests.fake_provider import FakeProvider, providers_toml

D = Decimal
OPERATOR = "operator-token-for-sdk-tests-0123456789"
DOC_KEY = "cxm_your_key"  # the document's key, made a real team key for the snippets
REPLY = "Hello from the fake provider."
OFFERS = [
    Observation("llama-3.3-70b", "deepinfra", D("0.20"), D("0.30"), provider_model_id="meta-llama/Llama-3.3-70B"),
    Observation("llama-3.3-70b", "groq", D("0.50"), D("0.70"), provider_model_id="llama-3.3-70b-versatile"),
    Observation("llama-3.3-70b", "together", D("0.80"), D("0.90"), provider_model_id="meta-llama/Llama-3.3-70B-Turbo"),
    Observation("gpt-4o-mini", "openai", D("0.15"), D("0.60"), provider_model_id="gpt-4o-mini"),
]

# The document's Python snippets, verbatim (/work/shared/docs/price-api.txt, "API Routing").
NATIVE_SNIPPET = """# Python — native SDK
from coaxiom import CoaxiomClient

client = CoaxiomClient(
    api_key="cxm_your_key",
    provider_keys={
        "together": "sk-...",
        "groq": "gsk_...",
    },
)

res = client.chat(
    model="llama-3.3-70b",
    messages=[{"role": "user", "content": "Hello"}],
)
print(res["choices"][0]["message"]["content"])
print(res["_coaxiom"])  # routing metadata"""
OPENAI_SNIPPET = """# OpenAI drop-in (Python)
from coaxiom import CoaxiomClient
client = CoaxiomClient(api_key="cxm_your_key", provider_keys={"groq": "gsk_..."})
openai = client.openai_client()  # returns openai.OpenAI pointing at Coaxiom

res = openai.chat.completions.create(
    model="llama-3.3-70b",
    messages=[{"role": "user", "content": "Hello"}],
)
print(res.choices[0].message.content)"""


@dataclass
class World:
    url: str
    app: Any
    fake: FakeProvider
    team: str  # a team key, 100 USD
    free: str

    def client(self, key: str | None = None, **kwargs: Any) -> coaxiom.CoaxiomClient:
        return coaxiom.CoaxiomClient(api_key=key or self.team, base_url=self.url + "/api/v1/", **kwargs)

    def aclient(self, key: str | None = None, **kwargs: Any) -> coaxiom.AsyncCoaxiomClient:
        return coaxiom.AsyncCoaxiomClient(api_key=key or self.team, base_url=self.url + "/api/v1/", **kwargs)

    def record(self, model: str, provider: str, input_per_1m: str, output_per_1m: str) -> None:
        mutation = "mutation ($p: [PriceInput!]!) { recordPrices(prices: $p) { unchanged } }"
        price = {"model": model, "provider": provider, "inputPer1m": input_per_1m, "outputPer1m": output_per_1m}
        answer = httpx.post(
            f"{self.url}/graphql",
            json={"query": mutation, "variables": {"p": [price]}},
            headers={"authorization": f"Bearer {OPERATOR}"},
            timeout=20,
        ).json()
        assert "errors" not in answer, answer


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _setup(url: URL) -> tuple[str, str]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            for observation in OFFERS:
                await record_prices(session, [observation])
            _, doc = await accounts.create_account(session, Plan.TEAM, D(100), "doc")
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == doc.key.id)
                .values(secret_hash=accounts.hash_secret(DOC_KEY), prefix=DOC_KEY[: len(doc.key.prefix)])
            )
            _, team = await accounts.create_account(session, Plan.TEAM, D(100), "team")
            _, free = await accounts.create_account(session, Plan.FREE, D(0), "free")
        return team.secret, free.secret
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("sdk")
    databases = Databases("postgresql" if pg_server_url() else "sqlite", tmp)
    url = run(databases.migrated())
    team, free = run(_setup(url))
    try:
        with FakeProvider() as fake:
            path = tmp / "providers.toml"
            keyed = {slug: f"pk-{slug}-platform" for slug in ("deepinfra", "groq", "together", "openai")}
            path.write_text(providers_toml(fake.url, keyed))
            app = create_app(
                Settings(
                    database_url=url, migrate_on_start=False, seed_on_start=False, operator=OperatorToken(OPERATOR)
                )
            )
            install(app, GatewayConfig.from_file(path))
            with LiveServer(app) as server:
                yield World(server.url, app, fake, team, free)
    finally:
        run(databases.drop_all())


@pytest.fixture(autouse=True)
def fresh(world: World) -> None:
    world.fake.reset()


# ---- the document's snippets ------------------------------------------------------------------------


@pytest.mark.real_data
def test_the_snippets_are_the_document_s(world: World) -> None:
    text = (SHARED_DOCS / "price-api.txt").read_text()
    assert NATIVE_SNIPPET in text and OPENAI_SNIPPET in text


def test_the_document_s_snippets_run(world: World, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("COAXIOM_BASE_URL", world.url + "/api/v1/")
    exec(compile(NATIVE_SNIPPET, "native-snippet", "exec"), {})
    native = capsys.readouterr().out.splitlines()
    assert native[0] == REPLY
    meta = eval(native[1], {"Decimal": Decimal})
    assert meta["model_slug"] == "llama-3.3-70b" and meta["version"]
    customer = {"together": "sk-...", "groq": "gsk_..."}
    sent = world.fake.seen()[0]
    assert meta["provider"] == sent.provider
    assert meta["key_source"] == ("customer" if sent.provider in customer else "platform")
    if sent.provider in customer:
        assert sent.headers["authorization"] == f"Bearer {customer[sent.provider]}"

    world.fake.reset()
    exec(compile(OPENAI_SNIPPET, "openai-snippet", "exec"), {})
    assert capsys.readouterr().out.strip() == REPLY
    assert len(world.fake.seen()) == 1


def test_the_default_base_url_is_the_document_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COAXIOM_BASE_URL", raising=False)
    assert coaxiom.CoaxiomClient().base_url == "https://coaxiom.io/api/v1/"
    monkeypatch.setenv("COAXIOM_BASE_URL", "http://example.test:9/api/v1")
    assert coaxiom.CoaxiomClient().base_url == "http://example.test:9/api/v1/"
    assert coaxiom.CoaxiomClient(base_url="http://other.test").base_url == "http://other.test/api/v1/"


def test_provider_keys_header_parses_as_the_gateway_parses_it_and_keys_stay_hidden(world: World) -> None:
    keys = {"groq": "gsk_SECRET_123456", "together": "sk-SECRET_abcdef"}
    client = world.client(provider_keys=keys)
    header = client._config.headers()["x-provider-keys"]
    assert header == base64.b64encode(json.dumps(keys).encode()).decode()
    assert parse_provider_keys(header) == keys
    openai = client.openai_client()
    assert parse_provider_keys(openai.default_headers["X-Provider-Keys"]) == keys
    assert str(openai.base_url).rstrip("/") == world.url + "/api/v1/route"
    shown = repr(client)
    assert all(k not in shown for k in [*keys.values(), world.team])


# ---- chat -------------------------------------------------------------------------------------------


def test_chat_answers_as_a_dict_and_typed(world: World) -> None:
    res = world.client().chat("llama-3.3-70b", [{"role": "user", "content": "Hello"}], max_tokens=20)
    assert res["choices"][0]["message"]["content"] == REPLY == res.content
    assert res.coaxiom is not None and res.coaxiom.provider == "deepinfra" == res["_coaxiom"]["provider"]
    assert res.coaxiom.key_source == "platform" and isinstance(res.coaxiom.price_per_1m_usd, Decimal)
    assert world.fake.seen()[0].body["max_tokens"] == 20


def test_chat_streams_chunks_and_the_final_coaxiom_block(world: World) -> None:
    stream = world.client().chat("llama-3.3-70b", [{"role": "user", "content": "Hello"}], stream=True)
    chunks = list(stream)
    assert chunks and all(isinstance(c, coaxiom.ChatCompletionChunk) for c in chunks)
    assert "".join(c.delta for c in chunks) == REPLY == stream.text
    assert stream.coaxiom is not None and stream.coaxiom.provider == "deepinfra"


async def test_async_chat_and_stream(world: World) -> None:
    async with world.aclient() as client:
        res = await client.chat("llama-3.3-70b", [{"role": "user", "content": "Hi"}])
        assert res.content == REPLY
        stream = await client.chat("llama-3.3-70b", [{"role": "user", "content": "Hi"}], stream=True)
        text = "".join([chunk.delta async for chunk in stream])
        assert text == REPLY and stream.coaxiom is not None and stream.coaxiom.model_slug == "llama-3.3-70b"


# ---- reads ------------------------------------------------------------------------------------------


def test_every_read_of_the_price_api(world: World) -> None:
    client = world.client()
    prices = client.prices("llama-3.3-70b")
    assert [p.provider for p in prices] == ["deepinfra", "groq", "together"]
    assert prices.prices[0].blended_per_1m == D("0.25") and isinstance(prices.prices[0].input_per_1m, Decimal)
    assert [p.provider for p in client.prices("llama-3.3-70b", provider="groq")] == ["groq"]
    assert {p.model for p in client.prices()} >= {"llama-3.3-70b", "gpt-4o-mini"}

    history = client.history("llama-3.3-70b", "groq", days=7)
    assert (history.model, history.provider, history.interval) == ("llama-3.3-70b", "groq", "1d")
    assert history.candles and history.candles[-1].close == D("0.60")
    assert client.history("llama-3.3-70b", "groq", days=1, interval="1h").interval == "1h"

    comparison = client.compare(["llama-3.3-70b", "gpt-4o-mini"])
    first = comparison.models[0]
    assert (first.model, first.cheapest_provider, first.cheapest_blended) == ("llama-3.3-70b", "deepinfra", D("0.25"))
    assert client.compare("llama-3.3-70b", provider="groq").models[0].cheapest_provider == "groq"

    assert {m.slug for m in client.models()} >= {"llama-3.3-70b", "gpt-4o-mini"}
    assert "groq" in {p.slug for p in client.providers()}
    routable = {m.slug: m for m in client.route_models()}
    assert {p.provider for p in routable["llama-3.3-70b"].providers} >= {"groq", "deepinfra", "together"}


def test_every_read_of_the_account_api(world: World) -> None:
    client = world.client()
    client.chat("gpt-4o-mini", [{"role": "user", "content": "Hello"}])
    me = client.me()
    assert me["object"] == "me" and me["api_key"]["id"].startswith("key_")
    balance = client.balance()
    assert balance.currency == "usd" and balance.balance < D(100) and isinstance(balance.available, Decimal)
    summary = client.usage("summary", period="7d")
    assert summary["object"] == "usage.summary" and summary["total_requests"] >= 1
    assert isinstance(summary["total_cost"], Decimal)
    assert client.usage(period="30d", limit=10)["object"] == "usage"
    for view in ("logs", "costs", "models", "keys", "endpoints"):
        assert client.usage(view, period="30d", limit=10)["object"] == "list", view
    logs = client.usage(
        "logs", model="gpt-4o-mini", key_id=me["api_key"]["id"], endpoint="/api/v1/route/chat/completions"
    )
    assert logs["data"]
    assert client.usage("logs", start_time=int(time.time()) + 3600)["data"] == []
    history = client.billing_history(limit=1000)
    assert history["object"] == "list" and {t["type"] for t in history["data"]} >= {"credit", "usage"}


async def test_the_async_client_reads(world: World) -> None:
    async with world.aclient() as client:
        prices, providers, balance = await asyncio.gather(
            client.prices("gpt-4o-mini"), client.providers(), client.balance()
        )
        assert prices.prices[0].provider == "openai" and providers and balance.currency == "usd"
        assert (await client.history("gpt-4o-mini", "openai")).candles
        assert (await client.compare(["gpt-4o-mini"])).models[0].model == "gpt-4o-mini"
        assert await client.models() and await client.route_models() and (await client.me())["object"] == "me"
        assert (await client.usage("summary"))["object"] == "usage.summary"
        assert (await client.billing_history())["object"] == "list"


# ---- errors and retries -----------------------------------------------------------------------------


def test_errors_are_typed_with_the_server_s_status_and_message(world: World) -> None:
    secret = "cxm_not_a_real_key_SECRET"
    with pytest.raises(coaxiom.AuthenticationError) as bad_key:
        world.client(secret).balance()
    assert bad_key.value.status == 401 and bad_key.value.message and secret not in str(bad_key.value)

    with pytest.raises(coaxiom.PaymentRequiredError) as above_plan:
        world.client(world.free).history("llama-3.3-70b", "groq")
    assert above_plan.value.status == 402 and above_plan.value.message == above_plan.value.body["error"]

    with pytest.raises(coaxiom.NotFoundError) as unknown:
        world.client().prices("no-such-model-xyz")
    assert unknown.value.status == 404 and unknown.value.body["code"] == 404

    with pytest.raises(coaxiom.NotFoundError) as unknown_chat:  # an OpenAI-shaped error body
        world.client().chat("no-such-model-xyz", [{"role": "user", "content": "Hi"}])
    assert unknown_chat.value.message == unknown_chat.value.body["error"]["message"]

    with pytest.raises(coaxiom.BadRequestError) as bad:
        world.client().usage("summary", period="5y")
    assert bad.value.status == 400 and "period" in bad.value.message

    keys = {"groq": "gsk_\nBROKEN_SECRET"}
    with pytest.raises(coaxiom.APIError) as bad_header:
        world.client(provider_keys=keys).chat("llama-3.3-70b", [{"role": "user", "content": "Hi"}])
    assert bad_header.value.status == 400 and "BROKEN_SECRET" not in str(bad_header.value)


@pytest.fixture
def flaky() -> Iterator[tuple[str, list[float]]]:
    """A server that answers 429 with Retry-After: 1 once, then the prices."""
    hits: list[float] = []

    async def prices(request: Request) -> Response:
        hits.append(time.monotonic())
        if len(hits) == 1:
            body = {"error": "rate limit exceeded", "code": 429}
            return JSONResponse(body, status_code=429, headers={"retry-after": "1"})
        return Response(
            '{"model": null, "updated_at": null, "prices": [{"provider": "groq", "blended_per_1m": 0.075}]}'
        )

    with LiveServer(Starlette(routes=[Route("/api/v1/prices", prices)])) as server:
        yield server.url, hits


def test_a_read_retries_a_429_after_its_retry_after(flaky: tuple[str, list[float]]) -> None:
    url, hits = flaky
    prices = coaxiom.CoaxiomClient(base_url=url).prices()
    assert prices.prices[0].blended_per_1m == D("0.075") and str(prices.prices[0].blended_per_1m) == "0.075"
    assert len(hits) == 2 and hits[1] - hits[0] >= 0.95


def test_without_retries_a_429_is_a_rate_limit_error(flaky: tuple[str, list[float]]) -> None:
    url, hits = flaky
    with pytest.raises(coaxiom.RateLimitError) as limited:
        coaxiom.CoaxiomClient(base_url=url, max_retries=0).prices()
    assert (limited.value.status, limited.value.retry_after, limited.value.message) == (429, 1.0, "rate limit exceeded")
    assert len(hits) == 1


# ---- live prices ------------------------------------------------------------------------------------


async def test_subscribe_prices_receives_a_recorded_tick(world: World) -> None:
    broker = world.app.state.broker
    before = broker.listeners.copy()
    async with world.aclient() as client:
        ticks = client.subscribe_prices(model="llama-3.3-70b", provider="together")

        async def first() -> coaxiom.PriceTick:
            async for tick in ticks:
                return tick
            raise AssertionError("the feed ended")

        task = asyncio.create_task(first())
        await await_until(lambda: len(broker.listeners.copy() - before) >= 1, 10, "the subscription")
        await asyncio.to_thread(world.record, "llama-3.3-70b", "groq", "0.55", "0.70")  # another offer
        await asyncio.to_thread(world.record, "llama-3.3-70b", "together", "0.70", "0.90")
        tick = await asyncio.wait_for(task, 15)
        await ticks.aclose()
    assert (tick.model, tick.provider, tick.input_per_1m, tick.blended_per_1m) == (
        "llama-3.3-70b",
        "together",
        D("0.70"),
        D("0.80"),
    )
    assert tick.previous_blended_per_1m == D("0.85") and tick.change_pct is not None


def test_the_sync_subscription_and_the_watch_command(world: World, capsys: Any) -> None:
    broker = world.app.state.broker
    before = broker.listeners.copy()

    def trigger() -> None:
        deadline = time.monotonic() + 10
        while len(broker.listeners.copy() - before) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        world.record("gpt-4o-mini", "openai", "0.16", "0.60")

    threading.Thread(target=trigger, daemon=True).start()
    ticks = world.client().subscribe_prices(model="gpt-4o-mini")
    tick = next(ticks)
    ticks.close()  # type: ignore[attr-defined]
    assert (tick.provider, tick.input_per_1m) == ("openai", D("0.16"))


# ---- the command ------------------------------------------------------------------------------------


def test_the_command_prints_a_table_or_json(world: World, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COAXIOM_API_KEY", world.team)
    base = ["--base-url", world.url]
    assert cli.main([*base, "prices", "llama-3.3-70b"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["model", "provider"] and table[1].split()[1] == "deepinfra"
    assert cli.main([*base, "prices", "llama-3.3-70b", "--json"]) == 0
    body = json.loads(capsys.readouterr().out, parse_float=Decimal)
    assert body["prices"][0]["blended_per_1m"] == D("0.25")
    assert cli.main([*base, "--json", "history", "llama-3.3-70b", "groq", "--days", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["candles"]
    assert cli.main([*base, "history", "llama-3.3-70b", "groq"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["date", "open"]
    assert cli.main([*base, "prices", "no-such-model-xyz"]) == 1
    assert "404" in capsys.readouterr().err


def test_readme_exists() -> None:
    assert (Path(__file__).parents[1] / "README.md").is_file()


def test_a_resumed_feed_skips_ticks_already_delivered() -> None:
    from coaxiom.subscriptions import _Dedup

    def tick(at: str, price: str = "1") -> coaxiom.PriceTick:
        row = {"model": "m", "provider": "p", "variant": "", "inputPer1m": price, "outputPer1m": price}
        return coaxiom.PriceTick.from_graphql({**row, "blendedPer1m": price, "observedAt": at})

    seen = _Dedup()
    assert seen.fresh(tick("2026-05-12T14:32:00+00:00"))
    assert not seen.fresh(tick("2026-05-12T14:32:00Z"))  # the same tick again after a reconnect
    assert not seen.fresh(tick("2026-05-12T14:31:00+00:00"))
    assert seen.fresh(tick("2026-05-12T14:33:00+00:00", "2"))
