"""Top-ups through Polar against a fake of its API: the checkout (REST and GraphQL) carries the account in
its metadata and answers the checkout URL; signed `order.paid` credits once (a replayed delivery, or another
delivery of the same order, credits nothing); a bad signature or a stale timestamp is refused with 403 and
changes nothing; a refund takes what the balance has and records the rest as owed, which stops routing on
platform keys until a credit pays it."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL

from datasources import accounts, polar
from datasources.credit import CreditBook
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Account, Plan
from datasources.errors import InsufficientBalance
from datasources.instances import Instance
from server import Settings, create_app
from tests.conftest import Databases, LiveServer
from tests.fake_polar import FakePolar, order_event, signed

WEBHOOK_SECRET = "polar_whs_test_secret_0123456789"


async def make_account(url: URL) -> tuple[int, str]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session, session.begin():
            account, issued = await accounts.create_account(session, Plan.DEVELOPER, email="pay@example.test")
        return account.id, issued.secret
    finally:
        await engine.dispose()


async def account_row(url: URL, account_id: int) -> Account:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            found = await session.get(Account, account_id)
            assert found is not None
            return found
    finally:
        await engine.dispose()


@pytest.fixture
def service(tmp_path: Path) -> tuple[URL, FakePolar, LiveServer]:  # type: ignore[misc]
    url = asyncio.run(Databases("sqlite", tmp_path).migrated())
    with FakePolar() as fake:
        config = polar.PolarConfig(
            access_token=fake.token, product_id="prod_topup", webhook_secret=WEBHOOK_SECRET, base_url=fake.url
        )
        app = create_app(
            Settings(database_url=url, migrate_on_start=False, seed_on_start=False, secret_key="k", polar=config)
        )
        with LiveServer(app) as server:
            yield url, fake, server


def test_checkout_answers_the_polar_url_for_the_callers_account(service: tuple[URL, FakePolar, LiveServer]) -> None:
    url, fake, server = service
    account_id, key = asyncio.run(make_account(url))
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}) as client:
        made = client.post("/v1/billing/checkout", json={"amount": 20})
        assert made.status_code == 201, made.text
        assert made.json()["url"].startswith(f"{fake.url}/checkout/") and made.json()["amount"] == 20
        sent = fake.seen[-1]
        assert sent["authorization"] == f"Bearer {fake.token}"
        assert sent["body"]["products"] == ["prod_topup"] and sent["body"]["amount"] == 2000
        assert sent["body"]["metadata"]["account_id"] == str(account_id)
        assert sent["body"]["customer_email"] == "pay@example.test"
        for bad in (0, "0.5", 10001, "1.234", "abc", None):
            refused = client.post("/v1/billing/checkout", json={"amount": bad})
            assert refused.status_code == 400 and "amount" in refused.json()["error"], (bad, refused.text)
        fake.fail_next(500)
        down = client.post("/v1/billing/checkout", json={"amount": 5})
        assert down.status_code == 503 and fake.token not in down.text
        graphql = client.post("/graphql", json={"query": "mutation { createCheckout(amount: 12.5) { url amount } }"})
        assert graphql.json()["data"]["createCheckout"]["amount"] == "12.5"
        assert fake.seen[-1]["body"]["amount"] == 1250


def test_order_paid_credits_once(service: tuple[URL, FakePolar, LiveServer]) -> None:
    url, _fake, server = service
    account_id, _ = asyncio.run(make_account(url))
    event = order_event("order.paid", "ord_1", account_id, 2000)
    body, headers = signed(WEBHOOK_SECRET, event, msg_id="msg_first")
    hook = f"{server.url}/v1/billing/polar/webhook"
    first = httpx.post(hook, content=body, headers=headers)
    assert first.status_code == 200 and first.json()["action"] == "credited", first.text
    assert httpx.post(hook, content=body, headers=headers).json()["action"] == "replayed"  # the same delivery
    body2, headers2 = signed(WEBHOOK_SECRET, event, msg_id="msg_second")  # the same order, delivered again
    assert httpx.post(hook, content=body2, headers=headers2).json()["action"] == "replayed"
    assert asyncio.run(account_row(url, account_id)).balance == Decimal(20)


def test_bad_signatures_and_stale_deliveries_change_nothing(service: tuple[URL, FakePolar, LiveServer]) -> None:
    url, _fake, server = service
    account_id, _ = asyncio.run(make_account(url))
    hook = f"{server.url}/v1/billing/polar/webhook"
    event = order_event("order.paid", "ord_2", account_id, 5000)
    body, headers = signed("another-secret", event)
    assert httpx.post(hook, content=body, headers=headers).status_code == 403
    body, headers = signed(WEBHOOK_SECRET, event, timestamp=int(time.time()) - 600)
    assert httpx.post(hook, content=body, headers=headers).status_code == 403
    body, headers = signed(WEBHOOK_SECRET, event)
    tampered = body.replace(b"5000", b"9000")
    assert httpx.post(hook, content=tampered, headers=headers).status_code == 403
    assert httpx.post(hook, content=body, headers={}).status_code == 403
    assert asyncio.run(account_row(url, account_id)).balance == 0
    # The genuine one still credits: nothing above was recorded as seen.
    assert httpx.post(hook, content=body, headers=headers).json()["action"] == "credited"


def test_a_refund_takes_the_balance_records_the_rest_owed_and_stops_platform_routing(
    service: tuple[URL, FakePolar, LiveServer],
) -> None:
    url, _fake, server = service
    account_id, _ = asyncio.run(make_account(url))
    hook = f"{server.url}/v1/billing/polar/webhook"

    def deliver(msg: str, kind: str, order: str, cents: int, refunded: int = 0) -> dict[str, object]:
        body, headers = signed(WEBHOOK_SECRET, order_event(kind, order, account_id, cents, refunded), msg)
        answer = httpx.post(hook, content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert deliver("m1", "order.paid", "ord_a", 1000)["action"] == "credited"
    assert deliver("m2", "order.refunded", "ord_a", 1000, 400) == {
        "received": True,
        "action": "refunded",
        "amount": 4,
        "owed": 0,
    }
    # Order b's payment never reached us, its refund does: 6 USD left to take, 4 owed.
    assert deliver("m3", "order.refunded", "ord_b", 1000, 1000)["owed"] == 4
    assert deliver("m4", "order.refunded", "ord_b", 1000, 1000)["action"] == "replayed"
    row = asyncio.run(account_row(url, account_id))
    assert (row.balance, row.owed) == (0, 4)
    assert asyncio.run(can_hold(url, account_id)) is False  # platform keys: refused while it owes
    assert deliver("m5", "order.paid", "ord_c", 2000)["action"] == "credited"
    row = asyncio.run(account_row(url, account_id))
    assert (row.balance, row.owed) == (16, 0)  # the credit paid what was owed first
    assert asyncio.run(can_hold(url, account_id)) is True


async def can_hold(url: URL, account_id: int) -> bool:
    engine = create_engine(url)
    sessions = sessionmaker(engine)
    instance = Instance(sessions, 30.0)
    await instance.start()
    book = CreditBook(sessions, instance)
    try:
        hold = await book.hold(account_id, Decimal("0.01"))
    except InsufficientBalance:
        return False
    finally:
        await book.stop()
        await instance.stop()
        await engine.dispose()
    return hold.amount == Decimal("0.01")
