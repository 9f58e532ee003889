"""Money from memory, exact and durable: holds on credit leases, top-ups before a dearer fallback, reads
that see the requests already answered, the sweeper, and a server killed under load.

Real servers on a real database (SQLite, or PostgreSQL when TEST_DATABASE_URL is set), a fake provider
API that is a real HTTP server, and the official openai client where a client speaks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import URL

from datasources import accounts
from datasources.catalog.record import Observation, record_prices
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import (
    Account,
    BalanceTransaction,
    CreditLease,
    Plan,
    ServerInstance,
    UsageRecord,
    UsageState,
)
from routing.gateway.app import install
from routing.gateway.metering import prompt_tokens
from routing.gateway.providers import GatewayConfig
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, free_port, pg_server_url
from tests.fake_provider import FakeProvider, providers_toml

ROOT = Path(__file__).resolve().parents[1]
D = Decimal
MESSAGES = [{"role": "user", "content": "Count to three."}]
MAX_TOKENS = 1000
# llama-3.3-70b: groq is the cheapest, then together (twice the price); gpt-4o-mini only at openai.
CHEAP, DEAR = (D("1.0"), D("2.0")), (D("2.0"), D("4.0"))
OFFERS = [
    Observation("llama-3.3-70b", "groq", *CHEAP, provider_model_id="llama-3.3-70b-versatile"),
    Observation("llama-3.3-70b", "together", *DEAR, provider_model_id="meta-llama/Llama-3.3-70B-Instruct-Turbo"),
]
BODY = {"model": "llama-3.3-70b", "messages": MESSAGES, "max_tokens": MAX_TOKENS}


def most(prices: tuple[Decimal, Decimal]) -> Decimal:
    """What one request of BODY may cost at a provider: what it holds."""
    return (prompt_tokens(BODY) * prices[0] + MAX_TOKENS * prices[1]) / 1_000_000


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _prepare(url: URL, credits: dict[str, Decimal]) -> dict[str, tuple[int, str]]:
    """The offers, and one developer account per name with that much credit: name → (id, key)."""
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            for observation in OFFERS:
                await record_prices(session, [observation])
            made = {}
            for name, credit in credits.items():
                account, issued = await accounts.create_account(session, Plan.DEVELOPER, credit, name)
                made[name] = (account.id, issued.secret)
        return made
    finally:
        await engine.dispose()


async def _ledger(url: URL, account_id: int) -> dict[str, Any]:
    """The account as the database has it: balance, held, the ledger's sum, leases, usage records."""
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            account = await session.get(Account, account_id)
            assert account is not None
            total = (
                await session.execute(
                    select(func.coalesce(func.sum(BalanceTransaction.amount), 0)).where(
                        BalanceTransaction.account_id == account_id
                    )
                )
            ).scalar_one()
            leases = (
                await session.execute(
                    select(func.count()).select_from(CreditLease).where(CreditLease.account_id == account_id)
                )
            ).scalar_one()
            records = (await session.execute(select(UsageRecord).where(UsageRecord.account_id == account_id))).scalars()
            charges = (
                await session.execute(
                    select(BalanceTransaction.usage_record_id, BalanceTransaction.amount).where(
                        BalanceTransaction.account_id == account_id, BalanceTransaction.type == "usage"
                    )
                )
            ).all()
            return {
                "balance": account.balance,
                "held": account.held,
                "ledger": D(total),
                "leases": leases,
                "records": {r.request_id: r for r in records},
                "charges": dict(charges),
            }
    finally:
        await engine.dispose()


@dataclass
class Gateway:
    url: str
    db: URL
    fake: FakeProvider
    accounts: dict[str, tuple[int, str]]

    def client(self, name: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.accounts[name][1], max_retries=0, timeout=20)

    def get(self, path: str, name: str) -> Any:
        response = httpx.get(self.url + path, headers={"authorization": f"Bearer {self.accounts[name][1]}"})
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("leases")
    databases = Databases("postgresql" if pg_server_url() else "sqlite", tmp)
    url = run(databases.migrated())
    credits = {"reader": D(50), "ten": most(CHEAP) * 10, "cheap_only": most(CHEAP) * D("1.5"), "both": most(DEAR) * 2}
    made = run(_prepare(url, credits))
    try:
        with FakeProvider() as fake:
            path = tmp / "providers.toml"
            path.write_text(
                providers_toml(
                    fake.url, {"groq": "gsk-platform", "together": "tk-platform"}, {"first_byte_timeout": 10.0}
                )
            )
            app = create_app(Settings(database_url=url, migrate_on_start=False, seed_on_start=False))
            install(app, GatewayConfig.from_file(path))
            with LiveServer(app) as server:
                yield Gateway(server.url, url, fake, made)
    finally:
        run(databases.drop_all())


@pytest.fixture(autouse=True)
def fresh(gateway: Gateway) -> None:
    gateway.fake.reset()


def test_reads_right_after_an_answer_see_its_charge(gateway: Gateway) -> None:
    before = D(str(gateway.get("/v1/balance", "reader")["balance"]))
    raw = gateway.client("reader").chat.completions.with_raw_response.create(**BODY)
    request_id = raw.headers["x-request-id"]
    balance = gateway.get("/v1/balance", "reader")  # at once: no waiting for a batch
    log = gateway.get("/v1/usage/logs", "reader")["data"][0]
    assert log["request_id"] == request_id and log["status"] == 200
    cost = D(str(log["cost"]))
    assert cost == most(CHEAP)  # the fake reports max_tokens completion tokens
    assert D(str(balance["balance"])) == before - cost and D(str(balance["held"])) == 0
    assert D(str(balance["available"])) == before - cost
    row = gateway.get("/v1/billing/history", "reader")["data"][0]
    assert row["type"] == "usage" and row["metadata"]["request_id"] == request_id
    assert D(str(row["amount"])) == -cost and D(str(row["balance_after"])) == before - cost
    graphql = httpx.post(
        gateway.url + "/graphql",
        json={"query": "{ balance { balance held } }"},
        headers={"authorization": f"Bearer {gateway.accounts['reader'][1]}"},
    ).json()
    assert D(graphql["data"]["balance"]["balance"]) == before - cost


def test_holds_are_taken_at_the_provider_tried_not_the_dearest(gateway: Gateway) -> None:
    """Credit for ten requests at the cheapest provider serves ten at once (holding at the dearer
    fallback's price would let only five through)."""
    account_id, key = gateway.accounts["ten"]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        gateway.url + "/v1/chat/completions", json=BODY, headers={"authorization": f"Bearer {key}"}
                    )
                    for _ in range(12)
                )
            )
        return [r.status_code for r in responses]

    statuses = run(burst())
    assert statuses.count(200) == 10 and statuses.count(402) == 2, statuses
    assert gateway.get("/v1/balance", "ten")["balance"] == 0
    state = run(_ledger(gateway.db, account_id))
    assert state["balance"] == 0 == state["held"] and state["ledger"] == 0


def test_a_fallback_to_a_dearer_provider_tops_the_hold_up_first(gateway: Gateway) -> None:
    gateway.fake.set("groq", status=503)
    answer = gateway.client("both").chat.completions.create(**BODY)
    assert answer.model_extra["_coaxiom"]["provider"] == "together"
    assert gateway.fake.order() == ["groq", "together"]
    balance = gateway.get("/v1/balance", "both")
    assert D(str(balance["balance"])) == most(DEAR) and D(str(balance["held"])) == 0


def test_a_dearer_fallback_the_balance_cannot_cover_is_skipped(gateway: Gateway) -> None:
    gateway.fake.set("groq", status=503)
    with pytest.raises(openai.APIStatusError) as failed:
        gateway.client("cheap_only").chat.completions.create(**BODY)
    assert failed.value.status_code == 502
    attempts = failed.value.body["metadata"]["attempts"]  # type: ignore[index]
    assert [(a["provider"], a["status"]) for a in attempts] == [("groq", 503), ("together", 402)]
    assert gateway.fake.order() == ["groq"]  # never sent where it could not be paid for
    balance = gateway.get("/v1/balance", "cheap_only")
    assert D(str(balance["balance"])) == most(CHEAP) * D("1.5") and D(str(balance["held"])) == 0


# ---- what a dead process leaves -----------------------------------------------------------------------


async def _dead_instance(url: URL, account_id: int, leased: Decimal, pending: Decimal) -> str:
    """As a process killed mid-request leaves it: its expired row and lease, one pending record."""
    engine = create_engine(url)
    past = datetime.now(UTC) - timedelta(minutes=5)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            await session.execute(insert(ServerInstance).values(id="inst_dead", started_at=past, expires_at=past))
            await session.execute(update(Account).where(Account.id == account_id).values(held=Account.held + leased))
            lease_id = (
                await session.execute(
                    insert(CreditLease)
                    .values(
                        account_id=account_id,
                        instance_id="inst_dead",
                        amount=leased,
                        expires_at=past,
                        created_at=past,
                    )
                    .returning(CreditLease.id)
                )
            ).scalar_one()
            await session.execute(
                insert(UsageRecord).values(
                    account_id=account_id,
                    model_slug="llama-3.3-70b",
                    provider_slug="groq",
                    endpoint="/v1/chat/completions",
                    status=0,
                    request_id="req_left_behind",
                    state=UsageState.PENDING,
                    held=pending,
                    lease_id=lease_id,
                    instance_id="inst_dead",
                    created_at=past,
                )
            )
        return "req_left_behind"
    finally:
        await engine.dispose()


def test_the_sweeper_settles_what_a_dead_instance_left(gateway: Gateway) -> None:
    account_id = gateway.accounts["reader"][0]
    before = run(_ledger(gateway.db, account_id))
    request_id = run(_dead_instance(gateway.db, account_id, D("3"), D("1.25")))
    deadline = time.monotonic() + 15
    while (state := run(_ledger(gateway.db, account_id)))["leases"] or state["held"]:
        assert time.monotonic() < deadline, "the sweeper did not return the lease"
        time.sleep(0.2)
    record = state["records"][request_id]
    assert record.state == UsageState.RECOVERED and record.cost == D("1.25") and record.estimated
    assert state["charges"][record.id] == D("-1.25")
    assert state["balance"] == before["balance"] - D("1.25") == state["ledger"]


# ---- a server killed under load ---------------------------------------------------------------------


def _start(url: URL, providers: Path, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "PORT": str(port),
        "PROVIDERS_FILE": str(providers),
        "LEASE_TTL": "2",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py")],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not start")


def test_a_server_killed_under_load_loses_no_answered_request(tmp_path: Path) -> None:
    databases = Databases("postgresql" if pg_server_url() else "sqlite", tmp_path)
    url = run(databases.migrated(seeded=True))
    ((account_id, key),) = run(_prepare(url, {"load": D(1000)})).values()
    answered: list[str] = []
    try:
        with FakeProvider() as fake:
            fake.set("groq", first_byte_delay=0.03)
            providers = tmp_path / "providers.toml"
            providers.write_text(providers_toml(fake.url, {"groq": "gsk-platform"}))
            port = free_port()
            server = _start(url, providers, tmp_path, port)

            async def load(stop_at: float) -> None:
                async with httpx.AsyncClient(timeout=10) as client:

                    async def worker() -> None:
                        while time.monotonic() < stop_at + 1:
                            try:
                                response = await client.post(
                                    f"http://127.0.0.1:{port}/v1/chat/completions",
                                    json=BODY,
                                    headers={"authorization": f"Bearer {key}"},
                                )
                            except httpx.TransportError:
                                return  # the server is gone
                            if response.status_code == 200:
                                answered.append(response.headers["x-request-id"])

                    workers = [asyncio.create_task(worker()) for _ in range(24)]
                    await asyncio.sleep(stop_at - time.monotonic())
                    server.send_signal(signal.SIGKILL)  # mid-load: requests in flight, charges unsettled
                    await asyncio.gather(*workers)

            run(load(time.monotonic() + 1.5))
            server.wait(timeout=10)
            assert len(answered) > 20
            restarted = _start(url, providers, tmp_path, free_port())
            try:
                deadline = time.monotonic() + 30
                while True:  # the old lease expires (LEASE_TTL) and the new process's sweeper takes it
                    state = run(_ledger(url, account_id))
                    pending = [r for r in state["records"].values() if r.state == UsageState.PENDING]
                    if not pending and not state["leases"] and not state["held"]:
                        break
                    assert time.monotonic() < deadline, ("left held or pending", state["held"], len(pending))
                    time.sleep(0.25)
            finally:
                restarted.terminate()
                restarted.wait(timeout=30)
        for request_id in answered:  # every answer the clients saw has its record and its charge
            record = state["records"][request_id]
            assert record.state in (UsageState.SETTLED, UsageState.RECOVERED)
            assert state["charges"].get(record.id, 0) < 0, request_id
        assert state["held"] == 0 and state["balance"] == state["ledger"] >= 0
        charged = -sum(state["charges"].values())
        assert state["balance"] == D(1000) - charged
    finally:
        if pg_server_url():
            run(databases.drop_all())
