"""This server process, as the database knows it: a row that lives while the process renews it.

Every process registers itself at start with an id of its own and renews its row every third of
`ttl` (its credit leases are renewed the same way, `datasources.credit`). A process that stops cleanly
deletes its row; one that dies stops renewing, and once the expiry has passed the sweeper
(`datasources.sweeper`) takes what it left: its pending usage records and its leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.db.models import ServerInstance

log = logging.getLogger("pricegraph.instances")

TTL_SECONDS = 30.0


class Instance:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: float = TTL_SECONDS) -> None:
        self.sessionmaker = sessionmaker
        self.ttl = ttl
        self.id = "inst_" + secrets.token_hex(8)
        self._task: asyncio.Task[None] | None = None

    def expiry(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.ttl)

    async def start(self) -> None:
        now = datetime.now(UTC)
        async with self.sessionmaker() as session, session.begin():
            await session.execute(insert(ServerInstance).values(id=self.id, started_at=now, expires_at=self.expiry()))
        self._task = asyncio.create_task(self._renew_forever(), name="pricegraph: instance renewal")

    async def stop(self) -> None:
        """After the process has given its leases back: its row goes too."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with self.sessionmaker() as session, session.begin():
                await session.execute(delete(ServerInstance).where(ServerInstance.id == self.id))

    async def renew(self) -> None:
        expires = self.expiry()
        async with self.sessionmaker() as session, session.begin():
            renewed = (
                await session.execute(
                    update(ServerInstance)
                    .where(ServerInstance.id == self.id)
                    .values(expires_at=expires)
                    .returning(ServerInstance.id)
                )
            ).scalar_one_or_none()
            if renewed is None:  # taken for dead (renewals failed for a whole ttl): here again
                log.warning("this instance's row had expired and was swept; registering again")
                await session.execute(
                    insert(ServerInstance).values(id=self.id, started_at=datetime.now(UTC), expires_at=expires)
                )

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.renew()
            except Exception:  # the database is away: try again; the leases outlive a short outage
                log.warning("could not renew this instance's leases", exc_info=True)
