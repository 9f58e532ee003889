from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.catalog.entries import ModelIdentity, OfferEntry
from datasources.catalog.ingest import apply_offers
from datasources.db.models import Model, Offer, OfferStatus, PriceTick, Provider

LLAMA = ModelIdentity("llama-3.3-70b", "Llama 3.3 70B", "llama", Decimal(70), True)
GROQ = OfferEntry(
    provider="groq",
    model=LLAMA,
    variant="",
    provider_model_id="llama-3.3-70b-versatile",
    input_per_1m=Decimal("0.59"),
    output_per_1m=Decimal("0.79"),
    context_window=131072,
    max_output_tokens=32768,
    supports_vision=False,
    supports_tools=True,
    source_key="groq/llama-3.3-70b-versatile",
)
TURBO = replace(
    GROQ,
    provider="deepinfra",
    variant="turbo",
    provider_model_id="meta-llama/Llama-3.3-70B-Instruct-Turbo",
    input_per_1m=Decimal("0.1"),
    output_per_1m=Decimal("0.32"),
    source_key="x",
)
PLAIN = replace(
    TURBO,
    variant="",
    provider_model_id="meta-llama/Llama-3.3-70B-Instruct",
    input_per_1m=Decimal("0.23"),
    output_per_1m=Decimal("0.4"),
    context_window=200000,
)


async def _apply(sessions: async_sessionmaker[AsyncSession], entries, **kw):  # type: ignore[no-untyped-def]
    async with sessions() as session, session.begin():
        return await apply_offers(session, entries, source="test", **kw)


async def _count(sessions: async_sessionmaker[AsyncSession], table) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(table))).scalar_one()


async def test_first_import_creates_offers_and_one_tick_each(sessions) -> None:  # type: ignore[no-untyped-def]
    result = await _apply(sessions, [GROQ, TURBO, PLAIN])
    assert (result.providers_created, result.models_created, result.offers_created) == (2, 1, 3)
    assert len(result.ticks) == 3
    async with sessions() as session:
        offers = (
            await session.execute(
                select(Provider.slug, Offer.variant, Offer.input_per_1m, Offer.output_per_1m, Offer.status)
                .join(Provider)
                .order_by(Provider.slug, Offer.variant)
            )
        ).all()
        model = (await session.execute(select(Model))).scalar_one()
    assert offers == [
        ("deepinfra", "", Decimal("0.23"), Decimal("0.4"), OfferStatus.LIVE),
        ("deepinfra", "turbo", Decimal("0.1"), Decimal("0.32"), OfferStatus.LIVE),
        ("groq", "", Decimal("0.59"), Decimal("0.79"), OfferStatus.LIVE),
    ]
    assert model.context_window == 200000  # the largest any offer gives
    assert model.params_b == 70


async def test_same_entries_twice_change_nothing(sessions) -> None:  # type: ignore[no-untyped-def]
    await _apply(sessions, [GROQ, TURBO])
    async with sessions() as session:
        before = (await session.execute(select(Offer.id, Offer.updated_at, Offer.confirmed_at))).all()
    again = await _apply(sessions, [GROQ, TURBO])
    assert not again.changed
    assert again.unchanged == 2
    assert await _count(sessions, PriceTick) == 2
    async with sessions() as session:
        after = (await session.execute(select(Offer.id, Offer.updated_at, Offer.confirmed_at))).all()
    assert after == before


async def test_a_changed_price_is_one_new_tick(sessions) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await _apply(sessions, [GROQ, TURBO], observed_at=t0)
    cheaper = replace(GROQ, input_per_1m=Decimal("0.5"))
    result = await _apply(sessions, [cheaper, TURBO], observed_at=t0 + timedelta(days=1))
    assert len(result.ticks) == 1
    tick = result.ticks[0]
    assert (tick.provider, tick.model, tick.input_per_1m, tick.previous_input_per_1m) == (
        "groq",
        "llama-3.3-70b",
        Decimal("0.5"),
        Decimal("0.59"),
    )
    async with sessions() as session:
        ticks = (
            await session.execute(
                select(PriceTick.input_per_1m, PriceTick.output_per_1m, PriceTick.observed_at)
                .join(Offer)
                .join(Provider)
                .where(Provider.slug == "groq")
                .order_by(PriceTick.id)
            )
        ).all()
        offer = (await session.execute(select(Offer).join(Provider).where(Provider.slug == "groq"))).scalar_one()
    assert ticks == [
        (Decimal("0.59"), Decimal("0.79"), t0),
        (Decimal("0.5"), Decimal("0.79"), t0 + timedelta(days=1)),
    ]
    assert offer.input_per_1m == Decimal("0.5")
    assert offer.updated_at == t0 + timedelta(days=1)


async def test_prices_are_exact_decimals(sessions) -> None:  # type: ignore[no-untyped-def]
    tiny = replace(GROQ, input_per_1m=Decimal("0.0000000301"), output_per_1m=Decimal("123456.123456789"))
    await _apply(sessions, [tiny])
    async with sessions() as session:
        offer = (await session.execute(select(Offer))).scalar_one()
    assert offer.input_per_1m == Decimal("0.0000000301")
    assert offer.output_per_1m == Decimal("123456.123456789")


async def test_metadata_change_updates_without_a_tick(sessions) -> None:  # type: ignore[no-untyped-def]
    await _apply(sessions, [GROQ])
    result = await _apply(sessions, [replace(GROQ, supports_vision=True, context_window=8192)])
    assert result.offers_updated == 1 and result.ticks == []
    async with sessions() as session:
        offer = (await session.execute(select(Offer))).scalar_one()
    assert offer.supports_vision and offer.context_window == 8192


async def test_a_failed_batch_writes_nothing(sessions) -> None:  # type: ignore[no-untyped-def]
    await _apply(sessions, [GROQ])
    conflicting = replace(GROQ, input_per_1m=Decimal("9"))
    with pytest.raises(ValueError, match="two entries"):
        await _apply(sessions, [replace(TURBO), GROQ, conflicting])
    assert await _count(sessions, Offer) == 1
    assert await _count(sessions, PriceTick) == 1
