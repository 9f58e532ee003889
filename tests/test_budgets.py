"""Budgets: a key's monthly cap is exact under concurrency (100 requests at once against a budget worth 10
give exactly 10 answers and 90 refusals with `budget_exceeded`, none of them sent upstream), on SQLite with
one server and on PostgreSQL with two servers sharing the database; thresholds alert once per period; the
account's low-balance line alerts once until a credit lifts the balance again; the REST and GraphQL
surfaces set and read budgets."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import URL

from datasources import accounts, billing, budgets
from datasources.catalog.record import Observation, record_prices
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Budget, OutboxMessage, Plan
from routing.gateway.app import install
from routing.gateway.metering import prompt_tokens
from routing.gateway.providers import GatewayConfig
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, pg_server_url, wait_until
from tests.fake_provider import FakeProvider, providers_toml

REQUESTS, AFFORDABLE, MAX_TOKENS = 100, 10, 1000
INPUT, OUTPUT = Decimal("1.0"), Decimal("2.0")
BODY = {
    "model": "llama-3.3-70b",
    "messages": [{"role": "user", "content": "Count to three."}],
    "max_tokens": MAX_TOKENS,
}


def one_cost() -> Decimal:
    return (prompt_tokens(BODY) * INPUT + MAX_TOKENS * OUTPUT) / 1_000_000


async def prepare(url: URL, cap: Decimal, thresholds: tuple[int, ...] = (50, 80, 100)) -> tuple[int, str, str]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            await record_prices(
                session,
                [Observation("llama-3.3-70b", "groq", INPUT, OUTPUT, provider_model_id="llama-3.3-70b-versatile")],
            )
            account, issued = await accounts.create_account(
                session, Plan.DEVELOPER, one_cost() * REQUESTS * 10, email="owner@example.test"
            )
            await budgets.set_budget(session, account.id, cap, key_id=issued.key.id, thresholds=thresholds)
        return account.id, issued.key.id, issued.secret
    finally:
        await engine.dispose()


async def burst(bases: list[str], key: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return list(
            await asyncio.gather(
                *(
                    client.post(
                        f"{bases[i % len(bases)]}/v1/chat/completions",
                        json=BODY,
                        headers={"authorization": f"Bearer {key}"},
                    )
                    for i in range(count)
                )
            )
        )


async def read_budget(url: URL, account_id: int) -> Budget:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            return (await session.execute(select(Budget).where(Budget.account_id == account_id))).scalar_one()
    finally:
        await engine.dispose()


async def outbox(url: URL, account_id: int) -> list[OutboxMessage]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            rows = await session.execute(
                select(OutboxMessage).where(OutboxMessage.account_id == account_id).order_by(OutboxMessage.id)
            )
            return list(rows.scalars())
    finally:
        await engine.dispose()


def servers(url: URL, tmp: Path, fake: FakeProvider, count: int) -> list[LiveServer]:
    path = tmp / "providers.toml"
    path.write_text(providers_toml(fake.url, {"groq": "gsk-platform"}, {"first_byte_timeout": 30.0}))
    live = []
    for _ in range(count):
        app = create_app(
            Settings(database_url=url, migrate_on_start=False, seed_on_start=False, secret_key="test-secret")
        )
        install(app, GatewayConfig.from_file(path))
        live.append(LiveServer(app))
    return live


def scenario(url: URL, tmp: Path, count: int) -> None:
    cost = one_cost()
    account_id, _key_id, key = asyncio.run(prepare(url, cost * AFFORDABLE))
    with FakeProvider() as fake:
        live = servers(url, tmp, fake, count)
        for server in live:
            server.__enter__()
        try:
            responses = asyncio.run(burst([s.url for s in live], key, REQUESTS))
        finally:
            for server in live:
                server.__exit__(None, None, None)
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == AFFORDABLE and statuses.count(402) == REQUESTS - AFFORDABLE, statuses
        refused = [r.json()["error"] for r in responses if r.status_code == 402]
        assert {e["code"] for e in refused} == {"budget_exceeded"}
        assert "budget" in refused[0]["message"]
        assert len(fake.seen()) == AFFORDABLE  # refused before any upstream call
    budget = asyncio.run(read_budget(url, account_id))
    assert budget.spent == cost * AFFORDABLE and budget.held == 0
    assert budget.alerted == 100
    # Each threshold crossed is one e-mail (and the 100% one, once, however many requests reached it).
    mails = [m for m in asyncio.run(outbox(url, account_id)) if m.topic == "budget_threshold"]
    assert sorted(json.loads(m.payload)["percent"] for m in mails) == ["100", "50", "80"]


def test_sqlite_key_budget_for_10_of_100_concurrent_requests(tmp_path: Path) -> None:
    databases = Databases("sqlite", tmp_path)
    scenario(asyncio.run(databases.migrated()), tmp_path, count=1)


def test_postgresql_two_servers_share_the_key_budget_exactly(tmp_path: Path) -> None:
    if pg_server_url() is None:
        pytest.skip("two servers on one database need PostgreSQL: set TEST_DATABASE_URL")
    databases = Databases("postgresql", tmp_path)
    try:
        scenario(asyncio.run(databases.migrated()), tmp_path, count=2)
    finally:
        asyncio.run(databases.drop_all())


def test_low_balance_alerts_once_until_a_credit_lifts_it(tmp_path: Path) -> None:
    """Three requests take the balance below its line: one alert; a credit re-arms it."""
    databases = Databases("sqlite", tmp_path)
    url = asyncio.run(databases.migrated())
    cost = one_cost()

    async def setup() -> tuple[int, str]:
        engine = create_engine(url)
        try:
            async with sessionmaker(engine)() as session, session.begin():
                await record_prices(
                    session,
                    [Observation("llama-3.3-70b", "groq", INPUT, OUTPUT, provider_model_id="llama-3.3-70b-versatile")],
                )
                account, issued = await accounts.create_account(
                    session, Plan.DEVELOPER, cost * 5, email="owner@example.test"
                )
                await accounts.set_low_balance(session, account.id, cost * Decimal("3.5"))
            return account.id, issued.secret
        finally:
            await engine.dispose()

    async def credit(account_id: int) -> None:
        engine = create_engine(url)
        try:
            async with sessionmaker(engine)() as session, session.begin():
                await billing.credit(session, account_id, cost * 10, "top-up-1")
        finally:
            await engine.dispose()

    account_id, key = asyncio.run(setup())
    with FakeProvider() as fake:
        (server,) = servers(url, tmp_path, fake, 1)
        with server:
            for _ in range(3):
                assert asyncio.run(burst([server.url], key, 1))[0].status_code == 200
            alerts = wait_until(
                lambda: [m for m in asyncio.run(outbox(url, account_id)) if m.topic == "balance_low"],
                what="the low-balance e-mail",
            )
            assert len(alerts) == 1 and json.loads(alerts[0].payload)["threshold"] == str(cost * Decimal("3.5"))
            asyncio.run(credit(account_id))
            for _ in range(2):
                assert asyncio.run(burst([server.url], key, 1))[0].status_code == 200
    alerts = [m for m in asyncio.run(outbox(url, account_id)) if m.topic == "balance_low"]
    assert len(alerts) == 1  # 12 costs left after the credit: above the line, so nothing new
    credits = [m for m in asyncio.run(outbox(url, account_id)) if m.topic == "topup_received"]
    assert len(credits) == 1


def test_rest_budgets_set_read_and_remove(tmp_path: Path) -> None:
    databases = Databases("sqlite", tmp_path)
    url = asyncio.run(databases.migrated())
    account_id, key_id, key = asyncio.run(prepare(url, Decimal("5")))
    with FakeProvider() as fake:
        (server,) = servers(url, tmp_path, fake, 1)
        with server, httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}) as client:
            listed = client.get("/v1/budgets").json()["data"]
            assert [(b["scope"], b["monthly_cap"]) for b in listed] == [(key_id, 5)]
            put = client.put("/v1/budgets/account", json={"monthly_cap": "12.50", "thresholds": [75, 90]})
            assert put.status_code == 200, put.text
            assert put.json()["monthly_cap"] == 12.5 and put.json()["thresholds"] == [75, 90]
            bad = client.put("/v1/budgets/account", json={"monthly_cap": "-1"})
            assert bad.status_code == 400 and "monthly_cap" in bad.json()["error"]
            bad = client.put("/v1/budgets/account", json={"monthly_cap": 5, "thresholds": [0]})
            assert bad.status_code == 400 and "thresholds" in bad.json()["error"]
            missing = client.put("/v1/budgets/keys/key_nope", json={"monthly_cap": 5})
            assert missing.status_code == 404 and "key_id" in missing.json()["error"]
            assert client.delete(f"/v1/budgets/keys/{key_id}").json()["deleted"] is True
            assert [b["scope"] for b in client.get("/v1/budgets").json()["data"]] == ["account"]
            assert client.get(f"/v1/budgets/keys/{key_id}").status_code == 404
            alerts: dict[str, Any] = client.patch(
                "/v1/alerts", json={"email": "ops@example.test", "low_balance": 2}
            ).json()
            assert alerts["email"] == "ops@example.test" and alerts["low_balance"] == 2
            assert client.patch("/v1/alerts", json={"email": "not an address"}).status_code == 400
