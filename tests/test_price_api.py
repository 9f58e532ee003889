"""The REST shim against the published documents: shapes, parameters, plans, errors and quotas."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy.engine import URL

from datasources import accounts
from datasources.callers import OperatorToken
from datasources.catalog.record import Observation, record_prices
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Plan
from routing.rest.openapi import document
from server import Settings, create_app
from tests.conftest import FIXTURES, SHARED_DOCS, LiveServer, price_group

ROOT = Path(__file__).resolve().parents[1]
PRICE_API_DOC = SHARED_DOCS / "price-api.txt"
EXAMPLES = FIXTURES / "price_api_examples.json"  # the document's examples, as extract_examples() reads them
OPERATOR = "operator-token-for-the-price-api-tests"
ENDPOINTS = ["/prices", "/history", "/compare", "/models", "/providers"]


def extract_examples(text: str) -> dict[str, Any]:
    """The five "Example Response" bodies of the price API document, by endpoint, in document order."""
    decoder = json.JSONDecoder()
    examples, start = [], 0
    while (found := text.find("Example Response", start)) != -1:
        body, end = decoder.raw_decode(text, text.index("{", found))
        examples.append(body)
        start = end
    assert len(examples) == len(ENDPOINTS)
    return dict(zip(ENDPOINTS, examples, strict=True))


def doc_examples() -> dict[str, Any]:
    examples: dict[str, Any] = json.loads(EXAMPLES.read_text())
    assert list(examples) == ENDPOINTS
    return examples


@pytest.mark.real_data
def test_the_shipped_examples_are_the_documents() -> None:
    assert doc_examples() == extract_examples(PRICE_API_DOC.read_text())


def kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def assert_shape(example: object, actual: object, path: str = "$") -> None:
    """Every field of the example is in the answer with the same JSON type, at the same nesting."""
    assert kind(actual) == kind(example), f"{path}: {kind(actual)} where the document has {kind(example)}"
    if isinstance(example, dict):
        assert isinstance(actual, dict)
        for key, value in example.items():
            assert key in actual, f"{path}.{key} is missing"
            assert_shape(value, actual[key], f"{path}.{key}")
    elif isinstance(example, list) and example:
        assert isinstance(actual, list) and actual, f"{path}: empty where the document has items"
        for index, item in enumerate(actual):
            assert_shape(example[0], item, f"{path}[{index}]")


def validate(body: object, schema_name: str) -> None:
    spec = document()
    jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    ).validate(body)


@dataclass
class Api:
    base: str
    keys: dict[str, str]
    key_ids: dict[str, str]
    url: URL

    def get(self, path: str, plan: str | None = None, ip: str = "198.51.100.1", **params: object) -> httpx.Response:
        headers = {"X-Forwarded-For": ip}
        if plan is not None:
            headers["Authorization"] = f"Bearer {self.keys[plan]}"
        response = httpx.get(f"{self.base}/api/v1{path}", params=params, headers=headers, timeout=60)
        assert response.status_code != 500, response.text
        return response


async def _setup_accounts(url: URL) -> tuple[dict[str, str], dict[str, str]]:
    engine = create_engine(url)
    keys, ids = {}, {}
    try:
        async with sessionmaker(engine)() as session, session.begin():
            for plan in Plan:
                _, issued = await accounts.create_account(session, plan, name=plan.value)
                keys[plan.value], ids[plan.value] = issued.secret, issued.key.id
            # A price history for groq's llama-3.1-8b: a cut 3 days ago, a rise yesterday.
            now = datetime.now(UTC)
            for days_ago, price in ((3, "0.04"), (1, "0.06")):
                await record_prices(
                    session,
                    [Observation("llama-3.1-8b", "groq", Decimal(price), Decimal(price))],
                    observed_at=now - timedelta(days=days_ago),
                )
    finally:
        await engine.dispose()
    return keys, ids


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from tests.conftest import Databases, pg_server_url

    backend = "postgresql" if pg_server_url() else "sqlite"
    databases = Databases(backend, tmp_path_factory.mktemp("rest"))

    url = asyncio.run(databases.migrated(seeded=True))
    keys, ids = asyncio.run(_setup_accounts(url))
    app = create_app(
        Settings(database_url=url, migrate_on_start=False, seed_on_start=False, operator=OperatorToken(OPERATOR))
    )
    try:
        with LiveServer(app) as server:
            yield Api(server.url, keys, ids, url)
    finally:
        asyncio.run(databases.drop_all())


# ---- documented shapes ----------------------------------------------------------------------------

DOC_REQUESTS = {
    "/prices": ("free", {"model": "llama-3.1-70b"}, "PricesResponse"),
    "/history": ("developer", {"model": "llama-3.1-8b", "provider": "groq", "days": 30}, "HistoryResponse"),
    "/compare": ("team", {"models": "llama-3.1-70b,gpt-4o,deepseek-v3"}, "CompareResponse"),
    "/models": ("free", {}, "ModelsResponse"),
    "/providers": ("free", {}, "ProvidersResponse"),
}


@pytest.mark.parametrize("path", ENDPOINTS)
def test_each_endpoint_answers_the_documented_shape(api: Api, path: str) -> None:
    plan, params, schema_name = DOC_REQUESTS[path]
    response = api.get(
        path, plan=None if plan == "free" else plan, ip=f"198.51.100.{ENDPOINTS.index(path) + 10}", **params
    )
    assert response.status_code == 200, response.text
    body = response.json()
    if path == "/prices":  # every documented field is present and typed; null context windows aside
        body["prices"] = [p for p in body["prices"] if p["context_window"] is not None]
    if path == "/models":
        body["models"] = [m for m in body["models"] if m["params_b"] is not None and m["context_window"]]
    assert_shape(doc_examples()[path], body)
    validate(response.json(), schema_name)
    assert response.headers["content-type"] == "application/json"


def test_prices_are_the_catalog_prices_cheapest_first(api: Api) -> None:
    body = api.get("/prices", model="llama-3.3-70b", ip="198.51.100.20").json()
    assert body["model"] == "llama-3.3-70b"
    rows = body["prices"]
    assert len({r["provider"] for r in rows}) >= 4
    order = [(price_group(r["price_kind"], r["variant"]), Decimal(str(r["blended_per_1m"]))) for r in rows]
    assert order == sorted(order)  # priced at the standard tier cheapest first, then service tiers, then zeros
    for r in rows:
        assert (
            Decimal(str(r["blended_per_1m"]))
            == (Decimal(str(r["input_per_1m"])) + Decimal(str(r["output_per_1m"]))) / 2
        )
    catalog = json.loads((FIXTURES / "litellm_model_prices.json").read_text())  # LiteLLM's entries, unchanged
    entry = catalog["nebius/meta-llama/Llama-3.3-70B-Instruct"]
    nebius = [r for r in rows if r["provider"] == "nebius" and r["variant"] == ""]
    assert len(nebius) == 1
    assert Decimal(str(nebius[0]["input_per_1m"])) == Decimal(repr(entry["input_cost_per_token"])) * 1_000_000
    # Other spellings and a provider filter.
    aliased = api.get("/prices", model="Llama-3.3-70B-Instruct", provider="together_ai", ip="198.51.100.20").json()
    assert aliased["model"] == "llama-3.3-70b"
    assert {r["provider"] for r in aliased["prices"]} == {"together"}
    everything = api.get("/prices", provider="groq", ip="198.51.100.20").json()
    assert everything["model"] is None and {r["provider"] for r in everything["prices"]} == {"groq"}
    assert len({r["model"] for r in everything["prices"]}) > 1


def test_history_candles_follow_the_ticks(api: Api) -> None:
    body = api.get("/history", plan="developer", model="llama-3.1-8b", provider="groq", days=7).json()
    assert (body["model"], body["provider"], body["interval"]) == ("llama-3.1-8b", "groq", "1d")
    candles = body["candles"]
    today = datetime.now(UTC).date()
    # The offer's first tick is 3 days ago: no candle before it, then one a day up to today.
    assert [c["date"] for c in candles] == [(today - timedelta(days=3 - i)).isoformat() for i in range(4)]
    by_date = {c["date"]: c for c in candles}
    cut, rise = by_date[(today - timedelta(days=3)).isoformat()], by_date[(today - timedelta(days=1)).isoformat()]
    assert (cut["close"], rise["open"], rise["close"], rise["change_pct"]) == (0.04, 0.04, 0.06, 50.0)
    assert rise["high"] == 0.06 and rise["low"] == 0.04
    between = by_date[(today - timedelta(days=2)).isoformat()]
    assert between["open"] == between["close"] == 0.04 and between["change_pct"] == 0.0
    hourly = api.get("/history", plan="team", model="llama-3.1-8b", provider="groq", days=2, interval="1h").json()
    assert hourly["interval"] == "1h" and len(hourly["candles"]) == 48
    validate(hourly, "HistoryResponse")


def test_compare_summarizes_each_model(api: Api) -> None:
    body = api.get("/compare", plan="team", models="llama-3.3-70b, gpt-4o", ip="198.51.100.21").json()
    assert [m["model"] for m in body["models"]] == ["llama-3.3-70b", "gpt-4o"]
    for row in body["models"]:
        prices = api.get("/prices", model=row["model"], ip="198.51.100.22").json()["prices"]
        live = [p for p in prices if p["status"] == "live"]
        compared = [p for p in live if price_group(p["price_kind"], p["variant"]) == 0]  # standard tier, priced
        assert row["cheapest_blended"] == min(p["blended_per_1m"] for p in compared)
        assert row["cheapest_provider"] == compared[0]["provider"]
        assert row["provider_count"] == len({p["provider"] for p in live})
        mean = sum(Decimal(str(p["blended_per_1m"])) for p in compared) / len(compared)
        assert abs(Decimal(str(row["avg_blended"])) - mean) < Decimal("1e-9")
    only = api.get("/compare", plan="team", models="llama-3.3-70b", provider="groq").json()["models"][0]
    assert only["cheapest_provider"] in {"groq", None}


def test_models_and_providers_list_the_catalog(api: Api) -> None:
    models = api.get("/models", ip="198.51.100.23").json()["models"]
    assert len(models) >= 300
    by_slug = {m["slug"]: m for m in models}
    assert by_slug["llama-3.3-70b"]["params_b"] == 70 and by_slug["llama-3.3-70b"]["is_benchmark"] is True
    assert by_slug["llama-3.3-70b"]["family"] == "llama" and by_slug["llama-3.3-70b"]["provider_count"] >= 4
    providers = api.get("/providers", ip="198.51.100.23").json()["providers"]
    assert len(providers) >= 15
    groq = next(p for p in providers if p["slug"] == "groq")
    assert groq == {
        "slug": "groq",
        "name": "Groq",
        "model_count": groq["model_count"],
        "status": "operational",
        "signup_url": "https://console.groq.com",
    }
    family = api.get("/models", family="llama", ip="198.51.100.23").json()["models"]
    assert family and {m["family"] for m in family} == {"llama"}


# ---- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "plan", "params", "status", "message"),
    [
        ("/history", "developer", {"provider": "groq"}, 400, "model"),
        ("/history", "developer", {"model": "llama-3.1-8b"}, 400, "provider"),
        ("/history", "developer", {"model": "llama-3.1-8b", "provider": "groq", "days": "ten"}, 400, "days"),
        ("/history", "developer", {"model": "llama-3.1-8b", "provider": "groq", "days": 0}, 400, "days"),
        ("/history", "team", {"model": "llama-3.1-8b", "provider": "groq", "days": 366}, 400, "days"),
        ("/history", "developer", {"model": "llama-3.1-8b", "provider": "groq", "interval": "5m"}, 400, "interval"),
        ("/compare", "team", {}, 400, "models"),
        ("/compare", "team", {"models": "a,b,c,d,e,f"}, 400, "models"),
        ("/history", None, {"model": "llama-3.1-8b", "provider": "groq"}, 402, "developer"),
        ("/history", "developer", {"model": "llama-3.1-8b", "provider": "groq", "days": 90}, 402, "team"),
        ("/history", "developer", {"model": "llama-3.1-8b", "provider": "groq", "interval": "1h"}, 402, "team"),
        ("/compare", "developer", {"models": "gpt-4o"}, 402, "team"),
        ("/prices", None, {"model": "no-such-model"}, 404, "model not found"),
        ("/prices", None, {"provider": "no-such-provider"}, 404, "provider not found"),
        ("/history", "team", {"model": "gpt-4o", "provider": "groq"}, 404, "does not offer"),
        ("/compare", "team", {"models": "gpt-4o,no-such-model"}, 404, "no-such-model"),
    ],
)
def test_errors_have_the_documented_shape(
    api: Api, path: str, plan: str | None, params: dict[str, object], status: int, message: str
) -> None:
    response = api.get(path, plan=plan, ip="198.51.100.30", **params)
    assert response.status_code == status
    body = response.json()
    assert body == {"error": body["error"], "code": status}
    assert message in body["error"]
    validate(body, "Error")


def test_bad_and_revoked_keys_are_401(api: Api) -> None:
    for header in ("Bearer cxm_not-a-real-key", "Bearer sk-something", "Basic abc"):
        response = httpx.get(f"{api.base}/api/v1/prices", headers={"Authorization": header})
        assert response.status_code == 401 and response.json()["code"] == 401
    assert api.get("/prices", plan="enterprise").status_code == 200

    async def revoke() -> None:
        engine = create_engine(api.url)
        try:
            async with sessionmaker(engine)() as session, session.begin():
                await accounts.revoke_key(session, api.key_ids["enterprise"])
        finally:
            await engine.dispose()

    asyncio.run(revoke())  # without a broker, as another program would: noticed within the key table's second
    deadline = time.monotonic() + 3
    while (refused := api.get("/prices", plan="enterprise")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refused.status_code == 401 and refused.json() == {"error": "invalid or revoked API key", "code": 401}


def test_the_free_quota_is_exact_and_refusals_are_free(api: Api) -> None:
    ip = "203.0.113.7"
    for _ in range(3):  # refused for the plan: uses no quota
        assert api.get("/history", ip=ip, model="llama-3.1-8b", provider="groq").status_code == 402
    assert httpx.get(f"{api.base}/api/v1/openapi.json", headers={"X-Forwarded-For": ip}).status_code == 200
    assert httpx.get(f"{api.base}/healthz", headers={"X-Forwarded-For": ip}).status_code == 200

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=api.base, limits=limits, timeout=60) as client:
            return await asyncio.gather(
                *(client.get("/api/v1/providers", headers={"X-Forwarded-For": ip}) for _ in range(150))
            )

    responses = asyncio.run(burst())
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 100 and statuses.count(429) == 50
    for refused in (r for r in responses if r.status_code == 429):
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert refused.json()["code"] == 429
    remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in responses if r.status_code == 200)
    assert remaining == list(range(100))
    # Another address and a key holder are counted apart.
    assert api.get("/providers", ip="203.0.113.8").status_code == 200
    assert api.get("/providers", plan="developer", ip=ip).status_code == 200


def test_the_openapi_document_describes_the_endpoints(api: Api) -> None:
    spec = httpx.get(f"{api.base}/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == set(ENDPOINTS)
    jsonschema.Draft202012Validator.check_schema({"components": spec["components"]})
    history = {p["name"]: p for p in spec["paths"]["/history"]["get"]["parameters"]}
    assert history["model"]["required"] and history["provider"]["required"]
    assert history["days"]["schema"]["default"] == 30


def test_repeated_reads_come_from_the_cache_until_a_price_moves(api: Api) -> None:
    ip = "203.0.113.91"

    def read() -> httpx.Response:
        return api.get("/prices", ip=ip, model="mixtral-8x7b", provider="together")

    first, second = read(), read()
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.content == second.content
    assert int(second.headers["x-ratelimit-remaining"]) == int(first.headers["x-ratelimit-remaining"]) - 1
    mutation = """mutation { recordPrices(prices: [{model: "mixtral-8x7b", provider: "together",
                  inputPer1m: "0.5555", outputPer1m: "0.6666"}]) { unchanged } }"""
    recorded = httpx.post(
        f"{api.base}/graphql", json={"query": mutation}, headers={"Authorization": f"Bearer {OPERATOR}"}
    ).json()
    assert "errors" not in recorded, recorded
    after = read()
    assert after.headers["x-cache"] == "miss"  # the price event retired the entry
    moved = after.json()
    assert {(p["input_per_1m"], p["output_per_1m"]) for p in moved["prices"]} == {(0.5555, 0.6666)}
    assert read().headers["x-cache"] == "hit"
