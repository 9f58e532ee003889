"""Whether the database answers, probed off the request path so that `/healthz` reads memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("pricegraph.health")


class DatabaseProbe:
    """`SELECT 1` every `interval` seconds; `healthy()` trusts an answer younger than `fresh` seconds and
    asks again itself otherwise (before the first probe, or when probes have stopped answering)."""

    def __init__(self, engine: AsyncEngine, interval: float = 1.0, fresh: float = 3.0) -> None:
        self.engine = engine
        self.interval = interval
        self.fresh = fresh
        self.answered_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._probe_forever(), name="pricegraph: database probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def healthy(self) -> bool:
        if self.answered_at is not None and time.monotonic() - self.answered_at < self.fresh:
            return True
        return await self.probe()

    async def probe(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to answer is "not healthy", never a 500
            log.warning("the database does not answer: %s", exc)
            return False
        self.answered_at = time.monotonic()
        return True

    async def _probe_forever(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self.interval)
