"""Two real catalogues that price some offers differently (LiteLLM's map and models.dev, as shipped in
tests/fixtures): the higher-ranked source sets the price, the other is kept and its disagreement listed."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.catalog import precedence
from datasources.catalog.importer import import_file
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Model, Offer, OfferObservation, OfferStatus, PriceTick, Provider
from server import Settings, create_app
from tests.conftest import FIXTURES, LiveServer

ROOT = Path(__file__).resolve().parents[1]
LITELLM = FIXTURES / "litellm_model_prices.json"
MODELS_DEV = FIXTURES / "models.dev"
# deepseek-chat at DeepSeek: 0.28 / 0.42 in LiteLLM's map (2.8e-07 / 4.2e-07 per token), 0.14 / 0.28 in
# models.dev; Llama 3.3 70B Turbo at Together: 1.04 / 1.04 (8.8e-07 in models.dev: 0.88 / 0.88).
DEEPSEEK = ("deepseek", "deepseek-chat", "")
TOGETHER = ("together", "llama-3.3-70b", "turbo")


async def offer(sessions: async_sessionmaker[AsyncSession], key: tuple[str, str, str]) -> Offer:
    provider, model, variant = key
    async with sessions() as session:
        return (
            await session.execute(
                select(Offer)
                .join(Provider)
                .join(Model)
                .where(Provider.slug == provider, Model.slug == model, Offer.variant == variant)
            )
        ).scalar_one()


async def observed(sessions: async_sessionmaker[AsyncSession], offer_id: int) -> dict[str, tuple[D, D]]:
    async with sessions() as session:
        rows = await session.execute(
            select(OfferObservation.source, OfferObservation.input_per_1m, OfferObservation.output_per_1m).where(
                OfferObservation.offer_id == offer_id
            )
        )
        return {source: (i, o) for source, i, o in rows.all()}


async def ticks(sessions: async_sessionmaker[AsyncSession], offer_id: int) -> list[tuple[str, D, D]]:
    async with sessions() as session:
        rows = await session.execute(
            select(PriceTick.source, PriceTick.input_per_1m, PriceTick.output_per_1m)
            .where(PriceTick.offer_id == offer_id)
            .order_by(PriceTick.id)
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


def test_the_ranks_put_an_operator_and_endpoint_lists_before_catalogues() -> None:
    order = ["admin", "openrouter-endpoints", "openrouter", "litellm", "modelsdev"]
    assert [precedence.rank("deepseek", s) for s in order] == sorted(precedence.rank("deepseek", s) for s in order)
    assert len({precedence.rank("deepseek", s) for s in order}) == len(order)
    assert precedence.rank("deepseek", "someone-else") > precedence.rank("deepseek", "modelsdev")


async def test_a_lower_source_leaves_the_price_alone_and_its_disagreement_is_listed(db_url: URL) -> None:
    engine = create_engine(db_url)
    sessions = sessionmaker(engine)
    try:
        await import_file(sessions, LITELLM, "litellm")
        before = await offer(sessions, DEEPSEEK)
        result = await import_file(sessions, MODELS_DEV, "modelsdev")
        assert result.held_by_precedence >= 2
        after = await offer(sessions, DEEPSEEK)
        assert (after.input_per_1m, after.output_per_1m, after.source) == (D("0.28"), D("0.42"), "litellm")
        assert after.updated_at == before.updated_at and await ticks(sessions, after.id) == [
            ("litellm", D("0.28"), D("0.42"))
        ]
        assert await observed(sessions, after.id) == {
            "litellm": (D("0.28"), D("0.42")),
            "modelsdev": (D("0.14"), D("0.28")),
        }

        async with sessions() as session:
            found = await precedence.disagreements(session)
            wide = await precedence.disagreements(session, "modelsdev", D(20))
        by_offer = {(d.provider, d.model, d.variant): d for d in found}
        deepseek = by_offer[DEEPSEEK]
        assert (deepseek.source, deepseek.other_source, deepseek.change_pct) == ("litellm", "modelsdev", D("-40"))
        assert by_offer[TOGETHER].change_pct == D("-15.3846")  # 0.88 against 1.04
        assert [(d.provider, d.model) for d in wide] == [("deepseek", "deepseek-chat")]
        assert all(abs(d.change_pct) > precedence.DISAGREEMENT_PCT for d in found)
    finally:
        await engine.dispose()


async def test_a_higher_source_takes_over_and_a_lower_one_takes_over_what_it_dropped(db_url: URL) -> None:
    engine = create_engine(db_url)
    sessions = sessionmaker(engine)
    try:
        await import_file(sessions, MODELS_DEV, "modelsdev")
        first = await offer(sessions, DEEPSEEK)
        assert (first.input_per_1m, first.output_per_1m, first.source) == (D("0.14"), D("0.28"), "modelsdev")
        await import_file(sessions, LITELLM, "litellm")  # ranked higher: its price is the offer's
        taken = await offer(sessions, DEEPSEEK)
        assert (taken.input_per_1m, taken.output_per_1m, taken.source) == (D("0.28"), D("0.42"), "litellm")
        assert await ticks(sessions, taken.id) == [
            ("modelsdev", D("0.14"), D("0.28")),
            ("litellm", D("0.28"), D("0.42")),
        ]

        async with sessions() as session, session.begin():  # the higher source stopped listing it
            offer_row = await session.get(Offer, taken.id)
            assert offer_row is not None
            offer_row.status = OfferStatus.UNAVAILABLE
        await import_file(sessions, MODELS_DEV, "modelsdev")
        back = await offer(sessions, DEEPSEEK)
        assert (back.input_per_1m, back.source, back.status) == (D("0.14"), "modelsdev", OfferStatus.LIVE)
    finally:
        await engine.dispose()


def test_disagreements_in_graphql_and_on_the_command_line(db_url: URL) -> None:
    import asyncio

    async def prepare() -> None:
        engine = create_engine(db_url)
        try:
            await import_file(sessionmaker(engine), LITELLM, "litellm")
            await import_file(sessionmaker(engine), MODELS_DEV, "modelsdev")
        finally:
            await engine.dispose()

    asyncio.run(prepare())
    app = create_app(Settings(database_url=db_url, migrate_on_start=False, seed_on_start=False))
    query = """{ sources { name precedence disagreements(thresholdPct: "20") {
                   offer { provider { slug } model { slug } inputPer1m outputPer1m source }
                   inputPer1m outputPer1m changePct } } }"""
    with LiveServer(app) as server:
        answer = httpx.post(f"{server.url}/graphql", json={"query": query}, timeout=20).json()
    assert "errors" not in answer, answer
    sources = {s["name"]: s for s in answer["data"]["sources"]}
    assert sources["litellm"]["precedence"] < sources["modelsdev"]["precedence"]
    assert sources["litellm"]["disagreements"] == []  # it sets the prices it disagrees on
    assert sources["modelsdev"]["disagreements"] == [
        {
            "offer": {
                "provider": {"slug": "deepseek"},
                "model": {"slug": "deepseek-chat"},
                "inputPer1m": "0.28",
                "outputPer1m": "0.42",
                "source": "litellm",
            },
            "inputPer1m": "0.14",
            "outputPer1m": "0.28",
            "changePct": "-40.0000",
        }
    ]

    env = {**os.environ, "DATABASE_URL": db_url.render_as_string(hide_password=False)}
    listed = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "sources", "disagreements", "--threshold", "10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert "deepseek/deepseek-chat: litellm 0.28/0.42, modelsdev 0.14/0.28 (-40.0000%)" in lines
    assert "together/llama-3.3-70b/turbo: litellm 1.04/1.04, modelsdev 0.88/0.88 (-15.3846%)" in lines
    assert lines[-1].endswith("disagreement(s) above 10%")
