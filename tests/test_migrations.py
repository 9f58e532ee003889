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
