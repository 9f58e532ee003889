"""Fresh real databases for tests: a SQLite file, or a new PostgreSQL database when TEST_DATABASE_URL is set.

TEST_DATABASE_URL names a PostgreSQL server and a database the tests may connect to (e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/test); each test gets its own database created beside it.

Price data: the tests read the files in tests/fixtures (see its README). Tests marked `real_data` read
the full files in ../shared (data and docs) beside the checkout; without that directory they are
deselected, and the terminal summary says how many did not run.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import uvicorn
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from datasources.db import migrate
from datasources.db.engine import create_engine, database_url, sessionmaker

PG_ENV = "TEST_DATABASE_URL"
FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"
SHARED_DOCS = SHARED / "docs"
BACKENDS = ["sqlite", "postgresql"]
REAL_DATA = "real_data"
T = TypeVar("T")


# ---- real data: optional tests on the full files in ../shared ----------------------------------------


def data_files(name: str) -> list[Any]:
    """Parameters for a test that reads the data file `name`: the shipped fixture, and the full real file."""
    return [
        pytest.param(FIXTURES / name, id="fixture"),
        pytest.param(SHARED_DATA / name, id="real", marks=pytest.mark.real_data),
    ]


_NOT_RUN = pytest.StashKey[tuple[int, Path]]()  # how many real-data tests were deselected, and what is missing


def _missing_real_data() -> Path | None:
    return next((path for path in (SHARED_DATA, SHARED_DOCS) if not path.is_dir()), None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{REAL_DATA}: reads the full real files in ../shared (data, docs); deselected without them"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(REAL_DATA)
    missing = _missing_real_data()
    if missing is None:
        return
    deselected = [item for item in items if item.get_closest_marker(REAL_DATA)]
    if deselected:
        items[:] = [item for item in items if not item.get_closest_marker(REAL_DATA)]
        config.hook.pytest_deselected(items=deselected)
        config.stash[_NOT_RUN] = (len(deselected), missing)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    not_run = config.stash.get(_NOT_RUN, None)
    if not_run is not None:
        count, missing = not_run
        terminalreporter.write_line(
            f"real-data tests not run ({count}): ../shared/{missing.name} not found at {missing}", yellow=True
        )


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
    """../shared/data; a test using it is a real-data test (marked so at collection)."""
    return SHARED_DATA


# ---- waiting for something to happen --------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T], timeout: float = 5.0, what: str = "the condition", interval: float = 0.02
) -> T:
    """Poll `predicate` until it returns something true, and return that; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
    return value


async def await_until(
    predicate: Callable[[], T | Awaitable[T]], timeout: float = 5.0, what: str = "the condition", interval: float = 0.02
) -> T:
    """As wait_until, in a coroutine: `predicate` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(interval)


async def subscribed(broker: Any, before: set[Any], count: int = 1, timeout: float = 5.0) -> None:
    """Wait until `count` subscriptions beyond `before` (a copy of `broker.listeners` taken before they
    were sent) listen on a live server's broker: from then on they receive what it publishes."""
    await await_until(
        lambda: len(broker.listeners.copy() - before) >= count,
        timeout,
        f"{count} new subscription(s) listening on the broker",
    )


def price_group(kind: str, variant: str) -> int:
    """Where a price sorts, as the README states it: 0 priced at the standard service tier, 1 a service
    tier's variant (batch, flex, priority), 2 free or unpriced."""
    if kind.lower() != "priced":
        return 2
    return 1 if variant.rsplit("-", 1)[-1] in ("batch", "flex", "priority") else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real uvicorn server on 127.0.0.1, in a thread with its own event loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
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
