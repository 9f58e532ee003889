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
