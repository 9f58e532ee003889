"""The operator's metrics (routing/metrics.py): `/metrics` scraped over real HTTP after real traffic (GraphQL,
REST, the gateway through the fake provider with a fallback and upstream failures, a websocket
subscription), its guard, and the METRICS_PORT listener."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import URL

from routing.gateway.metering import prompt_tokens
from routing.settings import SettingsError
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, await_until, free_port, pg_server_url, wait_until
from tests.fake_provider import FakeProvider, providers_toml
from tests.test_gateway import KEYED, _setup

ADMIN = "operator-token-for-metrics-tests-0123456789"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CHAT = "/api/v1/route/chat/completions"
PRICE_FILE = {  # one offer of a provider the gateway does not route to: the file source has something to poll
    "xai/grok-metrics-test": {
        "litellm_provider": "xai",
        "mode": "chat",
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 2e-06,
    }
}


@dataclass
class World:
    url: str
    db: URL
    fake: FakeProvider
    app: Any
    dev: str

    def chat(self, model: str, **body: Any) -> httpx.Response:
        return httpx.post(
            self.url + CHAT,
            json={"model": model, "messages": [{"role": "user", "content": "Say hello."}], **body},
            headers={"authorization": f"Bearer {self.dev}"},
            timeout=20,
        )


Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def value(samples: Samples, name: str, **labels: str) -> float | None:
    for found, number in samples.get(name, []):
        if all(found.get(k) == v for k, v in labels.items()):
            return number
    return None


def scrape(url: str, token: str | None = ADMIN) -> Samples:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=20)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    return parse(response.text)


def settings_for(url: URL, env: dict[str, str]) -> Settings:
    settings = Settings.from_env(url.render_as_string(hide_password=False), env)
    return replace(settings, migrate_on_start=False, seed_on_start=False)


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    found = Databases("postgresql" if pg_server_url() else "sqlite", tmp_path_factory.mktemp("metrics"))
    yield found
    asyncio.run(found.drop_all())


@pytest.fixture(scope="module")
def world(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("metrics-world")
    url = asyncio.run(databases.migrated())
    dev, _, _, _, _ = asyncio.run(_setup(url))
    prices = tmp / "prices.json"
    prices.write_text(json.dumps(PRICE_FILE))
    with FakeProvider() as fake:
        providers = tmp / "providers.toml"
        providers.write_text(
            providers_toml(
                fake.url,
                {slug: f"pk-{slug}-platform" for slug in KEYED},
                {
                    "connect_timeout": 1.0,
                    "first_byte_timeout": 5.0,
                    "total_timeout": 10.0,
                    "breaker_failures": 1,
                    "breaker_cooldown": 600.0,
                },
                base_urls={"nebius": f"http://127.0.0.1:{free_port()}/v1"},  # nothing listens there
            )
        )
        env = {
            "ADMIN_TOKEN": ADMIN,
            "PROVIDERS_FILE": str(providers),
            "PRICE_SOURCES": "file",
            "PRICE_FILE": str(prices),
        }
        app = create_app(settings_for(url, env))
        with LiveServer(app) as server:
            yield World(server.url, url, fake, app, dev)


def test_series_after_real_traffic(world: World) -> None:
    # GraphQL, REST (a route with a path parameter, and a plain one), and the gateway.
    graphql = httpx.post(f"{world.url}/graphql", json={"query": "{ providers { slug } }"}, timeout=20)
    assert graphql.status_code == 200 and "errors" not in graphql.json()
    assert httpx.get(f"{world.url}/v1/models/llama-3.3-70b", timeout=20).status_code == 200
    assert httpx.get(f"{world.url}/api/v1/providers", timeout=20).status_code == 200
    # deepinfra, the cheapest, fails (and its breaker opens after one failure); groq answers.
    world.fake.set("deepinfra", status=503)
    answer = world.chat("llama-3.3-70b")
    assert answer.status_code == 200, answer.text
    assert answer.json()["_coaxiom"]["provider"] == "groq"
    assert world.fake.order() == ["deepinfra", "groq"]
    wait_until(lambda: world.app.state.broker.last_received is not None, what="an event through the broker")
    wait_until(lambda: "file" in world.app.state.pollers.last_ok, what="the file source polled")

    samples = scrape(world.url)

    requests = "pricegraph_http_requests_total"
    assert value(samples, requests, surface="graphql", route="/graphql", status="200") == 1
    assert value(samples, requests, surface="rest", route="/v1/models/{model_id:path}", status="200") == 1
    assert value(samples, requests, surface="rest", route="/api/v1/providers", status="200") == 1
    assert value(samples, requests, surface="gateway", route=CHAT, status="200") == 1
    routes = {labels["route"] for labels, _ in samples[requests]}
    assert not any("llama" in route for route in routes), routes  # templates, never raw paths
    assert {labels["surface"] for labels, _ in samples[requests]} <= {"graphql", "rest", "gateway", "web", "other"}
    count = "pricegraph_http_request_duration_seconds_count"
    assert value(samples, count, surface="gateway", route=CHAT) == 1
    assert value(samples, "pricegraph_http_request_duration_seconds_bucket", route=CHAT, le="+Inf") == 1

    assert value(samples, "pricegraph_upstream_latency_seconds_count", provider="deepinfra") == 1
    assert value(samples, "pricegraph_upstream_latency_seconds_count", provider="groq") == 1
    assert value(samples, "pricegraph_upstream_failures_total", provider="deepinfra", reason="http_503") == 1
    assert value(samples, "pricegraph_upstream_failures_total", provider="groq") is None
    assert value(samples, "pricegraph_gateway_fallbacks_total", provider="deepinfra") == 1

    body = {"model": "llama-3.3-70b", "messages": [{"role": "user", "content": "Say hello."}]}
    tokens = "pricegraph_gateway_tokens_total"
    assert value(samples, tokens, provider="groq", model="llama-3.3-70b", kind="input") == prompt_tokens(body)
    assert value(samples, tokens, provider="groq", model="llama-3.3-70b", kind="output") == 5  # the reply's words
    cost = value(samples, "pricegraph_gateway_cost_usd_total", provider="groq", model="llama-3.3-70b")
    assert cost is not None and 0 < cost < 0.001
    assert value(samples, tokens, provider="deepinfra") is None  # nothing metered for the failed attempt

    assert value(samples, "pricegraph_breaker_state", provider="deepinfra") == 2  # open
    assert value(samples, "pricegraph_breaker_state", provider="groq") == 0  # closed
    assert value(samples, "pricegraph_provider_consecutive_failures", provider="deepinfra") == 1

    for pool in ("account", "budget"):
        for name in ("pricegraph_leases", "pricegraph_leased_usd", "pricegraph_held_usd", "pricegraph_unsettled_usd"):
            found = value(samples, name, pool=pool)
            assert found is not None and found >= 0, (name, pool)
    assert value(samples, "pricegraph_held_usd", pool="account") == 0  # nothing in flight

    assert value(samples, "pricegraph_outbox_pending", channel="webhook") == 0
    assert value(samples, "pricegraph_websocket_connections") == 0
    assert value(samples, "pricegraph_subscriptions") == 0
    received = value(samples, "pricegraph_broker_events_received_total")
    assert received is not None and received >= 1
    lag = value(samples, "pricegraph_broker_last_event_age_seconds")
    assert lag is not None and 0 <= lag < 60
    age = value(samples, "pricegraph_price_source_age_seconds", source="file")
    assert age is not None and 0 <= age < 60

    # Websockets are not counted as requests; the scrape itself is, on its own route.
    assert all(labels["status"] != "500" for labels, _ in samples[requests])


async def test_websockets_and_subscriptions_are_read_at_scrape_time(world: World) -> None:
    ws_url = world.url.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        query = 'subscription { priceChanged(model: "llama-3.3-70b") { model } }'
        await ws.send(json.dumps({"id": "one", "type": "subscribe", "payload": {"query": query}}))
        fanout = await await_until(lambda: getattr(world.app.state, "fanout", None), what="the fan-out registry")
        await await_until(lambda: sum(len(g.members) for g in list(fanout.groups.values())) == 1, what="subscribed")
        samples = await asyncio.to_thread(scrape, world.url)
        assert value(samples, "pricegraph_websocket_connections") == 1
        assert value(samples, "pricegraph_subscriptions") == 1
        assert value(samples, "pricegraph_subscription_groups") == 1
    await await_until(lambda: not world.app.state.ws_connections.open, what="the connection released")
    samples = await asyncio.to_thread(scrape, world.url)
    assert value(samples, "pricegraph_websocket_connections") == 0
    graphql = [labels for labels, _ in samples["pricegraph_http_requests_total"] if labels["route"] == "/graphql"]
    assert all(labels["status"] == "200" for labels in graphql)  # the websocket was never counted


def test_holds_in_flight_and_a_connection_failure(world: World) -> None:
    # nebius (cheapest, nothing listens) fails to connect; cerebras answers, slowly: scraped meanwhile.
    world.fake.set("cerebras", first_byte_delay=2.0)
    done: list[httpx.Response] = []
    request = threading.Thread(target=lambda: done.append(world.chat("llama-3.1-8b", max_tokens=7)), daemon=True)
    request.start()
    wait_until(lambda: world.fake.seen("cerebras"), what="the request reaching cerebras")
    samples = scrape(world.url)
    held = value(samples, "pricegraph_held_usd", pool="account")
    assert held is not None and held > 0
    assert value(samples, "pricegraph_holding_leases", pool="account") == 1
    leases = value(samples, "pricegraph_leases", pool="account")
    assert leases is not None and leases >= 1
    assert value(samples, "pricegraph_upstream_failures_total", provider="nebius", reason="connection") == 1
    assert value(samples, "pricegraph_gateway_fallbacks_total", provider="nebius") == 1
    request.join(timeout=20)
    assert done and done[0].status_code == 200, done and done[0].text


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Basic b3BlcmF0b3I6c2VjcmV0"}, 401),
        ({"authorization": "Bearer not-the-operator-token"}, 403),
    ],
)
def test_metrics_are_for_the_operator_only(world: World, headers: dict[str, str], status: int) -> None:
    response = httpx.get(f"{world.url}/metrics", headers=headers, timeout=20)
    assert response.status_code == status
    assert response.json() == {"error": response.json()["error"], "code": status}
    assert "operators only" in response.json()["error"]
    assert "pricegraph_" not in response.text


def test_an_api_key_is_not_the_operator(world: World) -> None:
    response = httpx.get(f"{world.url}/metrics", headers={"authorization": f"Bearer {world.dev}"}, timeout=20)
    assert response.status_code == 403


def test_no_metrics_without_an_operator_token(databases: Databases) -> None:
    url = asyncio.run(databases.migrated())
    with LiveServer(create_app(settings_for(url, {}))) as server:
        response = httpx.get(f"{server.url}/metrics", headers={"authorization": "Bearer anything"}, timeout=20)
        assert response.status_code == 404
        assert response.json() == {"error": "Not Found", "code": 404}


def test_metrics_port_serves_them_on_a_listener_of_its_own(databases: Databases) -> None:
    url = asyncio.run(databases.migrated())
    port = free_port()
    app = create_app(settings_for(url, {"ADMIN_TOKEN": ADMIN, "METRICS_PORT": str(port)}))
    listener = f"http://127.0.0.1:{port}"
    with LiveServer(app) as server:
        assert httpx.get(f"{server.url}/healthz", timeout=20).status_code == 200
        samples = scrape(listener, token=None)  # no token needed there
        healthz = value(samples, "pricegraph_http_requests_total", surface="other", route="/healthz", status="200")
        assert healthz == 1
        assert "pricegraph_leases" in samples and "pricegraph_outbox_pending" in samples
        head = httpx.head(f"{listener}/metrics", timeout=20)
        assert head.status_code == 200 and head.content == b""
        assert httpx.get(f"{listener}/other", timeout=20).status_code == 404
        assert httpx.post(f"{listener}/metrics", timeout=20).status_code == 405
        # Not on the main listener, even to the operator.
        main = httpx.get(f"{server.url}/metrics", headers={"authorization": f"Bearer {ADMIN}"}, timeout=20)
        assert main.status_code == 404
    with pytest.raises(httpx.ConnectError):  # stopped with the app
        httpx.get(f"{listener}/metrics", timeout=5)


@pytest.mark.parametrize("raw", ["nine", "0", "70000", "-1"])
def test_a_bad_metrics_port_names_its_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="^METRICS_PORT: expected a port number"):
        Settings.from_env(environ={"METRICS_PORT": raw})


def test_metrics_port_must_differ_from_port() -> None:
    with pytest.raises(SettingsError, match="^METRICS_PORT: must differ from PORT"):
        Settings.from_env(environ={"PORT": "9100", "METRICS_PORT": "9100"})
    assert Settings.from_env(environ={"METRICS_PORT": "9100"}).metrics_port == 9100
    assert Settings.from_env(environ={}).metrics_port is None


def test_two_apps_keep_their_own_registries() -> None:
    settings = Settings(database_url=Settings.from_env(environ={}).database_url)
    first, second = create_app(settings), create_app(settings)
    assert first.state.metrics.registry is not second.state.metrics.registry
