"""The GraphQL API over real HTTP: queries, plan gates, operator mutations, API keys, protections, quotas.

One live uvicorn server per module on a fresh copy of the seed catalog (SQLite, or PostgreSQL when
TEST_DATABASE_URL is set). Keyless callers are counted per client address, so each test sends its own
`X-Forwarded-For: 198.51.100.N` (uvicorn trusts it from 127.0.0.1) to keep quotas apart.

Catalog rows this module changes (and that read-only tests therefore leave alone):
mixtral-8x7b (together, ovhcloud), mistral-7b at perplexity (a new variant), gemma-2-9b at fireworks.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from datasources.callers import OperatorToken
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, pg_server_url, price_group

ADMIN_TOKEN = "operator-token-for-tests-0123456789"
D = Decimal
TEN_PLACES = D("1e-10")
FOUR_PLACES = D("1e-4")
_addresses = itertools.count(1)


# ---- harness -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_url(databases_by_backend: dict[str, Databases]) -> Iterator[str]:
    backend = "postgresql" if pg_server_url() else "sqlite"
    url = asyncio.run(databases_by_backend[backend].migrated(seeded=True))
    app = create_app(
        Settings(database_url=url, migrate_on_start=False, seed_on_start=False, operator=OperatorToken(ADMIN_TOKEN))
    )
    with LiveServer(app) as server:
        yield server.url


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as client:
        yield client


def new_address() -> str:
    n = next(_addresses)
    assert n < 255, "ran out of fake client addresses"
    return f"198.51.100.{n}"


@dataclass(frozen=True)
class Caller:
    """One client: a fake address and, optionally, a bearer token."""

    base: str
    http: httpx.Client
    ip: str
    token: str | None = None

    def keyed(self, token: str | None) -> Caller:
        return replace(self, token=token)

    def headers(self) -> dict[str, str]:
        headers = {"X-Forwarded-For": self.ip}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def send(self, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        response = self.http.post(f"{self.base}/graphql", headers={**self.headers(), **(headers or {})}, **kwargs)
        assert response.status_code < 500, response.text
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
            if isinstance(body, dict):
                for error in body.get("errors") or []:
                    assert (error.get("extensions") or {}).get("code"), f"error without a code: {error}"
        return response

    def post(self, query: str, **variables: Any) -> httpx.Response:
        return self.send(json={"query": query, "variables": variables})

    def body(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.post(query, **variables)
        assert response.status_code in (200, 429), response.text
        return response.json()

    def data(self, query: str, **variables: Any) -> dict[str, Any]:
        body = self.body(query, **variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def error(self, query: str, **variables: Any) -> dict[str, Any]:
        """The one error of a refused operation or field: no data, or null where the error points."""
        body = self.body(query, **variables)
        assert len(body["errors"]) == 1, body["errors"]
        error = body["errors"][0]
        value: Any = body.get("data")
        for step in error.get("path") or []:
            if value is None:
                break
            value = value[step]
        assert value is None, body
        return error


def code(error: dict[str, Any]) -> str:
    return error["extensions"]["code"]


@pytest.fixture
def anon(base_url: str, http: httpx.Client) -> Caller:
    """A keyless caller with an address of its own."""
    return Caller(base_url, http, new_address())


@pytest.fixture
def admin(anon: Caller) -> Caller:
    return anon.keyed(ADMIN_TOKEN)


CREATE_ACCOUNT = """
mutation ($plan: Plan!, $credit: Decimal! = "0", $name: String! = "") {
  createAccount(plan: $plan, credit: $credit, name: $name) {
    secret account { id name plan balance } key { id name prefix revoked }
  }
}
"""


@dataclass(frozen=True)
class Account:
    id: str
    key_id: str
    secret: str
    caller: Caller


@pytest.fixture
def account(admin: Caller) -> Any:
    """Create an account through the GraphQL operator mutation; returns its id, key and a caller."""

    def make(plan: str, name: str = "") -> Account:
        created = admin.data(CREATE_ACCOUNT, plan=plan, name=name)["createAccount"]
        assert created["account"]["plan"] == plan
        return Account(
            created["account"]["id"], created["key"]["id"], created["secret"], admin.keyed(created["secret"])
        )

    return make


def blended(price: dict[str, Any]) -> Decimal:
    return D(price["blendedPer1m"])


def expected_pct(new: Decimal, old: Decimal) -> Decimal:
    return ((new - old) * 100 / old).quantize(FOUR_PLACES, rounding=ROUND_HALF_EVEN)


MODELS_PAGE = """
query ($first: Int!, $offset: Int!) {
  models(first: $first, offset: $offset) {
    slug displayName family
    prices { supportsVision supportsTools status provider { slug } }
  }
}
"""


@pytest.fixture(scope="module")
def all_models(base_url: str, http: httpx.Client) -> list[dict[str, Any]]:
    """Every model of the seed catalog, page by page (pages of 100 keep a keyless query within its cost)."""
    caller = Caller(base_url, http, new_address())
    models: list[dict[str, Any]] = []
    while page := caller.data(MODELS_PAGE, first=100, offset=len(models))["models"]:
        models += page
    return models


# ---- 1. queries --------------------------------------------------------------------------------------


def test_models_are_ordered_by_slug_and_paginate(anon: Caller, all_models: list[dict[str, Any]]) -> None:
    slugs = [m["slug"] for m in all_models]
    assert len(slugs) > 500  # the catalog needs several pages
    assert slugs == sorted(slugs) and len(set(slugs)) == len(slugs)
    page = anon.data("{ models(first: 7, offset: 5) { slug } }")["models"]
    assert [m["slug"] for m in page] == slugs[5:12]
    assert [m["slug"] for m in anon.data("{ models(first: 3) { slug } }")["models"]] == slugs[:3]
    tail = anon.data("query ($o: Int!) { models(first: 10, offset: $o) { slug } }", o=len(slugs) - 2)["models"]
    assert [m["slug"] for m in tail] == slugs[-2:]
    assert anon.data("query ($o: Int!) { models(offset: $o) { slug } }", o=len(slugs))["models"] == []


@pytest.mark.parametrize(
    ("arguments", "field", "message"),
    [
        ("first: 0", "first", "first: must be from 1 to 1000, got 0"),
        ("first: 1001", "first", "first: must be from 1 to 1000, got 1001"),
        ("first: -3", "first", "first: must be from 1 to 1000, got -3"),
        ("offset: -1", "offset", "offset: must not be negative, got -1"),
    ],
)
def test_models_bad_page_arguments_are_bad_user_input(anon: Caller, arguments: str, field: str, message: str) -> None:
    error = anon.error(f"{{ models({arguments}) {{ slug }} }}")
    assert code(error) == "BAD_USER_INPUT"
    assert error["message"] == message
    assert error["path"] == ["models"]


def _slugs(models: list[dict[str, Any]]) -> list[str]:
    return [m["slug"] for m in models]


def test_models_filters(anon: Caller, all_models: list[dict[str, Any]]) -> None:
    def query(arguments: str) -> list[str]:
        return _slugs(anon.data(f"{{ models(first: 500, {arguments}) {{ slug }} }}")["models"])

    llama = [m["slug"] for m in all_models if m["family"] == "llama"]
    assert len(llama) > 10
    assert query('family: "llama"') == llama
    assert query('family: "LLAMA"') == llama  # family is matched case-insensitively

    at_groq = [m["slug"] for m in all_models if any(p["provider"]["slug"] == "groq" for p in m["prices"])]
    assert at_groq and query('provider: "groq"') == at_groq
    groq = anon.data('{ provider(slug: "groq") { models { slug } } }')["provider"]
    assert _slugs(groq["models"]) == at_groq

    vision = [m["slug"] for m in all_models if any(p["supportsVision"] for p in m["prices"])]
    tools = [m["slug"] for m in all_models if any(p["supportsTools"] for p in m["prices"])]
    assert 0 < len(vision) < len(all_models) and 0 < len(tools) < len(all_models)
    assert query("capability: VISION") == vision
    assert query("capability: TOOLS") == tools

    wanted = "llama-3.3"
    found = [m["slug"] for m in all_models if wanted in m["slug"] or wanted in m["displayName"].lower()]
    assert "llama-3.3-70b" in found
    assert query(f'search: "{wanted}"') == found
    assert query('search: "LLAMA-3.3"') == found

    # filters combine; the capability is any provider's, the provider filter a separate condition
    at_together = {m["slug"] for m in all_models if any(p["provider"]["slug"] == "together" for p in m["prices"])}
    combined = [s for s in llama if s in at_together and s in tools]
    assert combined and query('family: "llama", provider: "together", capability: TOOLS') == combined
    assert query('search: "no-model-is-called-like-this"') == []
    page = anon.data('{ models(family: "llama", first: 2, offset: 1) { slug } }')["models"]
    assert _slugs(page) == llama[1:3]


def test_models_search_is_literal(anon: Caller) -> None:
    for text in ("%", "llama_3"):
        models = anon.data("query ($s: String!) { models(first: 500, search: $s) { slug displayName } }", s=text)
        for model in models["models"]:
            assert text in model["slug"] or text in model["displayName"].lower(), (text, model)


def test_model_by_slug_by_spelling_and_unknown(anon: Caller) -> None:
    query = "query ($s: String!) { model(slug: $s) { slug displayName family } }"
    canonical = anon.data(query, s="llama-3.3-70b")["model"]
    assert canonical["slug"] == "llama-3.3-70b" and canonical["family"] == "llama"
    for spelling in ("Llama-3.3-70B-Instruct", "meta-llama/Llama-3.3-70B-Instruct", "  LLAMA-3.3-70B "):
        assert anon.data(query, s=spelling)["model"] == canonical, spelling
    body = anon.body(query, s="no-such-model-9000")
    assert body["data"] == {"model": None} and "errors" not in body


PRICES = """
query ($m: String, $p: String) {
  prices(model: $m, provider: $p) {
    id variant inputPer1m outputPer1m blendedPer1m status priceKind
    model { slug } provider { slug }
  }
}
"""


def group(price: dict[str, Any]) -> int:
    return price_group(price["priceKind"], price["variant"])


@pytest.mark.parametrize("slug", ["llama-3.3-70b", "deepseek-v3", "llama-3.1-8b", "gpt-4o"])
def test_model_cheapest_and_provider_count_agree_with_prices(anon: Caller, slug: str) -> None:
    model = anon.data(
        """query ($s: String!) { model(slug: $s) {
             providerCount cheapest { id blendedPer1m provider { slug } }
             prices { id blendedPer1m } offers { id } } }""",
        s=slug,
    )["model"]
    prices = anon.data(PRICES, m=slug)["prices"]
    assert len(prices) > 3
    for price in prices:
        assert price["model"]["slug"] == slug
        assert blended(price) == (D(price["inputPer1m"]) + D(price["outputPer1m"])) / 2
    keys = [(group(p), blended(p), int(p["id"])) for p in prices]
    assert keys == sorted(keys)  # standard priced ones cheapest blended first; service tiers; free and unpriced
    assert [p["id"] for p in model["prices"]] == [p["id"] for p in prices] == [o["id"] for o in model["offers"]]

    live = [p for p in prices if p["status"] == "LIVE" and group(p) == 0]
    assert all(blended(p) > 0 for p in live)
    assert model["cheapest"]["id"] == live[0]["id"]
    assert blended(model["cheapest"]) == min(blended(p) for p in live)
    assert model["cheapest"]["provider"]["slug"] == live[0]["provider"]["slug"]
    assert model["providerCount"] == len({p["provider"]["slug"] for p in prices if p["status"] != "UNAVAILABLE"})


def test_prices_of_a_model_at_a_provider_sorted_by_blended(anon: Caller) -> None:
    prices = anon.data(PRICES, m="deepseek-v3", p="novita")["prices"]
    assert [(p["variant"], p["blendedPer1m"]) for p in prices] == [
        ("turbo", "0.85"),
        ("", "0.89"),
        ("community", "0.89"),
    ]
    assert int(prices[1]["id"]) < int(prices[2]["id"])  # a tie goes to the older offer
    assert all(p["model"]["slug"] == "deepseek-v3" and p["provider"]["slug"] == "novita" for p in prices)
    # any spelling of the model gives the same rows
    assert anon.data(PRICES, m="deepseek-ai/DeepSeek-V3", p="novita")["prices"] == prices
    # a provider alone: its prices grouped by model slug, each group cheapest first
    groq = anon.data(PRICES, p="groq")["prices"]
    assert groq and all(p["provider"]["slug"] == "groq" for p in groq)
    keys = [(p["model"]["slug"], blended(p), int(p["id"])) for p in groq]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"m": "no-such-model-9000"}, "model not found: no-such-model-9000"),
        ({"m": "llama-3.3-70b", "p": "no-such-provider"}, "provider not found: no-such-provider"),
    ],
)
def test_prices_of_unknown_names_are_not_found(anon: Caller, variables: dict[str, str], message: str) -> None:
    error = anon.error(PRICES, **variables)
    assert code(error) == "NOT_FOUND" and error["message"] == message and error["path"] == ["prices"]


def test_providers_and_provider_navigation(anon: Caller) -> None:
    providers = anon.data("{ providers { slug name modelCount } }")["providers"]
    slugs = [p["slug"] for p in providers]
    assert slugs == sorted(slugs) and len(set(slugs)) == len(slugs)
    assert {"groq", "together", "deepinfra", "fireworks"} <= set(slugs)
    assert not {"openrouter", "vercel_ai_gateway"} & set(slugs)

    groq = anon.data("""{ provider(slug: "groq") {
        slug name modelCount models { slug prices { provider { slug } } }
        prices { id blendedPer1m model { slug } provider { slug } } } }""")["provider"]
    assert groq["slug"] == "groq"
    assert groq["name"] == next(p["name"] for p in providers if p["slug"] == "groq")
    price_models = {p["model"]["slug"] for p in groq["prices"]}
    assert _slugs(groq["models"]) == sorted(price_models)
    assert groq["modelCount"] == len(price_models) == next(p["modelCount"] for p in providers if p["slug"] == "groq")
    assert all(p["provider"]["slug"] == "groq" for p in groq["prices"])
    # Provider.models -> Model.prices: every model of groq has a groq price
    assert all(any(p["provider"]["slug"] == "groq" for p in m["prices"]) for m in groq["models"])
    unknown = anon.body('{ provider(slug: "no-such-provider") { slug } }')
    assert unknown["data"] == {"provider": None} and "errors" not in unknown


# ---- 2. plans ----------------------------------------------------------------------------------------


def _pair(caller: Caller, model: str) -> tuple[str, dict[str, Any]]:
    """A provider selling `model` as its default build, and that price."""
    prices = caller.data(PRICES, m=model)["prices"]
    price = next(p for p in prices if p["variant"] == "")
    return price["provider"]["slug"], price


CANDLES = """
query ($m: String!, $p: String!, $d: Int! = 30, $i: CandleInterval! = DAY, $v: String) {
  candles(model: $m, provider: $p, days: $d, interval: $i, variant: $v) {
    start date open high low close changePct ticks
  }
}
"""


def test_keyless_candles_are_payment_required(anon: Caller) -> None:
    provider, _ = _pair(anon, "llama-3.3-70b")
    body = anon.body(
        'query ($p: String!) { providers { slug } candles(model: "llama-3.3-70b", provider: $p) { close } }', p=provider
    )
    assert [(code(e), e["path"], e["message"]) for e in body["errors"]] == [
        ("PAYMENT_REQUIRED", ["candles"], "history requires the developer plan or higher"),
    ]
    error = anon.error("{ models(first: 1) { prices { candles { close } } } }")
    assert code(error) == "PAYMENT_REQUIRED" and error["path"] == ["models", 0, "prices", 0, "candles"]


def test_keyless_plan_refusal_keeps_the_rest_of_the_query(anon: Caller) -> None:
    provider, _ = _pair(anon, "llama-3.3-70b")
    body = anon.body(
        'query ($p: String!) { providers { slug } candles(model: "llama-3.3-70b", provider: $p) { close } }', p=provider
    )
    assert [code(e) for e in body["errors"]] == ["PAYMENT_REQUIRED"]
    assert body["data"] is not None and "groq" in {p["slug"] for p in body["data"]["providers"]}


def test_developer_gets_30_days_of_daily_candles_only(anon: Caller, account: Any) -> None:
    dev = account("DEVELOPER").caller
    provider, price = _pair(anon, "llama-3.3-70b")
    candles = dev.data(CANDLES, m="llama-3.3-70b", p=provider, d=30)["candles"]
    # the seed's tick (observed when the catalog was loaded, today) is the only one: one candle
    assert len(candles) == 1
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert candles[0]["date"] == today and candles[0]["start"].startswith(today + "T00:00:00")
    assert D(candles[0]["close"]) == D(candles[0]["open"]) == blended(price)
    assert candles[0]["ticks"] == 1 and candles[0]["changePct"] == "0.0000"
    nested = dev.data('{ model(slug: "llama-3.3-70b") { prices { candles(days: 7) { close } } } }')
    assert all(len(p["candles"]) == 1 for p in nested["model"]["prices"])

    for variables, message in [
        ({"d": 90}, "90 days of history requires the team plan or higher (the developer plan allows 30)"),
        ({"d": 31}, "31 days of history requires the team plan or higher (the developer plan allows 30)"),
        ({"d": 2, "i": "HOUR"}, "hourly candles requires the team plan or higher"),
    ]:
        error = dev.error(CANDLES, m="llama-3.3-70b", p=provider, **variables)
        assert (code(error), error["message"], error["path"]) == ("PAYMENT_REQUIRED", message, ["candles"])
    for days in (0, 366):
        error = dev.error(CANDLES, m="llama-3.3-70b", p=provider, d=days)
        assert code(error) == "BAD_USER_INPUT" and error["message"] == f"days: must be from 1 to 365, got {days}"


def test_team_gets_long_and_hourly_candles(anon: Caller, account: Any) -> None:
    team = account("TEAM").caller
    provider, price = _pair(anon, "llama-3.3-70b")
    daily = team.data(CANDLES, m="llama-3.3-70b", p=provider, d=365)["candles"]
    hourly = team.data(CANDLES, m="llama-3.3-70b", p=provider, d=2, i="HOUR")["candles"]
    assert [D(c["close"]) for c in daily] == [blended(price)]
    assert hourly and all(D(c["close"]) == blended(price) for c in hourly)
    assert hourly[0]["ticks"] == 1 and all(c["ticks"] == 0 for c in hourly[1:])
    starts = [datetime.fromisoformat(c["start"]) for c in hourly]
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(starts))
    error = team.error(CANDLES, m="llama-3.3-70b", p=provider, d=366)
    assert code(error) == "BAD_USER_INPUT"
    error = team.error(CANDLES, m="llama-3.3-70b", p="groq")
    assert code(error) == "NOT_FOUND" and error["message"] == "provider groq does not offer llama-3.3-70b"


COMPARE = """
query ($models: [String!]!) {
  compare(models: $models) {
    model { slug } cheapestProvider cheapestBlended avgBlended providerCount cheapest { id }
  }
}
"""


def test_compare_needs_the_team_plan_and_agrees_with_prices(anon: Caller, account: Any) -> None:
    names = ["llama-3.3-70b", "deepseek-v3", "llama-3.1-8b"]
    for plan in ("FREE", "DEVELOPER"):
        error = account(plan).caller.error(COMPARE, models=names)
        assert (code(error), error["message"]) == ("PAYMENT_REQUIRED", "compare requires the team plan or higher")
    assert code(anon.error(COMPARE, models=names)) == "PAYMENT_REQUIRED"

    team = account("TEAM").caller
    rows = team.data(COMPARE, models=names)["compare"]
    assert [r["model"]["slug"] for r in rows] == names
    for row in rows:
        live = [p for p in anon.data(PRICES, m=row["model"]["slug"])["prices"] if p["status"] == "LIVE"]
        prices = [p for p in live if group(p) == 0]  # a zero is no price, a batch price another API's
        assert row["cheapest"]["id"] == prices[0]["id"]
        assert row["cheapestProvider"] == prices[0]["provider"]["slug"]
        assert D(row["cheapestBlended"]) == blended(prices[0])
        mean = (sum(blended(p) for p in prices) / len(prices)).quantize(TEN_PLACES, rounding=ROUND_HALF_EVEN)
        assert D(row["avgBlended"]) == mean
        assert row["providerCount"] == len({p["provider"]["slug"] for p in live})

    six = ["llama-3.3-70b", "deepseek-v3", "llama-3.1-8b", "mistral-7b", "gemma-2-9b", "mixtral-8x7b"]
    error = team.error(COMPARE, models=six)
    assert (code(error), error["message"]) == ("BAD_USER_INPUT", "models: give 1 to 5 model slugs, got 6")
    assert code(team.error(COMPARE, models=[])) == "BAD_USER_INPUT"
    assert len(team.data(COMPARE, models=six[:5])["compare"]) == 5
    error = team.error(COMPARE, models=["llama-3.3-70b", "no-such-model-9000"])
    assert (code(error), error["message"]) == ("NOT_FOUND", "model not found: no-such-model-9000")


# ---- 3. operator mutations ---------------------------------------------------------------------------


RECORD = """
mutation ($prices: [PriceInput!]!, $at: DateTime) {
  recordPrices(prices: $prices, observedAt: $at) {
    unchanged offersCreated
    ticks { model provider variant inputPer1m outputPer1m blendedPer1m previousBlendedPer1m changePct observedAt }
  }
}
"""


def _observation(model: str, provider: str, input_: str, output: str, variant: str = "") -> dict[str, str]:
    return {"model": model, "provider": provider, "inputPer1m": input_, "outputPer1m": output, "variant": variant}


def test_record_prices_is_for_operators_only(anon: Caller, account: Any) -> None:
    before = anon.data(PRICES, m="mixtral-8x7b", p="ovhcloud")["prices"]
    observation = [_observation("mixtral-8x7b", "ovhcloud", "9", "9")]
    for caller in (anon, account("DEVELOPER").caller, account("TEAM").caller):
        error = caller.error(RECORD, prices=observation)
        assert code(error) == "FORBIDDEN" and error["path"] == ["recordPrices"]
        assert error["message"] == "operators only: send Authorization: Bearer <ADMIN_TOKEN>"
    for mutation in (
        "mutation { createAccount(plan: TEAM) { secret } }",
        'mutation { setPlan(accountId: "1", plan: ENTERPRISE) { plan } }',
    ):
        assert code(account("DEVELOPER").caller.error(mutation)) == "FORBIDDEN"
    assert anon.data(PRICES, m="mixtral-8x7b", p="ovhcloud")["prices"] == before


def test_record_a_changed_price_then_the_same_price(anon: Caller, admin: Caller) -> None:
    [old] = anon.data(PRICES, m="mixtral-8x7b", p="together")["prices"]
    new_in, new_out = D("0.55"), D("0.75")
    old_blended = (D(old["inputPer1m"]) + D(old["outputPer1m"])) / 2
    new_blended = (new_in + new_out) / 2
    assert new_blended != old_blended

    observation = [_observation("mixtral-8x7b", "together", str(new_in), str(new_out))]
    recorded = admin.data(RECORD, prices=observation)["recordPrices"]
    assert (recorded["unchanged"], recorded["offersCreated"]) == (0, 0)
    [tick] = recorded["ticks"]
    assert (tick["model"], tick["provider"], tick["variant"]) == ("mixtral-8x7b", "together", "")
    assert (D(tick["inputPer1m"]), D(tick["outputPer1m"])) == (new_in, new_out)
    assert D(tick["blendedPer1m"]) == new_blended
    assert D(tick["previousBlendedPer1m"]) == old_blended
    assert D(tick["changePct"]) == expected_pct(new_blended, old_blended)
    assert tick["changePct"] == str(expected_pct(new_blended, old_blended))  # four places
    assert abs(datetime.fromisoformat(tick["observedAt"]) - datetime.now(UTC)) < timedelta(minutes=1)

    [now] = anon.data(PRICES, m="mixtral-8x7b", p="together")["prices"]
    assert now["id"] == old["id"] and blended(now) == new_blended

    again = admin.data(RECORD, prices=observation)["recordPrices"]
    assert again == {"unchanged": 1, "offersCreated": 0, "ticks": []}


def test_record_a_new_variant_creates_an_offer(anon: Caller, admin: Caller) -> None:
    before = anon.data(PRICES, m="mistral-7b", p="perplexity")["prices"]
    observation = [_observation("mistral-7b", "perplexity", "0.01", "0.02", variant="pg-new")]
    recorded = admin.data(RECORD, prices=observation)["recordPrices"]
    assert (recorded["unchanged"], recorded["offersCreated"]) == (0, 1)
    [tick] = recorded["ticks"]
    assert tick["variant"] == "pg-new" and D(tick["blendedPer1m"]) == D("0.015")
    assert tick["previousBlendedPer1m"] is None and tick["changePct"] is None
    after = anon.data(PRICES, m="mistral-7b", p="perplexity")["prices"]
    assert len(after) == len(before) + 1
    assert after[0]["variant"] == "pg-new"  # the cheapest now
    model = anon.data('{ model(slug: "mistral-7b") { cheapest { variant provider { slug } } } }')["model"]
    assert model["cheapest"] == {"variant": "pg-new", "provider": {"slug": "perplexity"}}


@pytest.mark.parametrize(
    ("observation", "message"),
    [
        (
            _observation("mixtral-8x7b", "together", "-0.5", "1"),
            "prices[0].inputPer1m: must be a non-negative number, got -0.5",
        ),
        (
            _observation("mixtral-8x7b", "together", "1", "-1"),
            "prices[0].outputPer1m: must be a non-negative number, got -1",
        ),
        (
            _observation("mixtral-8x7b", "no-such-provider", "1", "1"),
            "prices[0].provider: unknown provider 'no-such-provider'",
        ),
    ],
)
def test_record_bad_observations_are_bad_user_input(
    anon: Caller, admin: Caller, observation: dict[str, str], message: str
) -> None:
    before = anon.data(PRICES, m="mixtral-8x7b")["prices"]
    error = admin.error(RECORD, prices=[observation])
    assert (code(error), error["message"], error["path"]) == ("BAD_USER_INPUT", message, ["recordPrices"])
    assert anon.data(PRICES, m="mixtral-8x7b")["prices"] == before


def test_record_refuses_an_empty_batch_and_a_naive_time(admin: Caller) -> None:
    error = admin.error(RECORD, prices=[])
    assert (code(error), error["message"]) == ("BAD_USER_INPUT", "prices: give 1 to 1000 observations, got 0")
    error = admin.error(RECORD, prices=[_observation("mixtral-8x7b", "together", "1", "1")], at="2026-01-02T03:04:05")
    assert code(error) == "BAD_USER_INPUT" and error["message"].startswith("observedAt: give a time zone")


def test_recorded_history_makes_daily_candles(anon: Caller, admin: Caller, account: Any) -> None:
    now = datetime.now(UTC)
    first, second = ("0.10", "0.30"), ("0.12", "0.44")  # blended 0.2, then 0.28
    for (input_, output), ago in ((first, 3), (second, 1)):
        admin.data(
            RECORD,
            prices=[_observation("mistral-7b", "perplexity", input_, output, variant="history")],
            at=(now - timedelta(days=ago)).isoformat(),
        )
    dev = account("DEVELOPER").caller
    candles = dev.data(CANDLES, m="mistral-7b", p="perplexity", d=7, v="history")["candles"]
    a, b = D("0.2"), D("0.28")
    day = [(now - timedelta(days=n)).strftime("%Y-%m-%d") for n in (3, 2, 1, 0)]
    assert [
        (c["date"], D(c["open"]), D(c["high"]), D(c["low"]), D(c["close"]), D(c["changePct"]), c["ticks"])
        for c in candles
    ] == [
        (day[0], a, a, a, a, D(0), 1),  # the offer's first tick: no candle before it
        (day[1], a, a, a, a, D(0), 0),  # no tick: the close carries forward
        (day[2], a, b, a, b, expected_pct(b, a), 1),  # the step
        (day[3], b, b, b, b, D(0), 0),
    ]
    assert candles[2]["changePct"] == "40.0000"
    assert dev.data(CANDLES, m="mistral-7b", p="perplexity", d=1, v="history")["candles"] == [candles[3]]


def test_a_backdated_observation_keeps_candles_and_current_price_consistent(
    anon: Caller, admin: Caller, account: Any
) -> None:
    admin.data(
        RECORD,
        prices=[_observation("gemma-2-9b", "fireworks", "0.3", "0.5")],
        at=(datetime.now(UTC) - timedelta(days=2)).isoformat(),
    )
    [price] = anon.data(PRICES, m="gemma-2-9b", p="fireworks")["prices"]
    candles = account("DEVELOPER").caller.data(CANDLES, m="gemma-2-9b", p="fireworks", d=7)["candles"]
    assert D(candles[-1]["close"]) == blended(price)


def test_set_plan_upgrades_a_developer_to_team(admin: Caller, account: Any) -> None:
    dev = account("DEVELOPER")
    assert code(dev.caller.error(COMPARE, models=["llama-3.3-70b"])) == "PAYMENT_REQUIRED"
    upgraded = admin.data("mutation ($id: ID!) { setPlan(accountId: $id, plan: TEAM) { id plan } }", id=dev.id)
    assert upgraded == {"setPlan": {"id": dev.id, "plan": "TEAM"}}
    assert dev.caller.data("{ me { id plan } }") == {"me": {"id": dev.id, "plan": "TEAM"}}
    assert len(dev.caller.data(COMPARE, models=["llama-3.3-70b"])["compare"]) == 1

    error = admin.error('mutation { setPlan(accountId: "abc", plan: TEAM) { id } }')
    assert (code(error), error["message"]) == ("BAD_USER_INPUT", "accountId: 'abc' is not an account id")
    error = admin.error('mutation { setPlan(accountId: "987654", plan: TEAM) { id } }')
    assert (code(error), error["message"]) == ("NOT_FOUND", "account 987654 not found")


def test_create_account_validates_its_arguments(admin: Caller) -> None:
    inline = admin.error("mutation { createAccount(plan: GOLD) { secret } }")
    assert code(inline) == "GRAPHQL_VALIDATION_FAILED"
    assert inline["message"] == "Value 'GOLD' does not exist in 'Plan' enum."
    variable = admin.error(CREATE_ACCOUNT, plan="gold")  # refused, nothing created
    assert "'gold' does not exist in 'Plan' enum" in variable["message"]
    error = admin.error(CREATE_ACCOUNT, plan="TEAM", credit="-1")
    assert (code(error), error["message"]) == ("BAD_USER_INPUT", "credit: must be a non-negative USD amount, got -1")
    created = admin.data(CREATE_ACCOUNT, plan="FREE", credit="12.50", name="acme")["createAccount"]
    assert created["account"]["name"] == "acme" and D(created["account"]["balance"]) == D("12.5")
    assert created["key"]["name"] == "default" and created["key"]["revoked"] is False
    assert created["secret"].startswith("cxm_") and created["secret"].startswith(created["key"]["prefix"])


def test_a_bad_variable_value_is_bad_user_input_naming_the_variable(admin: Caller) -> None:
    error = admin.error(CREATE_ACCOUNT, plan="gold")
    assert code(error) == "BAD_USER_INPUT"
    assert "$plan" in error["message"] and error.get("locations")


# ---- 4. accounts and keys ----------------------------------------------------------------------------


ME = "{ me { id name plan balance } }"


def test_me_needs_a_valid_key(anon: Caller, account: Any) -> None:
    error = anon.error(ME)
    assert (code(error), error["path"]) == ("UNAUTHENTICATED", ["me"])
    assert error["message"] == "an API key is required: send Authorization: Bearer cxm_..."
    for token in ("cxm_not-a-real-key", "not-even-prefixed"):
        # a bad key refuses the whole operation, even the fields keyless callers may read
        body = anon.keyed(token).body("{ providers { slug } me { id } }")
        assert body["data"] is None
        assert [code(e) for e in body["errors"]] == ["UNAUTHENTICATED"]
        assert "path" not in body["errors"][0]
    basic = anon.send(json={"query": ME}, headers={"Authorization": "Basic dXNlcjpwYXNz"}).json()
    assert [code(e) for e in basic["errors"]] == ["UNAUTHENTICATED"]
    free = account("FREE", name="free with key")
    me = free.caller.data(ME)["me"]
    assert (me["id"], me["name"], me["plan"], D(me["balance"])) == (free.id, "free with key", "FREE", 0)
    assert code(free.caller.error(CANDLES, m="llama-3.3-70b", p="together")) == "PAYMENT_REQUIRED"


KEYS = "{ apiKeys { id name prefix revoked revokedAt createdAt } }"


def test_api_keys_lifecycle(account: Any) -> None:
    owner = account("DEVELOPER")
    created = owner.caller.data('mutation { createApiKey(name: "  ci  ") { secret key { id name prefix revoked } } }')
    secret, key = created["createApiKey"]["secret"], created["createApiKey"]["key"]
    assert secret.startswith("cxm_") and len(secret) > 30
    assert key["name"] == "ci" and key["revoked"] is False
    assert secret.startswith(key["prefix"]) and len(key["prefix"]) < len(secret)
    second = owner.caller.keyed(secret)
    assert second.data("{ me { id } }") == {"me": {"id": owner.id}}

    listing = second.post(KEYS)
    assert secret not in listing.text and owner.secret not in listing.text
    keys = listing.json()["data"]["apiKeys"]
    assert [(k["id"], k["name"], k["revoked"]) for k in keys] == [
        (owner.key_id, "default", False),
        (key["id"], "ci", False),
    ]
    assert keys[1]["prefix"] == key["prefix"] and owner.secret.startswith(keys[0]["prefix"])
    fields = second.data('{ __type(name: "ApiKey") { fields { name } } }')["__type"]["fields"]
    assert "secret" not in {f["name"] for f in fields}

    revoked = owner.caller.data("mutation ($id: ID!) { revokeApiKey(id: $id) { id revoked revokedAt } }", id=key["id"])[
        "revokeApiKey"
    ]
    assert revoked["id"] == key["id"] and revoked["revoked"] is True and revoked["revokedAt"]
    error = second.error("{ me { id } }")
    assert (code(error), error["message"]) == ("UNAUTHENTICATED", "invalid or revoked API key")
    keys = owner.caller.data(KEYS)["apiKeys"]
    assert [(k["id"], k["revoked"]) for k in keys] == [(owner.key_id, False), (key["id"], True)]


def test_revoking_another_accounts_key_is_not_found(account: Any) -> None:
    alice, bob = account("DEVELOPER"), account("TEAM")
    for key_id in (bob.key_id, "key_0000000000000000"):
        error = alice.caller.error("mutation ($id: ID!) { revokeApiKey(id: $id) { id } }", id=key_id)
        assert (code(error), error["message"]) == ("NOT_FOUND", f"API key '{key_id}' not found")
    assert bob.caller.data("{ me { id } }") == {"me": {"id": bob.id}}  # still works
    error = alice.caller.keyed(None).error('mutation { createApiKey(name: "x") { secret } }')
    assert code(error) == "UNAUTHENTICATED"


# ---- 5. protection -----------------------------------------------------------------------------------


def _nested(levels: int) -> str:
    """`{ models { prices { model { prices { ... } } } } }`: `levels` object fields, then a scalar."""
    names = ["models(first: 1)"] + ["prices(first: 2)" if i % 2 == 0 else "model" for i in range(levels - 1)]
    leaf = "id" if names[-1].startswith("prices") else "slug"
    return "{ " + " { ".join(names) + " { " + leaf + " }" * levels + " }"


def _remaining(response: httpx.Response) -> int | None:
    value = response.headers.get("x-ratelimit-remaining")
    return None if value is None else int(value)


def test_deep_queries_are_refused_before_execution(anon: Caller) -> None:
    shallow = anon.post(_nested(6))
    assert shallow.status_code == 200 and "errors" not in shallow.json()
    assert _remaining(shallow) == 99
    deep = anon.post(_nested(20))
    body = deep.json()
    assert body["data"] is None and body["errors"]
    assert {code(e) for e in body["errors"]} == {"GRAPHQL_VALIDATION_FAILED"}
    assert all(e["message"] == "'anonymous' exceeds maximum operation depth of 10" for e in body["errors"])
    assert _remaining(deep) is None  # not executed, not counted
    assert _remaining(anon.post("{ __typename }")) == 98


def test_alias_floods_and_fragment_cycles_are_refused(anon: Caller) -> None:
    thousand = anon.post("{ " + " ".join(f"a{i}: __typename" for i in range(1000)) + " }").json()
    assert thousand["data"] is None
    assert [code(e) for e in thousand["errors"]] == ["GRAPHQL_PARSE_FAILED"]
    assert "more than 2000 tokens" in thousand["errors"][0]["message"]
    over = anon.error("{ " + " ".join(f"a{i}: providers {{ slug }}" for i in range(31)) + " }")
    assert (code(over), over["message"]) == ("GRAPHQL_VALIDATION_FAILED", "31 aliases found. Allowed: 30")
    assert len(anon.data("{ " + " ".join(f"a{i}: __typename" for i in range(30)) + " }")) == 30

    cycle = anon.error("fragment A on Model { prices { model { ...A } } } { models(first: 1) { ...A } }")
    assert code(cycle) == "GRAPHQL_VALIDATION_FAILED"
    assert cycle["message"] == "Cannot spread fragment 'A' within itself."
    assert _remaining(anon.post("{ __typename }")) == 98  # only the 30 aliases were executed


def test_field_suggestions_only_for_key_holders(anon: Caller, account: Any) -> None:
    keyless = anon.error("{ modelz { slug } }")
    assert code(keyless) == "GRAPHQL_VALIDATION_FAILED"
    assert keyless["message"] == "Cannot query field 'modelz' on type 'Query'."
    keyed = account("DEVELOPER").caller.error("{ modelz { slug } }")
    assert code(keyed) == "GRAPHQL_VALIDATION_FAILED"
    assert keyed["message"] == "Cannot query field 'modelz' on type 'Query'. Did you mean 'model' or 'models'?"
    bad_arg = anon.error("{ models(firts: 3) { slug } }")
    assert "Did you mean" not in bad_arg["message"] and code(bad_arg) == "GRAPHQL_VALIDATION_FAILED"
    syntax = anon.error("{ models { slug }")
    assert code(syntax) == "GRAPHQL_PARSE_FAILED"


def test_malformed_requests_are_client_errors(anon: Caller) -> None:
    batch = anon.send(json=[{"query": "{ providers { slug } }"}, {"query": "{ __typename }"}])
    assert batch.status_code == 400 and batch.text == "Batching is not enabled"
    assert anon.send(content=b"[]", headers={"content-type": "application/json"}).status_code == 400
    assert anon.send(content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert anon.send(json={"query": 42}).status_code == 400
    assert anon.send(json={"query": "{ __typename }", "variables": [1]}).status_code == 400
    get = anon.http.get(
        f"{anon.base}/graphql", params={"query": "mutation { createApiKey { secret } }"}, headers=anon.headers()
    )
    assert get.status_code == 400 and "mutations are not allowed when using GET" in get.text


def test_introspection_works_without_a_key(anon: Caller) -> None:
    assert anon.data("{ __schema { queryType { name } mutationType { name } } }") == {
        "__schema": {"queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}}
    }
    # the full query GraphiQL sends passes the depth, alias and token limits
    schema = anon.data(get_introspection_query(descriptions=True))["__schema"]
    assert {"Model", "Price", "Provider", "Candle"} <= {t["name"] for t in schema["types"]}


# ---- 6. quota ----------------------------------------------------------------------------------------


def test_keyless_quota_is_100_operations_per_address(anon: Caller, account: Any) -> None:
    for used in range(1, 101):
        response = anon.post("{ __typename }")
        assert response.status_code == 200 and "errors" not in response.json(), response.text
        assert response.headers["x-ratelimit-limit"] == "100"
        assert _remaining(response) == 100 - used
    refused = anon.post("{ providers { slug } }")
    assert refused.status_code == 429
    body = refused.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert code(error) == "RATE_LIMITED"
    retry = error["extensions"]["retryAfter"]
    assert isinstance(retry, int) and 0 < retry <= 24 * 3600
    assert refused.headers["retry-after"] == str(retry)
    assert error["message"].startswith("rate limit exceeded: 100 requests per rolling 24 h on the free plan")
    assert anon.post("{ __typename }").status_code == 429  # still refused...
    # ...but other callers are not affected
    assert _remaining(replace(anon, ip=new_address()).post("{ __typename }")) == 99
    assert account("DEVELOPER").caller.data("{ __typename }") == {"__typename": "Query"}


def test_concurrent_keyless_requests_admit_exactly_the_quota(base_url: str) -> None:
    ip = new_address()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *[
                    client.post(
                        f"{base_url}/graphql", json={"query": "{ __typename }"}, headers={"X-Forwarded-For": ip}
                    )
                    for _ in range(110)
                ]
            )

    responses = asyncio.run(burst())
    assert sorted(r.status_code for r in responses) == [200] * 100 + [429] * 10
    assert sorted(_remaining(r) for r in responses if r.status_code == 200) == list(range(100))


def test_remaining_goes_down_per_operation_whatever_it_answers(anon: Caller, account: Any) -> None:
    assert _remaining(anon.post("{ providers { slug } }")) == 99
    # an operation refused for its plan answers nothing and uses no quota...
    refused = anon.post('{ candles(model: "llama-3.3-70b", provider: "together") { close } }')
    assert [code(e) for e in refused.json()["errors"]] == ["PAYMENT_REQUIRED"]
    assert _remaining(refused) == 99
    # ...but one that answers something around the refused field counts
    partial = anon.post('{ providers { slug } candles(model: "llama-3.3-70b", provider: "together") { close } }')
    assert partial.json()["data"]["providers"] and _remaining(partial) == 98
    not_found = anon.post('{ prices(model: "no-such-model-9000") { id } }')
    assert [code(e) for e in not_found.json()["errors"]] == ["NOT_FOUND"] and _remaining(not_found) == 97
    # operations refused before execution (parse or validation) do not count
    assert _remaining(anon.post("{ nope }")) is None
    assert _remaining(anon.post("{ __typename }")) == 96

    # an account's keys share its quota
    dev = account("DEVELOPER")
    first = dev.caller.post("{ __typename }")
    assert first.headers["x-ratelimit-limit"] == "10000" and _remaining(first) == 9999
    second = dev.caller.data('mutation { createApiKey(name: "b") { secret } }')["createApiKey"]["secret"]
    assert _remaining(dev.caller.keyed(second).post("{ __typename }")) == 9997
    # operators are not metered
    assert _remaining(anon.keyed(ADMIN_TOKEN).post("{ __typename }")) is None


def test_a_repeated_catalog_query_is_answered_from_the_cache_until_a_price_moves(anon: Caller, admin: Caller) -> None:
    query = "query ($m: String!) { model(slug: $m) { slug prices { provider { slug } inputPer1m } } }"
    first, second = anon.post(query, m="gemma-2-9b"), anon.post(query, m="gemma-2-9b")
    assert "x-cache" not in first.headers and second.headers["x-cache"] == "hit"
    assert first.json() == second.json()
    assert _remaining(second) == _remaining(first) - 1  # a cached answer still counts
    other = anon.post(query, m="llama-3.3-70b")  # other variables: another question
    assert "x-cache" not in other.headers
    admin.data("""mutation { recordPrices(prices: [{model: "gemma-2-9b", provider: "fireworks",
                  inputPer1m: "0.3131", outputPer1m: "0.3131"}]) { unchanged } }""")
    moved = anon.post(query, m="gemma-2-9b")
    assert "x-cache" not in moved.headers  # the price event retired the answer
    fireworks = [p for p in moved.json()["data"]["model"]["prices"] if p["provider"]["slug"] == "fireworks"]
    assert D("0.3131") in {D(p["inputPer1m"]) for p in fireworks}
    personal = anon.post("{ me { id } }")
    assert "x-cache" not in personal.headers and "x-cache" not in anon.post("{ me { id } }").headers
