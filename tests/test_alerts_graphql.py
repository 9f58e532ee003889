"""Webhooks, budgets, alert settings and the budgetAlert subscription over GraphQL: the plan gate answers
`extensions.code`, a new endpoint's secret is shown once, bad input names its field, and an alert raised by
a settlement reaches a `budgetAlert` subscriber over graphql-transport-ws."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import websockets

from datasources import accounts
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Plan
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, subscribed
from tests.fake_provider import FakeProvider
from tests.test_budgets import burst, one_cost, prepare, servers

CREATE = """mutation ($url: String!) {
  createWebhookEndpoint(input: {url: $url, events: ["price.changed"], models: ["gpt-4o"], minChangePct: 5}) {
    secret endpoint { id url events models minChangePct enabled secretHint }
  }
}"""


async def account(url: Any, plan: Plan) -> tuple[int, str]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            made, issued = await accounts.create_account(session, plan, Decimal(1))
        return made.id, issued.secret
    finally:
        await engine.dispose()


def graphql(server: LiveServer, key: str, query: str, **variables: Any) -> dict[str, Any]:
    answer = httpx.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {key}"},
    )
    body: dict[str, Any] = answer.json()
    return body


def test_webhooks_budgets_and_alert_settings_over_graphql(tmp_path: Path) -> None:
    url = asyncio.run(Databases("sqlite", tmp_path).migrated())
    _, team = asyncio.run(account(url, Plan.TEAM))
    _, developer = asyncio.run(account(url, Plan.DEVELOPER))
    app = create_app(Settings(database_url=url, migrate_on_start=False, seed_on_start=False, secret_key="k"))
    with LiveServer(app) as server:
        refused = graphql(server, developer, CREATE, url="https://hooks.example.test/in")
        assert refused["errors"][0]["extensions"]["code"] == "PAYMENT_REQUIRED"
        assert "team" in refused["errors"][0]["message"]
        made = graphql(server, team, CREATE, url="https://hooks.example.test/in")["data"]["createWebhookEndpoint"]
        assert made["secret"].startswith("whsec_") and made["endpoint"]["secretHint"] == made["secret"][:10] + "…"
        assert made["endpoint"]["events"] == ["price.changed"] and made["endpoint"]["minChangePct"] == "5"
        listed = graphql(server, team, "{ webhookEndpoints { id url enabled } }")["data"]["webhookEndpoints"]
        assert [e["id"] for e in listed] == [made["endpoint"]["id"]]
        bad = graphql(server, team, CREATE, url="ftp://nowhere")
        assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "url" in bad["errors"][0]["message"]
        off = graphql(
            server,
            team,
            "mutation ($id: ID!) { updateWebhookEndpoint(id: $id, input: {enabled: false}) { enabled disabledReason } }",
            id=made["endpoint"]["id"],
        )["data"]["updateWebhookEndpoint"]
        assert off == {"enabled": False, "disabledReason": "disabled by its owner"}
        budget = graphql(
            server,
            team,
            "mutation { setBudget(monthlyCap: 25, thresholds: [50, 90]) { scope monthlyCap spent remaining thresholds } }",
        )
        assert budget["data"]["setBudget"] == {
            "scope": "account",
            "monthlyCap": "25",
            "spent": "0",
            "remaining": "25",
            "thresholds": [50, 90],
        }
        negative = graphql(server, team, "mutation { setBudget(monthlyCap: -5) { scope } }")
        assert "monthly_cap" in negative["errors"][0]["message"] or "monthlyCap" in negative["errors"][0]["message"]
        settings = graphql(
            server, team, 'mutation { setAlertSettings(email: "me@example.test", lowBalance: 2) { email lowBalance } }'
        )["data"]["setAlertSettings"]
        assert settings == {"email": "me@example.test", "lowBalance": "2"}
        gone = graphql(
            server, team, "mutation ($id: ID!) { deleteWebhookEndpoint(id: $id) }", id=made["endpoint"]["id"]
        )
        assert gone["data"]["deleteWebhookEndpoint"] is True


def test_budget_alerts_reach_a_subscriber(tmp_path: Path) -> None:
    """A key's budget worth two requests with a 50 % threshold: the first answered request crosses it."""
    url = asyncio.run(Databases("sqlite", tmp_path).migrated())
    account_id, key_id, key = asyncio.run(prepare(url, one_cost() * 2, thresholds=(50,)))
    with FakeProvider() as fake:
        (server,) = servers(url, tmp_path, fake, 1)
        with server:
            asyncio.run(_subscribe_and_spend(server, key, key_id))


async def _subscribe_and_spend(server: LiveServer, key: str, key_id: str) -> None:
    ws_url = server.url.replace("http", "ws") + "/graphql"
    async with websockets.connect(ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        before = set(server.app.state.broker.listeners)
        query = "subscription { budgetAlert { type scope percent spent cap period } }"
        await ws.send(json.dumps({"id": "a", "type": "subscribe", "payload": {"query": query}}))
        await subscribed(server.app.state.broker, before)
        (answer,) = await burst([server.url], key, 1)
        assert answer.status_code == 200
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        alert = message["payload"]["data"]["budgetAlert"]
        assert alert["type"] == "budget.threshold" and alert["scope"] == key_id and alert["percent"] == 50
        assert Decimal(alert["spent"]) == one_cost() and Decimal(alert["cap"]) == one_cost() * 2
