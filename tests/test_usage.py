"""The account API (/v1/me, /v1/balance, /v1/usage*, /v1/billing/history), the same in GraphQL, operator
credits (mutation and CLI), and live usage/balance subscriptions.

One live server per module on a copy of the seed catalog (SQLite, or PostgreSQL with TEST_DATABASE_URL).
Usage records and ledger rows are written directly, at chosen times relative to the start of the module.
Account A (developer) has two keys and the records below; account B (free plan, with a key) has one
record and one credit, and must never show in A's answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import event as sa_event
from sqlalchemy import update
from sqlalchemy.engine import URL

from datasources import accounts, ledger, usage
from datasources.callers import OperatorToken
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import BalanceTransaction, Plan, UsageRecord
from datasources.events import UsageRecorded
from datasources.pricing import COST_PARTS
from routing.websocket import Limits as WebsocketLimits
from server import Settings, create_app
from tests.conftest import FIXTURES, SHARED_DOCS, Databases, LiveServer, await_until, pg_server_url, subscribed

ROOT = Path(__file__).resolve().parents[1]
GATEWAY_DOC = SHARED_DOCS / "gateway-api.txt"
GATEWAY_EXAMPLES = FIXTURES / "gateway_api_examples.json"  # the document's examples, as extract_examples() reads them
DOC_MARKERS = ("Usage Response Example", "Billing History")
ADMIN = "usage-admin-token-for-tests"
D = Decimal
NOW = datetime.now(UTC).replace(microsecond=0)
DAY5 = (NOW - timedelta(days=5)).date()  # two records either side of this day's end (UTC)
CHAT, EMBED = "/v1/chat/completions", "/v1/embeddings"


@dataclass
class Rec:
    name: str
    at: datetime
    model: str
    provider: str | None
    endpoint: str
    key: str | None  # "k1", "k2" (account A), "kb" (account B) or None
    status: int
    input: int
    output: int
    cost: str
    request_id: str | None = None
    account: str = "A"
    id: int = 0
    cached: int = 0  # of `input`
    reasoning: int = 0  # of `output`
    input_cost: str = "0"  # of `cost`; the rest is the output's

    @property
    def parts(self) -> dict[str, D]:
        spent = {"input": D(self.input_cost), "output": D(self.cost) - D(self.input_cost)}
        return {part: spent.get(part, D(0)) for part in COST_PARTS}


RECORDS = [
    Rec(
        "r1",
        NOW - timedelta(hours=1),
        "gpt-4o-mini",
        "openai",
        CHAT,
        "k1",
        200,
        1000,
        500,
        "0.00045",
        "req_a1",
        cached=400,
        input_cost="0.00015",
    ),
    Rec("r2", NOW - timedelta(hours=2), "gpt-4o-mini", "azure", CHAT, "k2", 502, 100, 0, "0", "req_a2"),
    Rec(
        "r3",
        NOW - timedelta(days=2),
        "llama-3.3-70b",
        "groq",
        CHAT,
        "k1",
        200,
        2000,
        1000,
        "0.0012345678",
        reasoning=300,
    ),
    Rec("r4", datetime.combine(DAY5, time(23, 59, 59), UTC), "gpt-4o-mini", "openai", EMBED, "k2", 200, 300, 0, "0.1"),
    Rec(
        "r5",
        datetime.combine(DAY5 + timedelta(days=1), time(), UTC),
        "gpt-4o-mini",
        "openai",
        CHAT,
        "k1",
        200,
        300,
        200,
        "0.2",
    ),
    Rec("r6", NOW - timedelta(days=10), "my-finetune", None, CHAT, "k1", 200, 10, 10, "0.0000000001"),
    Rec("r7", NOW - timedelta(days=40), "llama-3.3-70b", "together", CHAT, "k1", 429, 0, 0, "0"),
    Rec("r8", NOW - timedelta(days=100), "gpt-4o", "openai", CHAT, None, 200, 10, 10, "1.1"),
    Rec("rb", NOW - timedelta(hours=1), "gpt-4o-mini", "openai", CHAT, "kb", 200, 999, 999, "5", "req_b1", "B"),
]
A_RECORDS = [r for r in RECORDS if r.account == "A"]


@dataclass
class World:
    base: str
    url: URL
    app: Any
    secrets: dict[str, str] = field(default_factory=dict)  # k1, k2, kb
    key_ids: dict[str, str] = field(default_factory=dict)
    account_ids: dict[str, int] = field(default_factory=dict)
    txn_ids: dict[str, int] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None

    def get(self, path: str, key: str | None = "k1", **params: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.secrets.get(key, key)}"} if key else {}
        response = httpx.get(f"{self.base}/v1{path}", params=params, headers=headers, timeout=60)
        assert response.status_code < 500, response.text
        return response

    def ok(self, path: str, key: str | None = "k1", **params: object) -> dict[str, Any]:
        response = self.get(path, key, **params)
        assert response.status_code == 200, response.text
        return response.json(parse_float=Decimal)

    def bad(self, path: str, parameter: str, key: str | None = "k1", **params: object) -> str:
        response = self.get(path, key, **params)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == 400 and parameter in body["error"], body
        return body["error"]

    def gql(self, query: str, token: str | None = "k1", **variables: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.secrets.get(token, token)}"} if token else {}
        response = httpx.post(
            f"{self.base}/graphql", json={"query": query, "variables": variables}, headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json(parse_float=Decimal)


async def _populate(world: World) -> None:
    engine = create_engine(world.url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            a, k1 = await accounts.create_account(session, Plan.DEVELOPER, name="Ada")
            b, kb = await accounts.create_account(session, Plan.FREE, name="Bob")
            k2 = await accounts.create_key(session, a.id, "ci")
            world.account_ids = {"A": a.id, "B": b.id}
            for name, issued in (("k1", k1), ("k2", k2), ("kb", kb)):
                world.secrets[name], world.key_ids[name] = issued.secret, issued.key.id
            for rec in RECORDS:
                row = UsageRecord(
                    account_id=world.account_ids[rec.account],
                    api_key_id=world.key_ids.get(rec.key or ""),
                    model_slug=rec.model,
                    provider_slug=rec.provider,
                    endpoint=rec.endpoint,
                    prompt_tokens=rec.input,
                    completion_tokens=rec.output,
                    cache_read_tokens=rec.cached,
                    reasoning_tokens=rec.reasoning,
                    cost=D(rec.cost),
                    **{f"cost_{part}": value for part, value in rec.parts.items()},
                    status=rec.status,
                    created_at=rec.at,
                    request_id=rec.request_id,
                    latency_ms=120,
                    key_source="platform",
                )
                session.add(row)
                await session.flush()
                rec.id = row.id
            r1 = next(r for r in RECORDS if r.name == "r1")
            # A: a top-up 6 days ago, the cost of r1 settled from a hold, a credit 30 minutes ago, a hold open.
            await ledger.credit(session, a.id, D(10), "top-up", idempotency_key="seed-1")
            await ledger.hold(session, a.id, D("0.01"))
            settled = await ledger.settle(session, a.id, D("0.01"), D("0.00045"), "gpt-4o-mini", r1.id)
            await ledger.credit(session, a.id, D("2.5"), "promo")
            await ledger.hold(session, a.id, D("0.5"))
            await ledger.credit(session, b.id, D(1), "b's top-up")
            rows = (await session.execute(BalanceTransaction.__table__.select().order_by(BalanceTransaction.id))).all()
            names = ["topup", "usage", "promo", "b"]
            world.txn_ids = {n: row.id for n, row in zip(names, rows, strict=True)}
            assert settled.transaction_id == world.txn_ids["usage"]
            for name, at in (
                ("topup", NOW - timedelta(days=6)),
                ("usage", NOW - timedelta(hours=1)),
                ("promo", NOW - timedelta(minutes=30)),
                ("b", NOW - timedelta(days=1)),
            ):
                await session.execute(
                    update(BalanceTransaction).where(BalanceTransaction.id == world.txn_ids[name]).values(created_at=at)
                )
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    databases = Databases("postgresql" if pg_server_url() else "sqlite", tmp_path_factory.mktemp("usage"))
    url = asyncio.run(databases.migrated(seeded=True))
    app = create_app(
        Settings(
            database_url=url,
            migrate_on_start=False,
            seed_on_start=False,
            operator=OperatorToken(ADMIN),
            websocket=WebsocketLimits(key_recheck_seconds=1.0),
        )
    )
    world = World("", url, app)
    asyncio.run(_populate(world))

    async def asgi(scope: Any, receive: Any, send: Any) -> None:  # remembers the server's event loop
        world.loop = asyncio.get_running_loop()
        await app(scope, receive, send)

    try:
        with LiveServer(asgi) as server:
            world.base = server.url
            yield world
    finally:
        asyncio.run(databases.drop_all())


def expected(records: list[Rec]) -> dict[str, Any]:
    ok = [r for r in records if 200 <= r.status < 400]
    return {
        "total_requests": len(records),
        "successful_requests": len(ok),
        "failed_requests": len(records) - len(ok),
        "input_tokens": sum(r.input for r in records),
        "output_tokens": sum(r.output for r in records),
        "total_tokens": sum(r.input + r.output for r in records),
        "cached_tokens": sum(r.cached for r in records),
        "cache_write_tokens": 0,
        "reasoning_tokens": sum(r.reasoning for r in records),
        "total_cost": sum(D(r.cost) for r in records),
        "cost_breakdown": {part: sum((r.parts[part] for r in records), D(0)) for part in COST_PARTS},
    }


def totals_of(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in expected([])}


def named(*names: str) -> list[Rec]:
    return [r for r in RECORDS if r.name in names]


# ---- the document's shapes -------------------------------------------------------------------------


def extract_examples(text: str) -> dict[str, Any]:
    """The gateway document's `usage.summary` and billing `list` examples, by the heading above each."""
    decoder = json.JSONDecoder()
    found = {}
    for marker in DOC_MARKERS:
        start = text.index("{", text.index(marker))
        found[marker] = decoder.raw_decode(text, start)[0]
    return found


def doc_examples() -> tuple[dict[str, Any], dict[str, Any]]:
    """The document's `usage.summary` and billing `list` examples."""
    examples = json.loads(GATEWAY_EXAMPLES.read_text())
    summary, billing = (examples[marker] for marker in DOC_MARKERS)
    assert (summary["object"], billing["object"]) == ("usage.summary", "list")
    return summary, billing


@pytest.mark.real_data
def test_the_shipped_examples_are_the_documents() -> None:
    assert json.loads(GATEWAY_EXAMPLES.read_text()) == extract_examples(GATEWAY_DOC.read_text())


def kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def assert_shape(example: object, actual: object, path: str = "$") -> None:
    assert kind(actual) == kind(example), f"{path}: {kind(actual)} where the document has {kind(example)}"
    if isinstance(example, dict):
        assert isinstance(actual, dict)
        for key, value in example.items():
            assert key in actual, f"{path}.{key} is missing"
            assert_shape(value, actual[key], f"{path}.{key}")
            if key in ("object", "currency"):
                assert actual[key] == value, f"{path}.{key}"
    elif isinstance(example, list) and example:
        assert isinstance(actual, list) and actual, f"{path}: empty where the document has items"
        for index, item in enumerate(actual):
            assert_shape(example[0], item, f"{path}[{index}]")


TOTAL_FIELDS = set(expected([]))


def test_summary_and_billing_history_match_the_document(world: World) -> None:
    summary_doc, billing_doc = doc_examples()
    summary = world.ok("/usage/summary", period="7d")
    assert_shape(summary_doc, summary)
    assert totals_of(summary) == expected(named("r1", "r2", "r3", "r4", "r5"))
    assert isinstance(summary["total_requests"], int) and summary["currency"] == "usd"
    assert summary["period"] == "7d" and summary["end_time"] - summary["start_time"] == 7 * 86_400
    models = {m["model"]: m for m in summary["by_model"]}
    assert set(models) == {"gpt-4o-mini", "llama-3.3-70b"}
    assert models["gpt-4o-mini"]["object"] == "usage.model"
    assert totals_of(models["gpt-4o-mini"]) == expected(named("r1", "r2", "r4", "r5"))
    assert [m["model"] for m in summary["by_model"]] == ["gpt-4o-mini", "llama-3.3-70b"]  # most spent first
    endpoints = {e["endpoint"]: e for e in summary["by_endpoint"]}
    assert totals_of(endpoints[EMBED]) == expected(named("r4"))
    assert totals_of(endpoints[CHAT]) == expected(named("r1", "r2", "r3", "r5"))
    assert all(e["object"] == "usage.endpoint" for e in summary["by_endpoint"])

    history = world.ok("/billing/history", limit=100)
    assert_shape(billing_doc, history)
    assert history["has_more"] is False
    assert [t["id"] for t in history["data"]] == [f"txn_{world.txn_ids[n]}" for n in ("promo", "usage", "topup")]
    promo, used, topup = history["data"]
    assert (topup["type"], topup["amount"], topup["description"]) == ("credit", D(10), "top-up")
    assert topup["created"] == int((NOW - timedelta(days=6)).timestamp()) and topup["metadata"] == {}
    assert (used["type"], used["amount"], used["balance_after"]) == ("usage", D("-0.00045"), D("9.99955"))
    r1 = named("r1")[0]
    assert used["metadata"] == {"usage_id": f"usage_{r1.id}", "request_id": "req_a1"}
    assert (promo["amount"], promo["balance_after"]) == (D("2.5"), D("12.49955"))


def test_me_and_balance(world: World) -> None:
    me = world.ok("/me", key="k2")
    assert me["object"] == "me"
    assert me["account"] == {
        "object": "account",
        "id": str(world.account_ids["A"]),
        "name": "Ada",
        "plan": "developer",
        "created": me["account"]["created"],
    }
    key = me["api_key"]
    assert (key["object"], key["id"], key["name"]) == ("api_key", world.key_ids["k2"], "ci")
    assert world.secrets["k2"].startswith(key["prefix"]) and isinstance(key["created"], int)
    customer = me["customer"]
    assert customer["object"] == "customer" and customer["id"] == str(world.account_ids["A"])
    assert (customer["balance"], customer["held"], customer["available"], customer["currency"]) == (
        D("12.49955"),
        D("0.5"),
        D("11.99955"),
        "usd",
    )
    assert me["quota"]["limit"] == 10_000 and isinstance(me["quota"]["remaining"], int)

    assert world.ok("/balance") == {
        "object": "balance",
        "balance": D("12.49955"),
        "held": D("0.5"),
        "available": D("11.99955"),
        "currency": "usd",
    }
    assert world.ok("/balance", key="kb")["balance"] == D(1)
    assert world.ok("/me", key="kb")["account"]["plan"] == "free"  # any plan may read its own account


def test_usage_logs_and_their_shape(world: World) -> None:
    body = world.ok("/usage", period="24h", limit=1)
    assert body["object"] == "usage" and body["period"] == "24h"
    assert body["summary"]["object"] == "usage.summary"
    assert totals_of(body["summary"]) == expected(named("r1", "r2"))
    logs = body["logs"]
    assert logs["object"] == "list" and logs["has_more"] is True and len(logs["data"]) == 1
    r1 = named("r1")[0]
    assert logs["data"][0] == {
        "object": "usage.log",
        "id": f"usage_{r1.id}",
        "request_id": "req_a1",
        "created": int(r1.at.timestamp()),
        "model": "gpt-4o-mini",
        "provider": "openai",
        "variant": None,
        "endpoint": CHAT,
        "key_id": world.key_ids["k1"],
        "key_source": "platform",
        "status": 200,
        "success": True,
        "input_tokens": 1000,
        "output_tokens": 500,
        "total_tokens": 1500,
        "cached_tokens": 400,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "estimated": False,
        "cost": D("0.00045"),
        "cost_breakdown": {**dict.fromkeys(COST_PARTS, D(0)), "input": D("0.00015"), "output": D("0.0003")},
        "currency": "usd",
        "latency_ms": 120,
    }

    everything = world.ok("/usage/logs", limit=1000)
    newest_first = sorted(A_RECORDS, key=lambda r: r.at, reverse=True)
    assert [e["id"] for e in everything["data"]] == [f"usage_{r.id}" for r in newest_first]
    assert everything["has_more"] is False and everything["period"] is None
    # Pages of 3, following starting_after, give the same sequence.
    seen, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"starting_after": after} if after else {})
        page = world.ok("/usage/logs", **params)
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert seen == [e["id"] for e in everything["data"]]
    assert (
        world.ok("/usage/logs", model="openai/gpt-4o-mini", endpoint=EMBED)["data"][0]["id"]
        == f"usage_{named('r4')[0].id}"
    )


def test_periods_and_exact_money(world: World) -> None:
    windows = {
        "24h": ("r1", "r2"),
        "7d": ("r1", "r2", "r3", "r4", "r5"),
        "30d": ("r1", "r2", "r3", "r4", "r5", "r6"),
        "90d": ("r1", "r2", "r3", "r4", "r5", "r6", "r7"),
    }
    for period, names in windows.items():
        assert totals_of(world.ok("/usage/summary", period=period)) == expected(named(*names)), period
    everything = world.ok("/usage/summary")
    assert totals_of(everything) == expected(A_RECORDS)
    assert everything["total_cost"] == D("1.4016845679")  # exact: 1e-10 survives beside 1.1
    assert everything["start_time"] is None and everything["end_time"] is None


def test_start_and_end_in_every_form_and_alias(world: World) -> None:
    start = datetime.combine(DAY5, time(), UTC)
    end = start + timedelta(days=1)
    day5_only = expected(named("r4"))
    forms = [
        {"start_time": int(start.timestamp()), "end_time": int(end.timestamp())},
        {"start_time": int(start.timestamp()) * 1000, "end_time": int(end.timestamp()) * 1000},
        {"start_time": DAY5.isoformat(), "end_time": (DAY5 + timedelta(days=1)).isoformat()},
        {"start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end_time": end.strftime("%Y-%m-%dT%H:%M:%S.000Z")},
        {"start_time": format_datetime(start, usegmt=True), "end_time": format_datetime(end, usegmt=True)},
        {"start": int(start.timestamp()), "end": int(end.timestamp()) * 1000},
        {"after": DAY5.isoformat(), "before": int(end.timestamp())},
    ]
    for params in forms:
        body = world.ok("/usage/summary", **params)
        assert totals_of(body) == day5_only, params
        assert (body["start_time"], body["end_time"]) == (int(start.timestamp()), int(end.timestamp()))
    # The end is exclusive: r5 at the next midnight starts the next window.
    assert totals_of(
        world.ok("/usage/summary", start_time=int(end.timestamp()), end_time=int(end.timestamp()) + 1)
    ) == expected(named("r5"))
    # A period ends at end_time when one is given.
    assert totals_of(world.ok("/usage/summary", period="24h", end_time=int(end.timestamp()))) == day5_only
    # Only a start: up to now.
    assert totals_of(world.ok("/usage/summary", after=int((NOW - timedelta(hours=3)).timestamp()))) == expected(
        named("r1", "r2")
    )


def test_model_key_and_endpoint_filters(world: World) -> None:
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({"model": "gpt-4o-mini"}, ("r1", "r2", "r4", "r5")),  # bare: every provider
        ({"model": "openai/gpt-4o-mini"}, ("r1", "r4", "r5")),  # provider/model: that provider
        ({"model": "azure/gpt-4o-mini"}, ("r2",)),
        ({"model": "Llama-3.3-70B-Instruct"}, ("r3", "r7")),  # any spelling the catalog knows
        ({"model": "my-finetune"}, ("r6",)),  # not in the catalog: the recorded name itself
        ({"model": "no-such-model"}, ()),
        ({"key_id": world.key_ids["k2"]}, ("r2", "r4")),
        ({"endpoint": EMBED}, ("r4",)),
        ({"endpoint": "/embeddings"}, ("r4",)),
        ({"endpoint": "/v1/nothing"}, ()),
        ({"model": "gpt-4o-mini", "key_id": world.key_ids["k1"], "period": "7d"}, ("r1", "r5")),
    ]
    for params, names in cases:
        assert totals_of(world.ok("/usage/summary", **params)) == expected(named(*names)), params
        logs = world.ok("/usage/logs", **params)["data"]
        assert sorted(e["id"] for e in logs) == sorted(f"usage_{r.id}" for r in named(*names)), params


def test_costs_models_keys_and_endpoints(world: World) -> None:
    by_day: dict[date, list[Rec]] = defaultdict(list)
    for rec in A_RECORDS:
        by_day[rec.at.astimezone(UTC).date()].append(rec)
    costs = world.ok("/usage/costs")
    assert (costs["object"], costs["currency"], costs["has_more"]) == ("list", "usd", False)
    assert [d["date"] for d in costs["data"]] == [d.isoformat() for d in sorted(by_day)]
    for entry in costs["data"]:
        day = date.fromisoformat(entry["date"])
        assert entry["object"] == "usage.cost"
        assert entry["start_time"] == int(datetime.combine(day, time(), UTC).timestamp())
        assert entry["end_time"] == entry["start_time"] + 86_400
        assert totals_of(entry) == expected(by_day[day])
    assert DAY5.isoformat() in [d["date"] for d in costs["data"]]  # 23:59:59 and 00:00:00 on two UTC days
    recent = world.ok("/usage/costs", limit=2)
    assert recent["has_more"] is True and [d["date"] for d in recent["data"]] == [d["date"] for d in costs["data"][-2:]]

    models = world.ok("/usage/models", period="90d")
    assert [m["model"] for m in models["data"]] == ["gpt-4o-mini", "llama-3.3-70b", "my-finetune"]
    assert models["data"][0] == {
        "object": "usage.model",
        "model": "gpt-4o-mini",
        **expected(named("r1", "r2", "r4", "r5")),
    }
    top = world.ok("/usage/models", period="90d", limit=1)
    assert len(top["data"]) == 1 and top["has_more"] is True

    keys = world.ok("/usage/keys")
    by_key = {k["key_id"]: k for k in keys["data"]}
    assert set(by_key) == {world.key_ids["k1"], world.key_ids["k2"], None}
    k2 = by_key[world.key_ids["k2"]]
    assert (k2["object"], k2["name"], k2["revoked"]) == ("usage.key", "ci", False)
    assert world.secrets["k2"].startswith(k2["prefix"])
    assert totals_of(k2) == expected(named("r2", "r4"))
    assert totals_of(by_key[None]) == expected(named("r8")) and by_key[None]["name"] is None

    endpoints = world.ok("/usage/endpoints", period="30d")
    assert {e["endpoint"]: totals_of(e) for e in endpoints["data"]} == {
        CHAT: expected(named("r1", "r2", "r3", "r5", "r6")),
        EMBED: expected(named("r4")),
    }


def test_billing_history_pages_and_filters(world: World) -> None:
    first = world.ok("/billing/history", limit=1)
    assert first["has_more"] is True and first["data"][0]["id"] == f"txn_{world.txn_ids['promo']}"
    second = world.ok("/billing/history", limit=1, starting_after=first["data"][0]["id"])
    assert second["data"][0]["id"] == f"txn_{world.txn_ids['usage']}" and second["has_more"] is True
    last = world.ok("/billing/history", limit=5, starting_after=second["data"][0]["id"])
    assert [t["id"] for t in last["data"]] == [f"txn_{world.txn_ids['topup']}"] and last["has_more"] is False
    assert [t["type"] for t in world.ok("/billing/history", type="usage")["data"]] == ["usage"]
    assert len(world.ok("/billing/history", period="24h")["data"]) == 2
    # B's own history holds only B's credit; A's cursor is not B's.
    assert [t["id"] for t in world.ok("/billing/history", key="kb")["data"]] == [f"txn_{world.txn_ids['b']}"]
    world.bad("/billing/history", "starting_after", key="kb", starting_after=f"txn_{world.txn_ids['promo']}")
    world.bad("/billing/history", "starting_after", starting_after="cus_1")


def test_bad_filters_name_the_parameter(world: World) -> None:
    for path in ("/usage", "/usage/logs", "/usage/summary", "/usage/costs", "/usage/models", "/usage/keys"):
        world.bad(path, "period", period="1y")
    world.bad("/usage/summary", "start_time", start_time="yesterday-ish")
    world.bad("/usage/summary", "after", after="not a date")
    world.bad("/usage/summary", "before", before="-5")
    world.bad("/usage/summary", "end_time", start_time=1719964800, end_time=1719878400)
    world.bad("/usage/summary", "start_time", period="7d", start_time=1719878400)
    world.bad("/usage/summary", "start", start_time=1719878400, start=1719878400)
    world.bad("/usage/logs", "limit", limit=0)
    world.bad("/usage/logs", "limit", limit=1001)
    world.bad("/usage/logs", "limit", limit="ten")
    world.bad("/usage/logs", "starting_after", starting_after="usage_x")
    world.bad("/usage/summary", "key_id", key_id="key_doesnotexist")
    world.bad("/usage/summary", "key_id", key_id=world.key_ids["kb"])  # another account's key
    world.bad("/usage/summary", "endpoint", endpoint="/")
    world.bad("/billing/history", "period", period="2w")


def test_keys_are_required_and_see_only_their_own_account(world: World) -> None:
    for path in (
        "/me",
        "/balance",
        "/usage",
        "/usage/logs",
        "/usage/summary",
        "/usage/costs",
        "/usage/models",
        "/usage/keys",
        "/usage/endpoints",
        "/billing/history",
    ):
        for key in (None, "cxm_not-a-key", ADMIN):
            response = world.get(path, key=key)
            assert response.status_code == 401, (path, key, response.text)
            assert response.json()["code"] == 401 and response.headers["www-authenticate"] == "Bearer"
    b = world.ok("/usage", key="kb")
    assert totals_of(b["summary"]) == expected(named("rb"))
    assert [e["id"] for e in b["logs"]["data"]] == [f"usage_{named('rb')[0].id}"]
    assert [k["key_id"] for k in world.ok("/usage/keys", key="kb")["data"]] == [world.key_ids["kb"]]
    assert all(r.name != "rb" for r in A_RECORDS)
    a_logs = world.ok("/usage/logs", limit=1000)["data"]
    assert f"usage_{named('rb')[0].id}" not in {e["id"] for e in a_logs}
    world.bad("/usage/logs", "starting_after", key="kb", starting_after=f"usage_{named('r1')[0].id}")


def test_each_request_counts_once_against_the_plan_quota(world: World) -> None:
    first = world.get("/balance", key="k2")
    second = world.get("/usage/summary", key="k1")  # the same account: keys share its quota
    remaining = int(first.headers["x-ratelimit-remaining"])
    assert first.headers["x-ratelimit-limit"] == "10000"
    assert int(second.headers["x-ratelimit-remaining"]) == remaining - 1
    refused = world.get("/usage/summary", key="k1", period="1y")  # a bad filter uses no quota
    assert refused.status_code == 400
    assert int(world.get("/balance", key="k1").headers["x-ratelimit-remaining"]) == remaining - 2
    free = world.get("/balance", key="kb")
    assert free.status_code == 200 and free.headers["x-ratelimit-limit"] == "100"


async def test_summary_is_three_statements_and_decimal(world: World) -> None:
    engine = create_engine(world.url)
    statements: list[str] = []
    sa_event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        async with sessionmaker(engine)() as session:
            scope = usage.Scope(world.account_ids["A"], None, None)
            statements.clear()
            summary = await usage.summary(session, scope)
            assert len(statements) == 3
            assert isinstance(summary.totals.cost, Decimal) and summary.totals.cost == D("1.4016845679")
            assert all(isinstance(g.totals.cost, Decimal) for g in summary.by_model)
            days = await usage.by_day(session, scope)
            assert sum(g.totals.cost for g in days.items) == summary.totals.cost
    finally:
        await engine.dispose()


# ---- GraphQL -------------------------------------------------------------------------------------

USAGE_QUERY = """
query ($filter: UsageFilter, $first: Int!, $after: String) {
  balance { balance held available currency }
  usage(filter: $filter) {
    period startTime endTime
    summary { requests successfulRequests failedRequests inputTokens outputTokens totalTokens cost }
    byDay { date requests cost }
    byModel { model requests cost }
    byKey { keyId name prefix revoked requests cost }
    byEndpoint { endpoint requests cost }
    logs(first: $first, after: $after) {
      nodes { id requestId model provider endpoint keyId status success inputTokens outputTokens cost createdAt }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""


def gql_totals(records: list[Rec]) -> dict[str, Any]:
    e = expected(records)
    return {
        "requests": e["total_requests"],
        "successfulRequests": e["successful_requests"],
        "failedRequests": e["failed_requests"],
        "inputTokens": e["input_tokens"],
        "outputTokens": e["output_tokens"],
        "totalTokens": e["total_tokens"],
        "cost": e["total_cost"],
    }


def test_graphql_balance_and_usage(world: World) -> None:
    body = world.gql(USAGE_QUERY, filter={"period": "7d", "model": "openai/gpt-4o-mini"}, first=2)
    assert "errors" not in body, body
    data = body["data"]
    assert data["balance"] == {"balance": "12.49955", "held": "0.5", "available": "11.99955", "currency": "usd"}
    used = data["usage"]
    assert used["period"] == "7d" and used["startTime"] and used["endTime"]
    totals = {k: (D(v) if k == "cost" else v) for k, v in used["summary"].items()}
    assert totals == gql_totals(named("r1", "r4", "r5"))
    assert [m["model"] for m in used["byModel"]] == ["gpt-4o-mini"]
    assert {e["endpoint"] for e in used["byEndpoint"]} == {CHAT, EMBED}
    assert {k["keyId"] for k in used["byKey"]} == {world.key_ids["k1"], world.key_ids["k2"]}
    assert [d["date"] for d in used["byDay"]] == sorted({r.at.date().isoformat() for r in named("r1", "r4", "r5")})
    logs = used["logs"]
    assert [n["id"] for n in logs["nodes"]] == [f"usage_{named('r1')[0].id}", f"usage_{named('r5')[0].id}"]
    assert logs["pageInfo"] == {"hasNextPage": True, "endCursor": f"usage_{named('r5')[0].id}"}
    following = world.gql(
        USAGE_QUERY,
        filter={"period": "7d", "model": "openai/gpt-4o-mini"},
        first=2,
        after=logs["pageInfo"]["endCursor"],
    )["data"]["usage"]["logs"]
    assert [n["id"] for n in following["nodes"]] == [f"usage_{named('r4')[0].id}"]
    assert following["pageInfo"]["hasNextPage"] is False

    start = datetime.combine(DAY5, time(), UTC)
    window = world.gql(
        "query ($f: UsageFilter) { usage(filter: $f) { summary { requests cost } } }",
        f={
            "startTime": start.isoformat(),
            "endTime": (start + timedelta(days=1)).isoformat(),
            "keyId": world.key_ids["k2"],
            "endpoint": EMBED,
        },
    )
    assert window["data"]["usage"]["summary"] == {"requests": 1, "cost": "0.1"}
    everything = world.gql("{ usage { summary { requests cost } } }")["data"]["usage"]["summary"]
    assert everything == {"requests": len(A_RECORDS), "cost": "1.4016845679"}


def test_graphql_billing_history_and_errors(world: World) -> None:
    query = (
        "query ($after: String) { billingHistory(first: 2, after: $after) { "
        "nodes { id type amount balanceAfter description currency usageId requestId createdAt } "
        "pageInfo { hasNextPage endCursor } } }"
    )
    page = world.gql(query)["data"]["billingHistory"]
    assert [n["id"] for n in page["nodes"]] == [f"txn_{world.txn_ids['promo']}", f"txn_{world.txn_ids['usage']}"]
    assert page["nodes"][1]["amount"] == "-0.00045" and page["nodes"][1]["requestId"] == "req_a1"
    assert page["pageInfo"]["hasNextPage"] is True
    rest = world.gql(query, after=page["pageInfo"]["endCursor"])["data"]["billingHistory"]
    assert [n["type"] for n in rest["nodes"]] == ["credit"] and rest["pageInfo"]["hasNextPage"] is False

    def error(query: str, token: str | None = "k1", **variables: Any) -> dict[str, Any]:
        body = world.gql(query, token=token, **variables)
        assert len(body["errors"]) == 1, body
        return body["errors"][0]

    for q in ("{ balance { balance } }", "{ usage { summary { requests } } }", "{ billingHistory { nodes { id } } }"):
        assert error(q, token=None)["extensions"]["code"] == "UNAUTHENTICATED"
    bad = error('{ usage(filter: {period: "1y"}) { summary { requests } } }')
    assert bad["extensions"]["code"] == "BAD_USER_INPUT" and "period" in bad["message"]
    bad = error("query ($k: ID) { usage(filter: {keyId: $k}) { summary { requests } } }", k=world.key_ids["kb"])
    assert bad["extensions"]["code"] == "BAD_USER_INPUT" and "keyId" in bad["message"]
    bad = error('{ usage { logs(first: 1, after: "usage_999999999") { nodes { id } } } }')
    assert bad["extensions"]["code"] == "BAD_USER_INPUT" and "after" in bad["message"]
    bad = error("{ billingHistory(first: 0) { nodes { id } } }")
    assert bad["extensions"]["code"] == "BAD_USER_INPUT" and "first" in bad["message"]
    b_history = world.gql("{ billingHistory { nodes { id } } }", token="kb")["data"]["billingHistory"]
    assert [n["id"] for n in b_history["nodes"]] == [f"txn_{world.txn_ids['b']}"]


# ---- operator credits and live events ------------------------------------------------------------------

CREDIT = """
mutation ($id: ID!, $amount: Decimal!, $key: String!, $description: String! = "") {
  creditBalance(accountId: $id, amount: $amount, idempotencyKey: $key, description: $description) {
    replayed transaction { id type amount balanceAfter description } balance { balance available }
  }
}
"""
BALANCE_CHANGED = gql("subscription { balanceChanged { transactionId type amount balance createdAt } }")
USAGE_RECORDED = gql("subscription { usageRecorded { id model provider endpoint keyId inputTokens cost status } }")


def ws_transport(world: World, key: str) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=world.base.replace("http://", "ws://") + "/graphql",
        init_payload={"Authorization": f"Bearer {world.secrets[key]}"},
        subprotocols=["graphql-transport-ws"],
    )


async def collect(
    world: World, key: str, subscription: Any, trigger: Any, count: int = 1, settle: float = 0.0
) -> list[dict[str, Any]]:
    """Subscribe with one key, run `trigger`, return the first `count` results (and, after `settle`
    seconds more, any extra ones)."""
    async with Client(transport=ws_transport(world, key)) as session:
        received: list[dict[str, Any]] = []

        async def listen() -> None:
            async for result in session.subscribe(subscription):
                received.append(next(iter(result.values())))

        broker = world.app.state.broker
        before = broker.listeners.copy()
        task = asyncio.create_task(listen())
        await subscribed(broker, before)
        await trigger()
        await await_until(lambda: len(received) >= count, 15, f"{count} event(s)")
        await asyncio.sleep(settle)  # time for an extra event to arrive, if one wrongly would
        task.cancel()
        return received


async def test_credit_mutation_is_idempotent_operator_only_and_announced(world: World) -> None:
    b_id = str(world.account_ids["B"])
    before = world.ok("/balance", key="kb")["balance"]
    denied = world.gql(CREDIT, token="kb", id=b_id, amount="5", key="nope")
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    results: list[dict[str, Any]] = []

    async def trigger() -> None:
        # A credit of another account first: B's subscriber must not see it.
        other = await asyncio.to_thread(
            world.gql, CREDIT, ADMIN, id=str(world.account_ids["A"]), amount="0.01", key="gql-a-1"
        )
        assert other["data"]["creditBalance"]["replayed"] is False
        for _ in range(2):
            body = await asyncio.to_thread(
                world.gql, CREDIT, ADMIN, id=b_id, amount="2.0000000001", key="gql-b-1", description="goodwill"
            )
            assert "errors" not in body, body
            results.append(body["data"]["creditBalance"])

    events = await collect(world, "kb", BALANCE_CHANGED, trigger, count=1, settle=0.5)
    first, again = results
    assert first["replayed"] is False and again["replayed"] is True
    assert first["transaction"] == again["transaction"]
    txn = first["transaction"]
    assert (txn["type"], D(txn["amount"]), txn["description"]) == ("credit", D("2.0000000001"), "goodwill")
    assert D(first["balance"]["balance"]) == before + D("2.0000000001") == D(again["balance"]["balance"])
    assert world.ok("/balance", key="kb")["balance"] == before + D("2.0000000001")
    assert len(events) == 1, events  # one credit, one event; A's credit is not B's
    assert events[0]["transactionId"] == txn["id"] and events[0]["type"] == "credit"
    assert D(events[0]["amount"]) == D("2.0000000001") and D(events[0]["balance"]) == before + D("2.0000000001")

    conflict = world.gql(CREDIT, ADMIN, id=b_id, amount="3", key="gql-b-1")
    assert conflict["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    for amount in ("0", "-1", "1e-11"):
        refused = world.gql(CREDIT, ADMIN, id=b_id, amount=amount, key=f"bad-{amount}")
        assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", amount
    missing = world.gql(CREDIT, ADMIN, id="999999", amount="1", key="missing")
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_usage_recorded_reaches_only_its_account(world: World) -> None:
    def event(account: str, usage_id: int) -> UsageRecorded:
        return UsageRecorded(
            usage_id,
            world.account_ids[account],
            None,
            "gpt-4o-mini",
            "openai",
            CHAT,
            12,
            3,
            D("0.0000123"),
            200,
            False,
            NOW,
        )

    async def trigger() -> None:
        assert world.loop is not None
        world.loop.call_soon_threadsafe(world.app.state.broker.dispatch, [event("B", 9001), event("A", 9002)])

    received = await collect(world, "k1", USAGE_RECORDED, trigger, count=1, settle=0.3)
    assert received == [
        {
            "id": "usage_9002",
            "model": "gpt-4o-mini",
            "provider": "openai",
            "endpoint": CHAT,
            "keyId": None,
            "inputTokens": 12,
            "cost": "0.0000123",
            "status": 200,
        }
    ]


async def test_subscriptions_need_an_api_key(world: World) -> None:
    transport = WebsocketsTransport(
        url=world.base.replace("http://", "ws://") + "/graphql", init_payload={}, subprotocols=["graphql-transport-ws"]
    )
    async with Client(transport=transport) as session:
        with pytest.raises(Exception, match="API key is required"):
            async for _ in session.subscribe(BALANCE_CHANGED):
                pass


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": world.url.render_as_string(hide_password=False)}
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


async def test_cli_credit_is_idempotent(world: World) -> None:
    b_id = str(world.account_ids["B"])
    before = world.ok("/balance", key="kb")["balance"]
    args = (
        "accounts",
        "credit",
        b_id,
        "--amount",
        "3.25",
        "--idempotency-key",
        "cli-b-1",
        "--description",
        "invoice 7",
    )
    runs: list[subprocess.CompletedProcess[str]] = []

    async def trigger() -> None:
        runs.append(await asyncio.to_thread(cli, world, *args))

    # On PostgreSQL the command line NOTIFYs the server's listeners; on SQLite there is no one to tell.
    on_postgres = world.url.get_backend_name() == "postgresql"
    events = await collect(world, "kb", BALANCE_CHANGED, trigger, count=1 if on_postgres else 0)
    first = runs[0]
    assert first.returncode == 0, first.stderr
    assert "credited 3.25 USD" in first.stdout and f"balance {before + D('3.25')} USD" in first.stdout
    again = cli(world, *args)
    assert again.returncode == 0 and "already credited" in again.stdout, again.stdout + again.stderr
    assert world.ok("/balance", key="kb")["balance"] == before + D("3.25")
    history = world.ok("/billing/history", key="kb")["data"]
    assert [(t["amount"], t["description"]) for t in history if t["description"] == "invoice 7"] == [
        (D("3.25"), "invoice 7")
    ]
    if on_postgres:
        assert [(e["transactionId"], D(e["amount"])) for e in events] == [(history[0]["id"], D("3.25"))]

    conflict = cli(world, "accounts", "credit", b_id, "--amount", "4", "--idempotency-key", "cli-b-1")
    assert conflict.returncode != 0 and "already credited" in conflict.stderr
    bad = cli(world, "accounts", "credit", b_id, "--amount", "-2", "--idempotency-key", "cli-b-2")
    assert bad.returncode != 0 and "--amount" in bad.stderr
