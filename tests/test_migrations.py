from __future__ import annotations

import pytest
from sqlalchemy import inspect

from datasources.db import migrate
from datasources.db.engine import create_engine
from datasources.db.models import Base
from tests.conftest import BACKENDS, Databases

TABLES = {
    "providers",
    "models",
    "offers",
    "price_ticks",
    "offer_observations",
    "accounts",
    "api_keys",
    "usage_records",
    "balance_transactions",
    "request_counters",
    "price_sources",
    "server_instances",
    "credit_leases",
    "candle_rollups",
    "budgets",
    "budget_leases",
    "webhook_endpoints",
    "outbox",
    "delivery_attempts",
    "inbound_webhooks",
    "sign_in_requests",
    "web_sessions",
}


async def _tables(engine) -> set[str]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names())) - {"alembic_version"}


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_upgrade_downgrade_upgrade(databases_by_backend: dict[str, Databases], backend_name: str) -> None:
    url = await databases_by_backend[backend_name].new()
    engine = create_engine(url)
    try:
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade(engine)
        assert await migrate.current_revision(engine) == migrate.head_revision()
        assert await _tables(engine) == TABLES == set(Base.metadata.tables)

        await migrate.upgrade(engine)  # nothing pending: a no-op
        assert await migrate.current_revision(engine) == migrate.head_revision()

        await migrate.downgrade(engine, "base")
        assert await migrate.current_revision(engine) is None
        assert await _tables(engine) == set()

        await migrate.upgrade(engine)
        assert await _tables(engine) == TABLES
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_migrations_match_the_models(databases_by_backend: dict[str, Databases], backend_name: str) -> None:
    """Alembic's autogenerate finds nothing to add: the migrations and the typed models agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    url = await databases_by_backend[backend_name].new()
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_the_price_dimensions_migration_keeps_existing_prices(
    databases_by_backend: dict[str, Databases], backend_name: str
) -> None:
    """Offers written before 0006 keep their price; a 0 / 0 one becomes unpriced; each offer's source
    gets its first observation."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from sqlalchemy import text

    url = await databases_by_backend[backend_name].new()
    engine = create_engine(url)
    money = 10**10 if backend_name == "sqlite" else 1  # SQLite stores 1e-10 USD as an integer
    at: object = "2026-01-01 00:00:00" if backend_name == "sqlite" else datetime(2026, 1, 1, tzinfo=UTC)
    try:
        await migrate.upgrade(engine, "0005")
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO providers (id, slug, name, created_at) VALUES (1, 'p', 'P', :t)"),
                {"t": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO models (id, slug, display_name, family, is_benchmark, created_at) "
                    "VALUES (1, 'm', 'M', 'f', false, :t)"
                ),
                {"t": at},
            )
            for offer_id, variant, price in ((1, "", 0), (2, "turbo", 2)):
                await conn.execute(
                    text(
                        "INSERT INTO offers (id, provider_id, model_id, variant, provider_model_id, supports_vision,"
                        " supports_tools, input_per_1m, output_per_1m, status, source, updated_at, confirmed_at)"
                        " VALUES (:id, 1, 1, :v, 'm', false, false, :p, :p, 'live', 'litellm', :t, :t)"
                    ),
                    {"id": offer_id, "v": variant, "p": price * money, "t": at},
                )
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            kinds = dict((await conn.execute(text("SELECT variant, price_kind FROM offers"))).all())
            observed = (
                await conn.execute(text("SELECT offer_id, source, input_per_1m FROM offer_observations ORDER BY 1"))
            ).all()
        assert kinds == {"": "unpriced", "turbo": "priced"}
        assert [(o, s, Decimal(p) / money) for o, s, p in observed] == [(1, "litellm", 0), (2, "litellm", 2)]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_the_candle_rollups_migration_backfills_from_the_ticks(
    databases_by_backend: dict[str, Databases], backend_name: str
) -> None:
    """Ticks written at 0006 (ties on observed_at, ids out of time order, cache-read prices or none) are
    rolled up by the upgrade, equal to the raw ticks' aggregation: row by row, and as candles."""
    import random
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from sqlalchemy import select, text

    from datasources import rollups
    from datasources.candles import Dimension, Interval, candles_for_offers, candles_from_ticks
    from datasources.db.engine import sessionmaker
    from datasources.db.models import CandleRollup

    url = await databases_by_backend[backend_name].new()
    engine = create_engine(url)
    sqlite = backend_name == "sqlite"
    money = 10**10 if sqlite else 1

    def stamp(moment: datetime) -> object:
        return moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else moment

    rng = random.Random(6)
    base = datetime(2026, 3, 1, tzinfo=UTC)
    ticks = []
    for offer_id in (1, 2):
        moment = base
        for _ in range(300):
            moment += timedelta(seconds=rng.choice([0, 1, 59, 1800, 3600, 5 * 3600, 86400]))
            cache = rng.choice([None, Decimal("0.01"), Decimal("0.5")])
            ticks.append(
                (offer_id, Decimal(rng.randint(0, 4000)) / 1000, Decimal(rng.randint(0, 9000)) / 1000, cache, moment)
            )
    rng.shuffle(ticks)
    try:
        await migrate.upgrade(engine, "0006")
        async with engine.begin() as conn:
            t = stamp(base)
            await conn.execute(
                text("INSERT INTO providers (id, slug, name, created_at) VALUES (1, 'p', 'P', :t)"), {"t": t}
            )
            await conn.execute(
                text(
                    "INSERT INTO models (id, slug, display_name, family, is_benchmark, created_at) "
                    "VALUES (1, 'm', 'M', 'f', false, :t)"
                ),
                {"t": t},
            )
            for offer_id, variant in ((1, ""), (2, "turbo")):
                await conn.execute(
                    text(
                        "INSERT INTO offers (id, provider_id, model_id, variant, provider_model_id, supports_vision,"
                        " supports_tools, input_per_1m, output_per_1m, status, source, updated_at, confirmed_at)"
                        " VALUES (:id, 1, 1, :v, 'm', false, false, 1, 1, 'live', 'litellm', :t, :t)"
                    ),
                    {"id": offer_id, "v": variant, "t": t},
                )
            await conn.execute(
                text(
                    "INSERT INTO price_ticks (offer_id, input_per_1m, output_per_1m, cache_read_per_1m, observed_at,"
                    " source) VALUES (:o, :i, :out, :c, :t, 'litellm')"
                ),
                [
                    {
                        "o": o,
                        "i": int(i * money),
                        "out": int(out * money),
                        "c": None if c is None else int(c * money),
                        "t": stamp(at),
                    }
                    for o, i, out, c, at in ticks
                ],
            )
        await migrate.upgrade(engine)

        sessions = sessionmaker(engine)
        async with sessions() as session:
            stored = (
                await session.execute(
                    text(
                        "SELECT id, offer_id, observed_at, input_per_1m, output_per_1m, cache_read_per_1m FROM price_ticks"
                    )
                )
            ).all()
            expected = rollups.aggregate(
                (
                    tick_id,
                    offer_id,
                    datetime.fromisoformat(str(at)).replace(tzinfo=UTC) if sqlite else at,
                    Decimal(i) / money,
                    Decimal(o) / money,
                    None if c is None else Decimal(c) / money,
                )
                for tick_id, offer_id, at, i, o, c in stored
            )
            got = (await session.execute(select(CandleRollup))).scalars().all()
            columns = [c.key for c in CandleRollup.__table__.columns]
            key = ("offer_id", "period", "dimension", "bucket")
            assert sorted(tuple(getattr(r, c) for c in columns) for r in got) == sorted(
                tuple(row[c] for c in columns) for row in expected
            )
            assert len(got) == len(expected) > 0 and len({tuple(getattr(r, k) for k in key) for r in got}) == len(got)
            now = max(at for *_, at in ticks) - timedelta(hours=5, minutes=7)
            for dimension in Dimension:
                for days, interval in ((30, Interval.DAY), (4, Interval.HOUR)):
                    args = (session, [1, 2], days, interval, now, dimension)
                    assert await candles_for_offers(*args) == await candles_from_ticks(*args)
    finally:
        await engine.dispose()
