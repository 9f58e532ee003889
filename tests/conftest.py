"""Fresh real databases for tests: a SQLite file, or a new PostgreSQL database when TEST_DATABASE_URL is set.

TEST_DATABASE_URL names a PostgreSQL server and a database the tests may connect to (e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/test); each test gets its own database created beside it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import uvicorn
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from datasources.db import migrate
from datasources.db.engine import create_engine, database_url, sessionmaker

PG_ENV = "TEST_DATABASE_URL"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BACKENDS = ["sqlite", "postgresql"]


def pg_server_url() -> URL | None:
    raw = os.environ.get(PG_ENV)
    return database_url(raw) if raw else None


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Databases:
    """Creates throwaway databases of one backend and drops them at the end of the test session."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.tmp = tmp
        self.created: list[str] = []
        self._templates: dict[str, URL] = {}

    def _server(self) -> URL:
        url = pg_server_url()
        if url is None:
            pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
        return url

    async def new(self, template: URL | None = None) -> URL:
        name = f"pricegraph_t_{uuid.uuid4().hex[:12]}"
        if self.backend == "sqlite":
            path = self.tmp / f"{name}.db"
            if template is not None:
                shutil.copyfile(str(template.database), path)
            return make_url(f"sqlite+aiosqlite:///{path}")
        server = self._server()
        conn = await asyncpg.connect(_asyncpg_dsn(server))
        try:
            clause = f' TEMPLATE "{template.database}"' if template is not None else ""
            await conn.execute(f'CREATE DATABASE "{name}"{clause}')
        finally:
            await conn.close()
        self.created.append(name)
        return server.set(database=name)

    async def migrated(self, seeded: bool = False) -> URL:
        """A database at the newest revision (with the seed catalog when asked), copied from a template."""
        kind = "seeded" if seeded else "migrated"
        if kind not in self._templates:
            url = await self.new()
            engine = create_engine(url)
            try:
                await migrate.upgrade(engine)
                if seeded:
                    from datasources.catalog.importer import ensure_seed

                    await ensure_seed(sessionmaker(engine))
            finally:
                await engine.dispose()
            self._templates[kind] = url
        return await self.new(template=self._templates[kind])

    async def drop_all(self) -> None:
        if not self.created:
            return
        conn = await asyncpg.connect(_asyncpg_dsn(self._server()))
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def databases_by_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Databases]]:
    pools = {b: Databases(b, tmp_path_factory.mktemp(b)) for b in BACKENDS}
    yield pools
    asyncio.run(pools["postgresql"].drop_all())


@pytest.fixture
def backend() -> str:
    """The backend under test: PostgreSQL when TEST_DATABASE_URL is set, else SQLite."""
    return "postgresql" if pg_server_url() else "sqlite"


@pytest.fixture
def databases(databases_by_backend: dict[str, Databases], backend: str) -> Databases:
    return databases_by_backend[backend]


@pytest.fixture
async def db_url(databases: Databases) -> URL:
    """A migrated, empty database."""
    return await databases.migrated()


@pytest.fixture
async def seeded_url(databases: Databases) -> URL:
    """A migrated database holding the shipped seed catalog."""
    return await databases.migrated(seeded=True)


@pytest.fixture
async def engine(db_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return sessionmaker(engine)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared price data is not at {SHARED_DATA}")
    return SHARED_DATA


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn server on 127.0.0.1, in a thread with its own event loop."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        for _ in range(600):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            threading.Event().wait(0.05)
        raise RuntimeError("the server did not start within 30 s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
