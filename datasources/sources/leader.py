"""Which server process polls: the holder of a PostgreSQL advisory lock; on SQLite, the only process.

The lock lives on a dedicated asyncpg connection (not a pooled SQLAlchemy one), so it is held exactly as
long as that connection: when the process stops, crashes or loses the connection, PostgreSQL releases
the lock and another process's next try takes it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import asyncpg
from sqlalchemy.engine import URL

log = logging.getLogger("pricegraph.sources")

# Any constants work; advisory locks are per database, so one database has one polling process and
# one sweeping process.
POLL_LOCK = 0x706F6C6C
SWEEP_LOCK = 0x73776570


class Leader(Protocol):
    async def acquire(self) -> bool:
        """Try once to become the leader; True when this process is (or stays) it."""
        ...

    async def wait_lost(self) -> None:
        """Return when leadership is lost (never, for a single process)."""
        ...

    async def release(self) -> None: ...


class LocalLeader:
    """SQLite: one process owns the database file, so it always polls."""

    def __init__(self) -> None:
        self._released = asyncio.Event()

    async def acquire(self) -> bool:
        self._released.clear()
        return True

    async def wait_lost(self) -> None:
        await self._released.wait()

    async def release(self) -> None:
        self._released.set()


class PostgresLeader:
    def __init__(self, url: URL, key: int = POLL_LOCK, heartbeat: float = 5.0) -> None:
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.key = key
        self.heartbeat = heartbeat
        self.connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()

    async def acquire(self) -> bool:
        if self.connection is not None and not self.connection.is_closed():
            return True
        try:
            connection = await asyncpg.connect(self.dsn, timeout=self.heartbeat)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("cannot connect for the poll lock (%s); retrying", exc)
            return False
        try:
            held = await connection.fetchval("SELECT pg_try_advisory_lock($1)", self.key, timeout=self.heartbeat)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("cannot take the poll lock (%s); retrying", exc)
            held = False
        if not held:
            await _close(connection)
            return False
        self._lost.clear()
        connection.add_termination_listener(lambda _c: self._lost.set())
        self.connection = connection
        return True

    async def wait_lost(self) -> None:
        """Watch the lock's connection: closed by the server, or no answer to a heartbeat."""
        while self.connection is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=self.heartbeat)
                return
            try:
                await self.connection.fetchval("SELECT 1", timeout=self.heartbeat)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("the poll lock's connection failed (%s)", exc)
                return

    async def release(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await _close(connection)


async def _close(connection: asyncpg.Connection) -> None:
    """Closing the session releases its advisory locks; a dead connection is terminated."""
    try:
        await asyncio.wait_for(connection.close(), timeout=5)
    except Exception:  # noqa: BLE001 - any failure to close politely ends in terminate()
        connection.terminate()


def create_leader(url: URL, key: int = POLL_LOCK) -> Leader:
    return PostgresLeader(url, key) if url.get_backend_name() == "postgresql" else LocalLeader()
