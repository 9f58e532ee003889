"""Money under concurrency: 200 platform-key requests at once against a balance worth exactly 100 of
them give exactly 100 answers, 100 refusals (402) and a final balance of 0 — on SQLite with one server,
and on PostgreSQL with two independent servers (own engines, own gateways) sharing the database."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from datasources import accounts
from datasources.catalog.record import Observation, record_prices
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Account, BalanceTransaction, Plan, UsageRecord
from routing.gateway.app import install
from routing.gateway.metering import prompt_tokens
from routing.gateway.providers import GatewayConfig
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, pg_server_url
from tests.fake_provider import FakeProvider, providers_toml

REQUESTS, AFFORDABLE, MAX_TOKENS = 200, 100, 1000
INPUT, OUTPUT = Decimal("1.0"), Decimal("2.0")
BODY = {
    "model": "llama-3.3-70b",
    "messages": [{"role": "user", "content": "Count to three."}],
    "max_tokens": MAX_TOKENS,
}


def one_cost() -> Decimal:
    return (prompt_tokens(BODY) * INPUT + MAX_TOKENS * OUTPUT) / 1_000_000


async def prepare(url: URL) -> tuple[int, str]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            await record_prices(
                session,
                [Observation("llama-3.3-70b", "groq", INPUT, OUTPUT, provider_model_id="llama-3.3-70b-versatile")],
            )
            account, issued = await accounts.create_account(session, Plan.DEVELOPER, one_cost() * AFFORDABLE)
        return account.id, issued.secret
    finally:
        await engine.dispose()


async def burst(bases: list[str], key: str) -> list[int]:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{bases[i % len(bases)]}/v1/chat/completions",
                    json=BODY,
                    headers={"authorization": f"Bearer {key}"},
                )
                for i in range(REQUESTS)
            )
        )
    return [r.status_code for r in responses]


async def settled(url: URL, account_id: int, timeout: float = 20.0) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            async with sessionmaker(engine)() as session:
                account = await session.get(Account, account_id)
                records = (await session.execute(select(func.count()).select_from(UsageRecord))).scalar_one()
                charges = (
                    await session.execute(
                        select(func.count()).select_from(BalanceTransaction).where(BalanceTransaction.type == "usage")
                    )
                ).scalar_one()
            assert account is not None
            state = {"balance": account.balance, "held": account.held, "records": records, "charges": charges}
            if (records >= AFFORDABLE and account.held == 0) or time.monotonic() > deadline:
                return state
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


def scenario(url: URL, tmp: Path, servers: int) -> None:
    account_id, key = asyncio.run(prepare(url))
    with FakeProvider() as fake:
        path = tmp / "providers.toml"
        path.write_text(providers_toml(fake.url, {"groq": "gsk-platform"}, {"first_byte_timeout": 30.0}))
        apps = []
        for _ in range(servers):
            app = create_app(Settings(database_url=url, migrate_on_start=False, seed_on_start=False))
            install(app, GatewayConfig.from_file(path))
            apps.append(app)
        live = [LiveServer(app) for app in apps]
        for server in live:
            server.__enter__()
        try:
            statuses = asyncio.run(burst([s.url for s in live], key))
        finally:
            for server in live:
                server.__exit__(None, None, None)  # stopping flushes the usage writers
        assert statuses.count(200) == AFFORDABLE and statuses.count(402) == REQUESTS - AFFORDABLE, statuses
        assert len(fake.seen()) == AFFORDABLE  # refused before any upstream call
    state = asyncio.run(settled(url, account_id))
    assert state == {"balance": 0, "held": 0, "records": AFFORDABLE, "charges": AFFORDABLE}


def test_sqlite_balance_for_100_of_200_concurrent_requests(tmp_path: Path) -> None:
    databases = Databases("sqlite", tmp_path)
    scenario(asyncio.run(databases.migrated()), tmp_path, servers=1)


def test_postgresql_two_servers_share_the_balance_exactly(tmp_path: Path) -> None:
    if pg_server_url() is None:
        pytest.skip("two servers on one database need PostgreSQL: set TEST_DATABASE_URL")
    databases = Databases("postgresql", tmp_path)
    try:
        scenario(asyncio.run(databases.migrated()), tmp_path, servers=2)
    finally:
        asyncio.run(databases.drop_all())
