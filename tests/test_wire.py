"""Money on the wire: a Decimal leaves as a JSON number with its own digits, never through a float,
on the REST mounts and the gateway alike; every entry point parses amounts one way."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from datasources import accounts
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Plan
from datasources.errors import BadInput
from datasources.money import parse_amount
from routing.wire import dumps
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, pg_server_url

EXACT = Decimal("9999999.1234567891")  # a float keeps 15-16 digits: 9999999.12345679


def test_decimals_are_written_from_their_digits() -> None:
    text = dumps({"balance": EXACT, "prices": [Decimal("0.075"), Decimal("2"), Decimal("1E-10")], "n": 3})
    assert text == b'{"balance":9999999.1234567891,"prices":[0.075,2,0.0000000001],"n":3}'
    assert json.loads(text, parse_float=Decimal)["balance"] == EXACT


def test_no_string_can_pass_for_a_number() -> None:
    """Whatever a description holds stays a string: the writer's marks are drawn anew for each answer."""
    tricky = ["\x00abc:1", "\\u0000", '"quoted"', "naïve"]
    assert json.loads(dumps({"descriptions": tricky, "amount": Decimal("1.5")})) == {
        "descriptions": tricky,
        "amount": 1.5,
    }
    with pytest.raises(ValueError):
        dumps({"bad": Decimal("NaN")})


@pytest.mark.parametrize(
    ("raw", "allow_zero", "message"),
    [
        ("abc", False, "'abc' is not a USD amount"),
        ("0", False, "must be a positive USD amount, got 0"),
        ("-1", True, "must be a non-negative USD amount, got -1"),
        ("1.00000000001", False, "at most 10 decimal places, got 1.00000000001"),
        ("Infinity", False, "must be a positive USD amount, got Infinity"),
    ],
)
def test_one_way_to_read_an_amount(raw: str, allow_zero: bool, message: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse_amount(raw, allow_zero=allow_zero)
    assert str(refused.value) == message and refused.value.field == "amount"
    assert refused.value.describe() == f"amount: {message}"
    assert parse_amount(" 2.5 ") == Decimal("2.5") and parse_amount("0", allow_zero=True) == 0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    databases = Databases("postgresql" if pg_server_url() else "sqlite", tmp_path_factory.mktemp("wire"))
    url = asyncio.run(databases.migrated(seeded=True))

    async def key() -> str:
        engine = create_engine(url)
        try:
            async with sessionmaker(engine)() as session, session.begin():
                _, issued = await accounts.create_account(session, Plan.DEVELOPER, EXACT, "exact")
            return issued.secret
        finally:
            await engine.dispose()

    secret = asyncio.run(key())
    try:
        with LiveServer(create_app(Settings(database_url=url, migrate_on_start=False, seed_on_start=False))) as server:
            yield server.url, secret
    finally:
        asyncio.run(databases.drop_all())


def test_a_balance_is_written_exactly(served: tuple[str, str]) -> None:
    base, key = served
    response = httpx.get(f"{base}/v1/balance", headers={"authorization": f"Bearer {key}"})
    assert b'"balance":9999999.1234567891' in response.content
    assert json.loads(response.content, parse_float=Decimal)["available"] == EXACT
    history = httpx.get(f"{base}/v1/billing/history", headers={"authorization": f"Bearer {key}"})
    assert json.loads(history.content, parse_float=Decimal)["data"][0]["amount"] == EXACT
