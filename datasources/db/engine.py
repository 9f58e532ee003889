"""Engine and session factory for the one database URL the service runs on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

DEFAULT_SQLITE_FILE = "pricegraph.db"
SUPPORTED = {"sqlite+aiosqlite", "postgresql+asyncpg"}
ALIASES = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


class DatabaseURLError(ValueError):
    pass


def database_url(raw: str | None = None) -> URL:
    """The URL given (DATABASE_URL), else a SQLite file in the working directory."""
    if not raw:
        raw = f"sqlite+aiosqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"
    try:
        url = make_url(raw)
    except ArgumentError:
        raise DatabaseURLError(f"DATABASE_URL is not a database URL: {_redact(raw)!r}") from None
    drivername = ALIASES.get(url.drivername, url.drivername)
    if drivername not in SUPPORTED:
        raise DatabaseURLError(
            f"unsupported DATABASE_URL scheme {url.drivername!r}: use sqlite+aiosqlite:///PATH "
            "or postgresql+asyncpg://USER@HOST:PORT/DB"
        )
    url = url.set(drivername=drivername)
    if drivername == "sqlite+aiosqlite" and url.database and url.database != ":memory:":
        folder = Path(url.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise DatabaseURLError(f"DATABASE_URL names a SQLite file in a missing directory: {folder}")
    return url


def _redact(raw: str) -> str:
    head, sep, tail = raw.rpartition("@")
    return f"***@{tail}" if sep else raw


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def create_engine(url: URL) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
