"""What a GraphQL operation may cost, how long it may run and how large it may be, over HTTP and websockets.

Live uvicorn servers on fresh copies of the seed catalog: one with the default limits, one with a short
deadline and small caps. Keyless callers get an address of their own (`X-Forwarded-For`, which uvicorn
trusts from 127.0.0.1) so that their quotas stay apart.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from datasources.callers import OperatorToken
from schema.catalog import PROVIDER_OFFERS
from schema.limits import GraphQLLimits
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, pg_server_url

ADMIN_TOKEN = "operator-token-for-limit-tests-0123456789"
_addresses = itertools.count(1)

# The query that once held a server for minutes: 140 bytes, depth 7, no aliases.
EXPLOSIVE = "{ models(first: 500) { slug offers { provider { slug offers { model { slug offers { provider { slug } } } } } } } }"
DASHBOARD = "{ models(first: 1000) { slug displayName offers { inputPer1m outputPer1m provider { slug name } } } }"
DEEPER = (
    "{ models(first: 1000) { slug displayName offers { inputPer1m outputPer1m provider { slug name "
    "offers { inputPer1m } } } } }"
)
PRICE_FIELDS = "id variant inputPer1m outputPer1m blendedPer1m status updatedAt model { slug } provider { slug }"


def _serve(databases_by_backend: dict[str, Databases], limits: GraphQLLimits) -> Iterator[str]:
    backend = "postgresql" if pg_server_url() else "sqlite"
    url = asyncio.run(databases_by_backend[backend].migrated(seeded=True))
    settings = Settings(
        database_url=url,
        migrate_on_start=False,
        seed_on_start=False,
        graphql=limits,
        operator=OperatorToken(ADMIN_TOKEN),
    )
    with LiveServer(create_app(settings)) as server:
        yield server.url


@pytest.fixture(scope="module")
def base_url(databases_by_backend: dict[str, Databases]) -> Iterator[str]:
    yield from _serve(databases_by_backend, GraphQLLimits())


@pytest.fixture(scope="module")
def tight_url(databases_by_backend: dict[str, Databases]) -> Iterator[str]:
    yield from _serve(databases_by_backend, GraphQLLimits(deadline=0.25, response_bytes=20_000, request_bytes=4_000))


def post(base: str, query: str, token: str | None = None, **variables: Any) -> httpx.Response:
    headers = {"X-Forwarded-For": f"198.51.100.{next(_addresses)}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{base}/graphql", json={"query": query, "variables": variables}, headers=headers, timeout=60)


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


def developer_key(base: str) -> str:
    created = post(base, "mutation { createAccount(plan: DEVELOPER) { secret } }", ADMIN_TOKEN).json()
    return created["data"]["createAccount"]["secret"]


# ---- cost ---------------------------------------------------------------------------------------------


def test_the_explosive_query_is_refused_before_it_runs_and_uses_no_quota(base_url: str) -> None:
    headers = {"X-Forwarded-For": "203.0.113.7"}
    first = httpx.post(f"{base_url}/graphql", json={"query": "{ __typename }"}, headers=headers)
    remaining = int(first.headers["x-ratelimit-remaining"])
    started = time.perf_counter()
    refused = httpx.post(f"{base_url}/graphql", json={"query": EXPLOSIVE}, headers=headers, timeout=60)
    elapsed = time.perf_counter() - started
    body = refused.json()
    assert refused.status_code == 200 and body["data"] is None and codes(body) == ["QUERY_TOO_COMPLEX"]
    error = body["errors"][0]
    estimate, limit = error["extensions"]["cost"]["estimate"], error["extensions"]["cost"]["limit"]
    assert estimate > 1_000 * limit and limit == 50_000  # the free plan's budget
    assert f"{estimate:,}" in error["message"] and f"{limit:,}" in error["message"]
    assert body["extensions"]["cost"] == {"estimate": estimate, "limit": limit}
    assert "x-ratelimit-remaining" not in refused.headers  # not admitted, not counted
    after = httpx.post(f"{base_url}/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert int(after.headers["x-ratelimit-remaining"]) == remaining - 1
    assert elapsed < 1.0  # nothing ran: no resolver, no database


def test_a_paid_plan_admits_a_dashboard_and_refuses_it_one_level_deeper(base_url: str) -> None:
    key = developer_key(base_url)
    answer = post(base_url, DASHBOARD, key).json()
    assert "errors" not in answer, answer["errors"]
    models = answer["data"]["models"]
    assert len(models) > 700 and all(m["offers"] for m in models)
    assert all(o["provider"]["slug"] for m in models for o in m["offers"])
    assert 50_000 < answer["extensions"]["cost"]["estimate"] <= answer["extensions"]["cost"]["limit"] == 500_000
    deeper = post(base_url, DEEPER, key).json()
    assert codes(deeper) == ["QUERY_TOO_COMPLEX"] and deeper["data"] is None
    free = post(base_url, DASHBOARD).json()  # far below a paid plan's budget
    assert codes(free) == ["QUERY_TOO_COMPLEX"]


def test_every_answer_carries_its_estimate(base_url: str) -> None:
    body = post(base_url, "{ models(first: 3) { slug } }").json()
    assert body["extensions"]["cost"] == {"estimate": 6, "limit": 50_000}
    assert len(body["data"]["models"]) == 3


def test_nested_lists_are_pages(base_url: str) -> None:
    key = developer_key(base_url)
    query = (
        'query ($f: Int!, $o: Int!) { provider(slug: "bedrock") { modelCount offers(first: $f, offset: $o) { id } } }'
    )
    default = post(base_url, '{ provider(slug: "bedrock") { offers { id } } }', key).json()["data"]["provider"]
    assert len(default["offers"]) == PROVIDER_OFFERS.default
    everything = post(base_url, query, key, f=PROVIDER_OFFERS.maximum, o=0).json()["data"]["provider"]
    ids = [o["id"] for o in everything["offers"]]
    assert PROVIDER_OFFERS.default < len(ids) <= PROVIDER_OFFERS.maximum
    pages = [
        post(base_url, query, key, f=100, o=o).json()["data"]["provider"]["offers"] for o in range(0, len(ids), 100)
    ]
    assert [o["id"] for page in pages for o in page] == ids
    too_many = post(base_url, query, key, f=PROVIDER_OFFERS.maximum + 1, o=0).json()
    assert codes(too_many) == ["BAD_USER_INPUT"]
    assert (
        too_many["errors"][0]["message"]
        == f"first: must be from 1 to {PROVIDER_OFFERS.maximum}, got {PROVIDER_OFFERS.maximum + 1}"
    )
    assert too_many["errors"][0]["path"] == ["provider", "offers"]


def test_a_websocket_query_has_the_same_bound(base_url: str) -> None:
    async def run() -> list[dict[str, Any]]:
        uri = base_url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(uri, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            messages = []
            for op, query in (("1", EXPLOSIVE), ("2", "{ models(first: 2) { slug } }")):
                await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query}}))
                while (message := json.loads(await ws.recv()))["type"] != "complete":
                    messages.append(message)
            return messages

    refused, answered = asyncio.run(run())
    assert refused["type"] == "next" and codes(refused["payload"]) == ["QUERY_TOO_COMPLEX"]
    assert answered["type"] == "next" and len(answered["payload"]["data"]["models"]) == 2
    assert answered["payload"]["extensions"]["cost"]["estimate"] == 4


# ---- time and size ------------------------------------------------------------------------------------


def test_an_operation_past_the_deadline_is_stopped(tight_url: str) -> None:
    heavy = "{ " + " ".join(f"a{i}: prices(first: 1000) {{ {PRICE_FIELDS} }}" for i in range(20)) + " }"
    started = time.perf_counter()
    body = post(tight_url, heavy, ADMIN_TOKEN).json()
    elapsed = time.perf_counter() - started
    assert body["data"] is None and codes(body) == ["DEADLINE_EXCEEDED"]
    assert "0.25 s" in body["errors"][0]["message"]
    assert elapsed < 2.0  # stopped at its deadline, not run to the end
    assert post(tight_url, "{ models(first: 1) { slug } }").json()["data"]["models"]  # the server goes on


def test_an_answer_over_the_cap_is_refused_whole(tight_url: str) -> None:
    big = post(tight_url, f"{{ prices(first: 300) {{ {PRICE_FIELDS} }} }}", ADMIN_TOKEN)
    body = big.json()
    assert big.status_code == 200 and body["data"] is None and codes(body) == ["RESPONSE_TOO_LARGE"]
    assert "20,000 bytes" in body["errors"][0]["message"]
    small = post(tight_url, f"{{ prices(first: 3) {{ {PRICE_FIELDS} }} }}", ADMIN_TOKEN)
    assert len(small.json()["data"]["prices"]) == 3 and len(small.content) < 20_000


def test_a_websocket_answer_over_the_cap_is_an_error_and_the_connection_goes_on(tight_url: str) -> None:
    async def run() -> list[dict[str, Any]]:
        uri = tight_url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(uri, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {ADMIN_TOKEN}"}})
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            messages = []
            for op, first in (("big", 300), ("small", 2)):
                query = f"{{ prices(first: {first}) {{ {PRICE_FIELDS} }} }}"
                await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query}}))
                while (message := json.loads(await ws.recv()))["type"] != "complete":
                    messages.append(message)
            return messages

    big, small = asyncio.run(run())
    assert big["id"] == "big" and big["payload"]["data"] is None and codes(big["payload"]) == ["RESPONSE_TOO_LARGE"]
    assert small["id"] == "small" and len(small["payload"]["data"]["prices"]) == 2


def test_requests_over_the_cap_are_refused(tight_url: str) -> None:
    padding = "x" * 5_000
    response = httpx.post(f"{tight_url}/graphql", json={"query": "{ __typename }", "variables": {"pad": padding}})
    assert response.status_code == 413
    assert codes(response.json()) == ["REQUEST_TOO_LARGE"] and "4,000 bytes" in response.json()["errors"][0]["message"]

    def chunks() -> Iterator[bytes]:  # no content-length: counted as it arrives
        yield b'{"query": "{ __typename }", "variables": {"pad": "'
        for _ in range(10):
            yield b"y" * 1_000
        yield b'"}}'

    streamed = httpx.post(f"{tight_url}/graphql", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413

    async def oversized_message() -> int:
        uri = tight_url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(uri, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {"pad": padding}}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code

    assert asyncio.run(oversized_message()) == 1009
