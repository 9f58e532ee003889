"""Each operation asked through REST and through GraphQL, on the same data, answers the same: the same
rows, the same exact amounts, the same refusals naming the same field (each in its surface's spelling)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.engine import URL

from datasources import accounts, ledger
from datasources.callers import OperatorToken
from datasources.catalog.record import Observation, record_prices
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Account, Plan, UsageRecord
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, pg_server_url

ROOT = Path(__file__).resolve().parents[1]
OPERATOR = "operator-token-for-surface-tests-0123"
D = Decimal
BIG_BALANCE = D("9999999.1234567891")  # more digits than a float holds
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class World:
    base: str
    url: URL
    keys: dict[str, str] = field(default_factory=dict)  # by plan
    account_ids: dict[str, int] = field(default_factory=dict)

    def rest(self, path: str, plan: str | None = "team", **params: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[plan]}"} if plan else {}
        response = httpx.get(f"{self.base}{path}", params=params, headers=headers, timeout=60)
        assert response.status_code < 500, response.text
        return response

    def ok(self, path: str, plan: str | None = "team", **params: object) -> Any:
        response = self.rest(path, plan, **params)
        assert response.status_code == 200, response.text
        return response.json(parse_float=Decimal)

    def gql(self, query: str, plan: str | None = "team", token: str | None = None, **variables: Any) -> Any:
        secret = token or (self.keys[plan] if plan else None)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        response = httpx.post(
            f"{self.base}/graphql", json={"query": query, "variables": variables}, headers=headers, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json(parse_float=Decimal)

    def data(self, query: str, plan: str | None = "team", **variables: Any) -> Any:
        body = self.gql(query, plan, **variables)
        assert "errors" not in body, body
        return body["data"]

    def error(self, query: str, plan: str | None = "team", **variables: Any) -> dict[str, Any]:
        body = self.gql(query, plan, **variables)
        assert body.get("errors"), body
        return body["errors"][0]


async def _populate(world: World) -> None:
    engine = create_engine(world.url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            for plan in (Plan.FREE, Plan.DEVELOPER, Plan.TEAM):
                account, issued = await accounts.create_account(session, plan, name=plan.value)
                world.keys[plan.value], world.account_ids[plan.value] = issued.secret, account.id
            team = world.account_ids["team"]
            await ledger.credit(session, team, BIG_BALANCE, "opening balance", idempotency_key="open")
            await ledger.hold(session, team, D("0.0000000001"))
            for hours, model, provider, status, cost in (
                (1, "gpt-4o-mini", "openai", 200, "0.0000000007"),
                (2, "gpt-4o-mini", "azure", 502, "0"),
                (30, "llama-3.3-70b", "groq", 200, "1.2345678901"),
                (80, "gpt-4o", "openai", 200, "0.3"),
            ):
                session.add(
                    UsageRecord(
                        account_id=team,
                        model_slug=model,
                        provider_slug=provider,
                        endpoint="/v1/chat/completions",
                        prompt_tokens=100,
                        completion_tokens=50,
                        cost=D(cost),
                        status=status,
                        latency_ms=100,
                        created_at=NOW - timedelta(hours=hours),
                        key_source="platform",
                    )
                )
            for days_ago, value in ((5, "0.05"), (3, "0.04"), (1, "0.06")):
                await record_prices(
                    session,
                    [Observation("llama-3.1-8b", "groq", D(value), D(value))],
                    observed_at=NOW - timedelta(days=days_ago),
                )
            await session.execute(update(Account).where(Account.id == team).values(name="team"))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    databases = Databases("postgresql" if pg_server_url() else "sqlite", tmp_path_factory.mktemp("surfaces"))
    try:
        url = asyncio.run(databases.migrated(seeded=True))
        found = World("", url)
        asyncio.run(_populate(found))
        settings = Settings(
            database_url=url, migrate_on_start=False, seed_on_start=False, operator=OperatorToken(OPERATOR)
        )
        with LiveServer(create_app(settings)) as server:
            found.base = server.url
            yield found
    finally:
        asyncio.run(databases.drop_all())


# ---- prices, models, providers ---------------------------------------------------------------------

PRICES = (
    "query ($m: String, $p: String) { prices(model: $m, provider: $p, first: 1000) "
    "{ provider { slug } model { slug } variant providerModelId inputPer1m outputPer1m status } }"
)


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("llama-3.3-70b", None),
        ("meta-llama/Llama-3.3-70B-Instruct", None),
        ("llama-3.3-70b", "together_ai"),
        (None, "groq"),
        ("gpt-4o-mini", "openai"),
    ],
)
def test_prices_are_the_same_rows_at_the_same_prices(world: World, model: str | None, provider: str | None) -> None:
    params = {k: v for k, v in (("model", model), ("provider", provider)) if v}
    rest = world.ok("/api/v1/prices", **params)["prices"]
    graph = world.data(PRICES, m=model, p=provider)["prices"]
    assert rest, "the comparison needs rows"
    as_rest = [
        (
            p["provider"],
            p["model"],
            p["variant"],
            p["provider_model_id"],
            p["input_per_1m"],
            p["output_per_1m"],
            p["status"],
        )
        for p in rest
    ]
    as_graph = [
        (
            p["provider"]["slug"],
            p["model"]["slug"],
            p["variant"],
            p["providerModelId"],
            D(p["inputPer1m"]),
            D(p["outputPer1m"]),
            p["status"].lower(),
        )
        for p in graph
    ]
    assert sorted(as_rest) == sorted(as_graph)


@pytest.mark.parametrize("provider", ["together", "together_ai", "groq", "fireworks_ai"])
def test_model_lists_accept_the_same_provider_spellings(world: World, provider: str) -> None:
    rest = [m["slug"] for m in world.ok("/api/v1/models", provider=provider)["models"]]
    graph = [
        m["slug"]
        for m in world.data("query ($p: String) { models(provider: $p, first: 1000) { slug } }", p=provider)["models"]
    ]
    assert rest and rest == graph


def test_an_unknown_provider_is_not_found_on_both(world: World) -> None:
    assert world.rest("/api/v1/models", provider="no-such-provider").status_code == 404
    error = world.error('{ models(provider: "no-such-provider") { slug } }')
    assert error["extensions"]["code"] == "NOT_FOUND" and "no-such-provider" in error["message"]


def test_providers_are_the_same(world: World) -> None:
    rest = [p["slug"] for p in world.ok("/api/v1/providers")["providers"]]
    graph = [p["slug"] for p in world.data("{ providers(first: 500) { slug } }")["providers"]]
    assert rest and rest == graph


# ---- compare -----------------------------------------------------------------------------------------

COMPARE = (
    "query ($m: [String!]!, $p: String) { compare(models: $m, provider: $p) "
    "{ model { slug } cheapestProvider cheapestBlended avgBlended providerCount } }"
)


@pytest.mark.parametrize(
    "names",
    [
        ["llama-3.3-70b", "gpt-4o-mini"],
        ["llama-3.3-70b", "meta-llama/Llama-3.3-70B-Instruct", "LLAMA-3.3-70B"],  # one model, three spellings
        ["gpt-4o-mini", "openai/gpt-4o-mini", "llama-3.1-8b"],
    ],
)
def test_compare_answers_each_model_once_on_both(world: World, names: list[str]) -> None:
    rest = world.ok("/api/v1/compare", models=",".join(names))["models"]
    graph = world.data(COMPARE, m=names)["compare"]
    as_rest = [
        (r["model"], r["cheapest_provider"], r["cheapest_blended"], r["avg_blended"], r["provider_count"]) for r in rest
    ]
    as_graph = [
        (g["model"]["slug"], g["cheapestProvider"], D(g["cheapestBlended"]), D(g["avgBlended"]), g["providerCount"])
        for g in graph
    ]
    assert as_rest == as_graph
    assert len({slug for slug, *_ in as_rest}) == len(as_rest)  # each model once


def test_compare_refuses_the_same_counts_naming_models(world: World) -> None:
    six = ["gpt-4o-mini", "gpt-4o", "llama-3.3-70b", "llama-3.1-8b", "mixtral-8x7b", "claude-3.5-sonnet"]
    response = world.rest("/api/v1/compare", models=",".join(six))
    assert response.status_code == 400 and "models" in response.json()["error"]
    error = world.error(COMPARE, m=six)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["message"].startswith("models:")


# ---- history -------------------------------------------------------------------------------------------

CANDLES = (
    'query ($d: Int!, $i: CandleInterval!) { candles(model: "llama-3.1-8b", provider: "groq", '
    "days: $d, interval: $i) { date open high low close changePct ticks } }"
)


def test_history_is_the_same_candles(world: World) -> None:
    rest = world.ok("/api/v1/history", model="llama-3.1-8b", provider="groq", days=7)["candles"]
    graph = world.data(CANDLES, d=7, i="DAY")["candles"]
    assert len(rest) >= 3
    assert [(c["date"], c["open"], c["high"], c["low"], c["close"], c["change_pct"], c["ticks"]) for c in rest] == [
        (c["date"], D(c["open"]), D(c["high"]), D(c["low"]), D(c["close"]), D(c["changePct"]), c["ticks"])
        for c in graph
    ]


@pytest.mark.parametrize(
    ("plan", "days", "interval", "status", "code", "field"),
    [
        ("free", 7, "1d", 402, "PAYMENT_REQUIRED", None),  # history is the developer plan's
        ("developer", 90, "1d", 402, "PAYMENT_REQUIRED", None),  # over 30 days is the team plan's
        ("developer", 7, "1h", 402, "PAYMENT_REQUIRED", None),  # hourly too
        ("team", 366, "1d", 400, "BAD_USER_INPUT", "days"),  # the one limit of every plan
        ("team", 0, "1d", 400, "BAD_USER_INPUT", "days"),
    ],
)
def test_history_refusals_agree(
    world: World, plan: str, days: int, interval: str, status: int, code: str, field: str | None
) -> None:
    response = world.rest("/api/v1/history", plan, model="llama-3.1-8b", provider="groq", days=days, interval=interval)
    assert response.status_code == status, response.text
    error = world.error(CANDLES, plan, d=days, i="HOUR" if interval == "1h" else "DAY")
    assert error["extensions"]["code"] == code, error
    if field is not None:
        assert f"parameter {field}" in response.json()["error"] and error["message"].startswith(f"{field}:")


# ---- balance, usage, billing ----------------------------------------------------------------------------


def test_the_balance_is_the_same_exact_digits(world: World) -> None:
    rest = world.rest("/v1/balance")
    assert '"balance":9999999.1234567891' in rest.text.replace(" ", "")
    graph = world.data("{ balance { balance held available } }")["balance"]
    body = rest.json(parse_float=Decimal)
    assert (
        (body["balance"], body["held"], body["available"])
        == (D(graph["balance"]), D(graph["held"]), D(graph["available"]))
        == (BIG_BALANCE, D("0.0000000001"), BIG_BALANCE - D("0.0000000001"))
    )


USAGE = (
    "query ($f: UsageFilter) { usage(filter: $f) { summary { requests successfulRequests failedRequests "
    "inputTokens outputTokens cost } byModel { model requests cost } } }"
)


@pytest.mark.parametrize(
    ("rest_params", "graph_filter"),
    [
        ({}, None),
        ({"period": "24h"}, {"period": "24h"}),
        ({"model": "gpt-4o-mini"}, {"model": "gpt-4o-mini"}),
        ({"model": "openai/gpt-4o-mini"}, {"model": "openai/gpt-4o-mini"}),
    ],
)
def test_usage_totals_agree(world: World, rest_params: dict[str, str], graph_filter: dict[str, str] | None) -> None:
    rest = world.ok("/v1/usage/summary", **rest_params)
    graph = world.data(USAGE, f=graph_filter)["usage"]
    summary = graph["summary"]
    assert (
        rest["total_requests"],
        rest["successful_requests"],
        rest["failed_requests"],
        rest["input_tokens"],
        rest["output_tokens"],
        rest["total_cost"],
    ) == (
        summary["requests"],
        summary["successfulRequests"],
        summary["failedRequests"],
        summary["inputTokens"],
        summary["outputTokens"],
        D(summary["cost"]),
    )
    assert rest["total_requests"] > 0
    assert sorted((m["model"], m["total_requests"], m["total_cost"]) for m in rest["by_model"]) == sorted(
        (m["model"], m["requests"], D(m["cost"])) for m in graph["byModel"]
    )


@pytest.mark.parametrize(
    ("rest_params", "graph_filter", "rest_name", "graph_name"),
    [
        ({"period": "1y"}, {"period": "1y"}, "period", "period"),
        (
            {"period": "24h", "start_time": "1719878400"},
            {"period": "24h", "startTime": "2024-07-02T00:00:00Z"},
            "start_time",
            "startTime",
        ),
        (
            {"start_time": "1719878400", "end_time": "1719878000"},
            {"startTime": "2024-07-02T00:00:00Z", "endTime": "2024-07-01T00:00:00Z"},
            "end_time",
            "endTime",
        ),
        ({"key_id": "key_nosuch"}, {"keyId": "key_nosuch"}, "key_id", "keyId"),
        ({"endpoint": "/"}, {"endpoint": "/"}, "endpoint", "endpoint"),
    ],
)
def test_usage_filter_refusals_name_the_same_field(
    world: World, rest_params: dict[str, str], graph_filter: dict[str, str], rest_name: str, graph_name: str
) -> None:
    response = world.rest("/v1/usage/summary", **rest_params)
    assert response.status_code == 400 and f"parameter {rest_name}:" in response.json()["error"], response.text
    error = world.error(USAGE, f=graph_filter)
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["message"].startswith(f"{graph_name}:"), error


def test_billing_history_is_the_same_ledger(world: World) -> None:
    rest = world.ok("/v1/billing/history", limit=100)["data"]
    graph = world.data("{ billingHistory(first: 100) { nodes { id type amount balanceAfter description } } }")
    nodes = graph["billingHistory"]["nodes"]
    assert rest and [(t["id"], t["type"], t["amount"], t["balance_after"]) for t in rest] == [
        (n["id"], n["type"], D(n["amount"]), D(n["balanceAfter"])) for n in nodes
    ]
    bad = world.rest("/v1/billing/history", starting_after="txn_999999")
    assert bad.status_code == 400 and "parameter starting_after:" in bad.json()["error"]
    error = world.error('{ billingHistory(after: "txn_999999") { nodes { id } } }')
    assert error["message"].startswith("after:")


# ---- credit amounts: GraphQL and the command line ------------------------------------------------------


@pytest.mark.parametrize("amount", ["0.00000000001", "-1", "-0.5", "NaN", "Infinity", "0"])
def test_a_bad_credit_is_refused_alike_by_graphql_and_the_command_line(world: World, amount: str) -> None:
    team = world.account_ids["team"]
    mutation = (
        "mutation ($id: ID!, $a: Decimal!) { creditBalance(accountId: $id, amount: $a, "
        'idempotencyKey: "bad") { replayed } }'
    )
    error = world.gql(mutation, token=OPERATOR, id=str(team), a=amount)["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and error["message"].startswith("amount:"), error
    env = {**os.environ, "DATABASE_URL": world.url.render_as_string(hide_password=False)}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "server.py"),
            "accounts",
            "credit",
            str(team),
            "--amount",
            amount,
            "--idempotency-key",
            "bad",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2 and "--amount" in done.stderr and "Traceback" not in done.stderr
    # The reason is the same words on both.
    reason = error["message"].removeprefix("amount: ")
    assert reason in " ".join(done.stderr.split()), (reason, done.stderr)
    assert world.ok("/v1/balance")["balance"] == BIG_BALANCE  # nothing moved


def test_text_that_is_no_number_is_refused_by_both(world: World) -> None:
    """GraphQL refuses it as the Decimal scalar's input (naming the variable), the command line naming --amount."""
    mutation = 'mutation ($a: Decimal!) { creditBalance(accountId: "1", amount: $a, idempotencyKey: "x") { replayed } }'
    error = world.gql(mutation, token=OPERATOR, a="ten dollars")["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "$a" in error["message"]
    env = {**os.environ, "DATABASE_URL": world.url.render_as_string(hide_password=False)}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "server.py"),
            "accounts",
            "credit",
            "1",
            "--amount",
            "ten dollars",
            "--idempotency-key",
            "x",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2 and "--amount: 'ten dollars' is not a USD amount" in done.stderr
