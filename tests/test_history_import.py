"""`import-history`: models.dev's real price history (rows of shared/data/models_dev_price_history.csv,
unchanged, in tests/fixtures) filed as the offers' history at its own times, from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from datasources.candles import Interval, candles_for_offer
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Model, Offer, OfferStatus, PriceTick, Provider
from datasources.pricing import price_of
from datasources.sources.history_file import load_history
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
HISTORY = FIXTURES / "models_dev_price_history.csv"
# deepseek-chat at DeepSeek in models.dev's history: (input, output, cache read) per 1M tokens
DEEPSEEK_CHAT = [
    ("2025-06-10T22:55:28", D("0.27"), D("1.1"), None),
    ("2025-06-17T22:26:49", D("0.27"), D("1.1"), D("0.07")),  # only the cache price moved: a tick too
    ("2025-08-25T16:35:54", D("0.57"), D("1.68"), D("0.07")),
    ("2025-11-17T16:05:41", D("0.28"), D("0.42"), D("0.028")),
    ("2026-04-25T17:28:45", D("0.14"), D("0.28"), D("0.028")),
    ("2026-06-06T22:51:44", D("0.14"), D("0.28"), D("0.0028")),
]


def cli(url: URL, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url.render_as_string(hide_password=False)}
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), *args], env=env, capture_output=True, text=True, timeout=120
    )


async def offer_ticks(url: URL, provider: str, model: str) -> tuple[Offer, list[PriceTick]]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            offer = (
                await session.execute(
                    select(Offer)
                    .join(Provider)
                    .join(Model)
                    .where(Provider.slug == provider, Model.slug == model, Offer.variant == "")
                )
            ).scalar_one()
            ticks = (
                await session.execute(
                    select(PriceTick).where(PriceTick.offer_id == offer.id).order_by(PriceTick.observed_at)
                )
            ).scalars()
            return offer, list(ticks)
    finally:
        await engine.dispose()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def test_a_fresh_database_gets_the_offers_and_their_real_history(db_url: URL) -> None:
    done = cli(db_url, "import-history", str(HISTORY))
    assert done.returncode == 0, done.stderr
    assert "as modelsdev" in done.stdout
    offer, ticks = await offer_ticks(db_url, "deepseek", "deepseek-chat")
    assert [(t.observed_at, t.input_per_1m, t.output_per_1m, t.cache_read_per_1m) for t in ticks] == [
        (at(moment), i, o, c) for moment, i, o, c in DEEPSEEK_CHAT
    ]
    assert {t.source for t in ticks} == {"modelsdev"}
    assert (offer.input_per_1m, offer.output_per_1m, offer.cache_read_per_1m) == (D("0.14"), D("0.28"), D("0.0028"))
    assert offer.updated_at == at("2026-06-06T22:51:44")

    gemini, _ = await offer_ticks(db_url, "google", "gemini-3-pro-preview")
    (tier,) = price_of(gemini).dimensions.tiers
    assert (tier.above, tier.rates.input, tier.rates.output, tier.rates.cache_read) == (
        200_000,
        D("4"),
        D("18"),
        D("0.4"),
    )
    delisted, _ = await offer_ticks(db_url, "openai", "gpt-4.5-preview")
    assert delisted.status == OfferStatus.UNAVAILABLE

    engine = create_engine(db_url)
    try:
        async with sessionmaker(engine)() as session:
            providers = set((await session.execute(select(Provider.slug))).scalars())
            candles = await candles_for_offer(
                session, offer.id, 365, Interval.DAY, now=datetime(2026, 7, 1, tzinfo=UTC)
            )
    finally:
        await engine.dispose()
    assert "openrouter" not in providers  # an aggregator's rows are skipped
    # blended, (input + output) / 2: the window opens at the June 2025 price, the last change is the cache's
    assert candles[0].open == D("0.685")
    assert [c.close for c in candles if c.ticks] == [D("1.125"), D("0.35"), D("0.21"), D("0.21")]

    again = cli(db_url, "import-history", str(HISTORY))  # the same file again: nothing new
    assert again.returncode == 0, again.stderr
    assert " 0 price ticks" in again.stdout
    assert len((await offer_ticks(db_url, "deepseek", "deepseek-chat"))[1]) == len(DEEPSEEK_CHAT)


async def test_history_is_filed_before_a_seeded_offer_s_first_tick(seeded_url: URL) -> None:
    before, seeded = await offer_ticks(seeded_url, "deepseek", "deepseek-chat")
    assert [t.source for t in seeded] == ["litellm"]
    done = cli(seeded_url, "import-history", str(HISTORY))
    assert done.returncode == 0, done.stderr
    after, ticks = await offer_ticks(seeded_url, "deepseek", "deepseek-chat")
    # models.dev ranks after LiteLLM: today's price stays LiteLLM's, and its history goes before it
    assert (after.input_per_1m, after.output_per_1m, after.source) == (
        before.input_per_1m,
        before.output_per_1m,
        "litellm",
    )
    assert [t.source for t in ticks] == ["modelsdev"] * len(DEEPSEEK_CHAT) + ["litellm"]
    assert [t.observed_at for t in ticks[:-1]] == [at(moment) for moment, *_ in DEEPSEEK_CHAT]


async def test_a_bad_line_is_named_and_nothing_is_written(db_url: URL, tmp_path: Path) -> None:
    lines = HISTORY.read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace(",0.27,1.1,", ",0.27,abc,")
    broken = tmp_path / "history.csv"
    broken.write_text("".join(lines))
    done = cli(db_url, "import-history", str(broken))
    assert done.returncode == 1
    assert "line 5" in done.stderr and "output_per_1m" in done.stderr and "nothing was written" in done.stderr
    assert "Traceback" not in done.stderr
    engine = create_engine(db_url)
    try:
        async with sessionmaker(engine)() as session:
            assert (await session.execute(select(func.count()).select_from(PriceTick))).scalar_one() == 0
    finally:
        await engine.dispose()
    missing = cli(db_url, "import-history", str(tmp_path / "none.csv"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_the_replay_reads_the_same_file() -> None:
    groups = load_history(HISTORY)
    rows = [row for group in groups for row in group.rows]
    assert {row.key[0] for row in rows} == {"deepseek", "openai", "google"}
    assert [g.at for g in groups] == sorted(g.at for g in groups)
    tiered = [row for row in rows if row.entry is not None and row.entry.dimensions.tiers]
    assert [r.entry.dimensions.tiers[0].above for r in tiered if r.entry] == [200_000]


@pytest.mark.real_data
async def test_the_whole_real_history_files_without_error(db_url: URL, shared_data: Path) -> None:
    groups = load_history(shared_data / "models_dev_price_history.csv")
    offers = {row.key for group in groups for row in group.rows}
    assert len(offers) > 500 and len(groups) > 500
