"""/v1/models, as the official openai client reads it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import httpx
import openai
import pytest

from datasources import accounts
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Plan
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, pg_server_url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    databases = Databases("postgresql" if pg_server_url() else "sqlite", tmp_path_factory.mktemp("v1"))
    url = asyncio.run(databases.migrated(seeded=True))

    async def key() -> str:
        engine = create_engine(url)
        try:
            async with sessionmaker(engine)() as session, session.begin():
                _, issued = await accounts.create_account(session, Plan.DEVELOPER, Decimal(5), "sdk")
            return issued.secret
        finally:
            await engine.dispose()

    secret = asyncio.run(key())
    try:
        with LiveServer(create_app(Settings(database_url=url, migrate_on_start=False, seed_on_start=False))) as server:
            yield server.url, secret
    finally:
        asyncio.run(databases.drop_all())


def client(served: tuple[str, str]) -> openai.OpenAI:
    base, secret = served
    return openai.OpenAI(base_url=f"{base}/v1", api_key=secret, max_retries=0)


def test_openai_client_lists_models_with_pricing_and_capabilities(served: tuple[str, str]) -> None:
    models = client(served).models.list().data
    assert len(models) >= 300
    by_id = {m.id: m for m in models}
    llama = by_id["llama-3.3-70b"].model_dump()
    assert llama["object"] == "model" and isinstance(llama["created"], int)
    assert llama["supports_tools"] is True and llama["capabilities"] == {"vision": False, "tool_calling": True}
    providers = {p["provider"] for p in llama["providers"]}
    assert len(providers) >= 4 and llama["pricing"]["provider"] in providers
    cheapest = min(
        Decimal(str(p["input_per_1m"])) + Decimal(str(p["output_per_1m"]))
        for p in llama["providers"]
        if p["status"] == "live"
    )
    pricing = llama["pricing"]
    assert Decimal(str(pricing["input_per_1m"])) + Decimal(str(pricing["output_per_1m"])) == cheapest
    assert Decimal(pricing["prompt"]) * 1_000_000 == Decimal(str(pricing["input_per_1m"]))
    assert by_id["gpt-4o"].model_dump()["supports_vision"] is True


def test_retrieve_by_slug_and_by_provider_form(served: tuple[str, str]) -> None:
    sdk = client(served)
    bare = sdk.models.retrieve("gpt-4o-mini").model_dump()
    pinned = sdk.models.retrieve("openai/gpt-4o-mini").model_dump()
    assert bare["id"] == "gpt-4o-mini" and pinned["id"] == "openai/gpt-4o-mini"
    assert {p["provider"] for p in pinned["providers"]} == {"openai"}
    assert pinned["pricing"]["provider"] == "openai"
    spelled = sdk.models.retrieve("meta-llama/Llama-3.3-70B-Instruct").model_dump()
    assert spelled["id"] == "llama-3.3-70b"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("no-such-model")
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("groq/gpt-4o")


def test_errors_keep_the_documented_shape(served: tuple[str, str]) -> None:
    base, _ = served
    missing = httpx.get(f"{base}/v1/models/no-such-model")
    assert missing.status_code == 404 and missing.json() == {"error": "model not found: no-such-model", "code": 404}
    bad = httpx.get(f"{base}/v1/models", headers={"Authorization": "Bearer cxm_wrong"})
    assert bad.status_code == 401 and bad.json()["code"] == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{base}/v1", api_key="cxm_wrong", max_retries=0).models.list()
