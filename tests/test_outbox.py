"""The outbox: one row per fact in the fact's own transaction (none for a rolled-back one), signed webhook
deliveries verified with the `standardwebhooks` library, retries after a 500 and a timeout, giving up and
disabling a failing endpoint (its owner e-mailed), SSRF refusals, and each message delivered once when two
instances share the work (PostgreSQL, `FOR UPDATE SKIP LOCKED`)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from datasources import accounts, webhooks
from datasources.catalog.record import Observation
from datasources.catalog.record import record_prices as record
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import DeliveryAttempt, OutboxMessage, Plan, WebhookEndpoint
from datasources.delivery import Sender
from datasources.notices import announce
from datasources.outbox import OutboxWorker, WebhookDeliverer
from datasources.secrets import Sealer
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, await_until, pg_server_url, wait_until
from tests.webhook_receiver import Answer, Receiver

SECRET_KEY = "outbox-tests-secret-key"
SEALER = Sealer.from_passphrase(SECRET_KEY)


async def team_account(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, str]:
    async with sessions() as session, session.begin():
        account, issued = await accounts.create_account(session, Plan.TEAM, Decimal(5), email="team@example.test")
    return account.id, issued.secret


async def endpoint_for(
    sessions: async_sessionmaker[AsyncSession], account_id: int, url: str, **filters: Any
) -> webhooks.Created:
    async with sessions() as session, session.begin():
        return await webhooks.create(session, account_id, url, SEALER, **filters)


async def messages(sessions: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with sessions() as session:
        return list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


async def attempts(sessions: async_sessionmaker[AsyncSession], message_id: int) -> list[DeliveryAttempt]:
    async with sessions() as session:
        rows = await session.execute(
            select(DeliveryAttempt).where(DeliveryAttempt.message_id == message_id).order_by(DeliveryAttempt.attempt)
        )
        return list(rows.scalars())


class Boom(Exception):
    pass


async def test_one_outbox_row_per_fact_and_none_for_a_rolled_back_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    account_id, _ = await team_account(sessions)
    await endpoint_for(sessions, account_id, "https://hooks.example.test/in")
    before = await messages(sessions)

    with pytest.raises(Boom):
        async with sessions() as session, session.begin():
            await accounts.create_key(session, account_id, "rolled back")
            raise Boom
    assert [m.id for m in await messages(sessions)] == [m.id for m in before]  # the key never existed

    async with sessions() as session, session.begin():
        issued = await accounts.create_key(session, account_id, "kept")
    new = [(m.channel, m.topic) for m in await messages(sessions) if m.id not in {b.id for b in before}]
    assert sorted(new) == [("email", "key_created"), ("webhook", "key.created")]
    rows = await messages(sessions)
    assert issued.secret not in json.dumps([m.payload for m in rows])
    assert issued.key.prefix in [m.payload for m in rows if m.topic == "key_created"][-1]

    with pytest.raises(Boom):
        async with sessions() as session, session.begin():
            result = await record(session, [Observation("llama-3.3-70b", "groq", Decimal("0.5"), Decimal("0.7"))])
            await announce(session, result.events, None)
            raise Boom
    assert not [m for m in await messages(sessions) if m.topic == "price.changed"]
    async with sessions() as session, session.begin():
        result = await record(session, [Observation("llama-3.3-70b", "groq", Decimal("0.5"), Decimal("0.7"))])
        await announce(session, result.events, None)
    changed = [m for m in await messages(sessions) if m.topic == "price.changed"]
    assert len(changed) == 1
    payload = json.loads(changed[0].payload)
    assert payload["type"] == "price.changed" and payload["version"] == 1 and payload["id"].startswith("evt_")
    assert payload["data"]["model"] == "llama-3.3-70b" and payload["data"]["input_per_1m"] == 0.5


async def test_filters_choose_which_price_changes_an_endpoint_gets(sessions: async_sessionmaker[AsyncSession]) -> None:
    account_id, _ = await team_account(sessions)
    big = await endpoint_for(
        sessions, account_id, "https://hooks.example.test/big", events=["price.changed"], min_change_pct=10
    )
    groq = await endpoint_for(sessions, account_id, "https://hooks.example.test/groq", providers=["groq"])
    for inp in ("1.0", "1.05", "2.0"):  # new offer; +2.5 % blended; a large move
        async with sessions() as session, session.begin():
            result = await record(session, [Observation("llama-3.3-70b", "together", Decimal(inp), Decimal("1"))])
            await announce(session, result.events, None)
    by_endpoint = Counter(m.endpoint_id for m in await messages(sessions) if m.topic == "price.changed")
    assert by_endpoint[big.endpoint.id] == 1  # only the large move (a new offer has no change to measure)
    assert by_endpoint[groq.endpoint.id] == 0  # another provider


async def test_free_plan_cannot_create_webhooks(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        account, _ = await accounts.create_account(session, Plan.DEVELOPER)
    from datasources.errors import PlanRequired

    with pytest.raises(PlanRequired, match="team"):
        await endpoint_for(sessions, account.id, "https://hooks.example.test/in")


# ---- delivering, on a running server ------------------------------------------------------------------


def live_app(url: URL, **settings: Any) -> LiveServer:
    defaults: dict[str, Any] = {
        "database_url": url,
        "migrate_on_start": False,
        "seed_on_start": False,
        "secret_key": SECRET_KEY,
        "webhook_allow_hosts": frozenset({"127.0.0.1"}),
        "outbox_retry": (0.05, 0.05, 0.05),
        "outbox_poll_seconds": 0.05,
        "webhook_timeout": 0.5,
    }
    return LiveServer(create_app(Settings(**{**defaults, **settings})))


async def migrated(tmp_path: Path) -> tuple[URL, async_sessionmaker[AsyncSession]]:
    url = await Databases("sqlite", tmp_path).migrated()
    return url, sessionmaker(create_engine(url))


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_webhook_arrives_signed_and_its_delivery_is_logged(tmp_path: Path) -> None:
    url, sessions = run(migrated(tmp_path))
    account_id, key = run(team_account(sessions))
    with Receiver() as receiver, live_app(url) as server:
        api = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"})
        made = api.post("/v1/webhooks", json={"url": f"{receiver.url}/hook", "events": ["key.created"]})
        assert made.status_code == 201, made.text
        secret, endpoint_id = made.json()["secret"], made.json()["id"]
        assert secret.startswith("whsec_") and "secret" not in api.get(f"/v1/webhooks/{endpoint_id}").json()
        api.post("/graphql", json={"query": 'mutation { createApiKey(name: "ci") { secret } }'}).raise_for_status()
        (got,) = wait_until(receiver.seen, what="the key.created delivery")
        event = Webhook(secret).verify(got.body, got.headers)  # raises unless the signature is right
        assert event["type"] == "key.created" and event["data"]["name"] == "ci"
        assert got.headers["webhook-id"] == event["id"]
        log = wait_until(
            lambda: [d for d in api.get(f"/v1/webhooks/{endpoint_id}/deliveries").json()["data"] if d["attempts"]],
            what="the delivery log",
        )
        assert log[0]["state"] == "delivered" and log[0]["attempts"][0]["status"] == 200
        assert log[0]["attempts"][0]["duration_ms"] >= 0
        again = api.post(f"/v1/webhooks/{endpoint_id}/deliveries/{log[0]['id']}/resend")
        assert again.status_code == 202
        wait_until(lambda: len(receiver.seen()) == 2, what="the delivery sent again")
        assert receiver.seen()[1].headers["webhook-id"] == got.headers["webhook-id"]
        api.close()


def test_retries_after_a_500_and_a_timeout_then_delivers(tmp_path: Path) -> None:
    url, sessions = run(migrated(tmp_path))
    account_id, _ = run(team_account(sessions))
    with Receiver() as receiver, live_app(url) as server:
        del server
        receiver.answer(Answer(status=500), Answer(delay=2.0), Answer(status=200))
        created = run(endpoint_for(sessions, account_id, f"{receiver.url}/hook", events=["key.created"]))
        run(_new_key(sessions, account_id))
        message = wait_until(
            lambda: [m for m in run(messages(sessions)) if m.endpoint_id == created.endpoint.id and m.delivered_at],
            timeout=10,
            what="the delivery after two failures",
        )[0]
        tries = run(attempts(sessions, message.id))
        assert [a.status for a in tries] == [500, None, 200]
        assert "timed out" in (tries[1].error or "")
        assert len({r.headers["webhook-id"] for r in receiver.seen()}) == 1  # the same message each time
        for got in receiver.seen():
            Webhook(created.secret).verify(got.body, got.headers)


async def _new_key(sessions: async_sessionmaker[AsyncSession], account_id: int) -> None:
    async with sessions() as session, session.begin():
        await accounts.create_key(session, account_id, "new")


def test_a_failing_endpoint_is_given_up_on_disabled_and_its_owner_told(tmp_path: Path) -> None:
    url, sessions = run(migrated(tmp_path))
    account_id, _ = run(team_account(sessions))
    with Receiver() as receiver, live_app(url, webhook_disable_after=0.01):
        receiver.answer(Answer(status=503))
        created = run(endpoint_for(sessions, account_id, f"{receiver.url}/hook", events=["key.created"]))
        run(_new_key(sessions, account_id))
        failed = wait_until(
            lambda: [m for m in run(messages(sessions)) if m.endpoint_id and m.state == "failed"],
            timeout=10,
            what="the message marked failed",
        )[0]
        assert failed.last_error
    endpoint = run(_endpoint(sessions, created.endpoint.id))
    assert endpoint.enabled is False and "failing since" in (endpoint.disabled_reason or "")
    mails = [m for m in run(messages(sessions)) if m.topic == "webhook_disabled"]
    assert len(mails) == 1 and json.loads(mails[0].payload)["url"] == f"{receiver.url}/hook"
    assert 2 <= len(receiver.seen()) <= 4


async def _endpoint(sessions: async_sessionmaker[AsyncSession], endpoint_id: str) -> WebhookEndpoint:
    async with sessions() as session:
        found = await session.get(WebhookEndpoint, endpoint_id)
        assert found is not None
        return found


def test_unsafe_destinations_are_refused_and_never_reached(tmp_path: Path) -> None:
    url, sessions = run(migrated(tmp_path))
    account_id, _ = run(team_account(sessions))
    with Receiver() as receiver, Receiver() as target, live_app(url, outbox_retry=()):
        receiver.answer(Answer(redirect=f"{target.url}/elsewhere"))
        port = receiver.url.rsplit(":", 1)[1]
        unsafe = [
            "http://10.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data/",
            f"http://[::1]:{port}/hook",
            f"http://localhost:{port}/hook",  # a name resolving to a loopback address
            f"{receiver.url}/redirect",  # allowed, but its redirect is not followed
        ]
        ids = [run(endpoint_for(sessions, account_id, u, events=["key.created"])).endpoint.id for u in unsafe]
        run(_new_key(sessions, account_id))
        done = wait_until(
            lambda: len([m for m in run(messages(sessions)) if m.endpoint_id and m.state == "failed"]) == len(ids),
            timeout=10,
            what="every unsafe delivery given up",
        )
        assert done
        errors = {m.endpoint_id: m.last_error or "" for m in run(messages(sessions)) if m.endpoint_id}
        for endpoint_id, address in zip(ids[:4], unsafe[:4], strict=True):
            assert "refused" in errors[endpoint_id], (address, errors[endpoint_id])
        assert "redirect" in errors[ids[4]]
        assert len(receiver.seen()) == 1 and receiver.seen()[0].path == "/redirect"  # only the allowed one
        assert target.seen() == []


def test_each_message_is_delivered_once_by_two_instances(tmp_path: Path) -> None:
    if pg_server_url() is None:
        pytest.skip("two instances sharing the outbox need PostgreSQL: set TEST_DATABASE_URL")
    databases = Databases("postgresql", tmp_path)
    url = run(databases.migrated())
    try:
        with Receiver() as receiver:
            receiver.answer(Answer(delay=0.01))
            run(_two_workers(url, receiver.url))
            ids = Counter(r.headers["webhook-id"] for r in receiver.seen())
            assert len(ids) == 60 and set(ids.values()) == {1}
    finally:
        run(databases.drop_all())


async def _two_workers(url: URL, receiver_url: str) -> None:
    engines = [create_engine(url), create_engine(url)]
    sessions = [sessionmaker(e) for e in engines]
    try:
        account_id, _ = await team_account(sessions[0])
        await endpoint_for(sessions[0], account_id, f"{receiver_url}/hook", events=["key.created"])
        for _ in range(60):
            await _new_key(sessions[0], account_id)
        workers = [
            OutboxWorker(
                s,
                f"worker-{n}",
                {"webhook": WebhookDeliverer(s, Sender(allow_hosts=frozenset({"127.0.0.1"})), SEALER)},
                batch=5,
                poll_seconds=0.01,
            )
            for n, s in enumerate(sessions)
        ]
        for worker in workers:
            await worker.start()

        async def left() -> bool:
            async with sessions[0]() as session:
                pending = select(func.count()).where(
                    OutboxMessage.channel == "webhook", OutboxMessage.state != "delivered"
                )
                return (await session.execute(pending)).scalar_one() == 0

        await await_until(left, timeout=30, what="every webhook delivered")
        for worker in workers:
            await worker.stop()
        assert all(w.attempts > 0 for w in workers)  # both took part
        assert sum(w.attempts for w in workers) == 60
    finally:
        for engine in engines:
            await engine.dispose()
