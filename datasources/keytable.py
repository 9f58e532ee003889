"""Every live API key in memory: its hash → the key, its account and the account's plan.

Requests are authenticated here, without a database round trip. The table is read whole at start and
kept current three ways:

- `KeyChanged` events (a key created or revoked, an account's plan changed), from any process through
  the broker, applied as they arrive;
- a fingerprint of the keys and plans (counts and the latest times), read every second, which reads
  the table again when it moved without an event (a revocation written by a tool that has no broker);
- a key this process has not heard of yet (created a moment ago elsewhere) is looked up in the
  database, at most `lookups_per_second` times a second, so that guessing keys costs no database work.

Revocations, by event or by the fingerprint, are handed to `on_revoked` callbacks: open websockets
that authenticated with the key close at once.

When each key was last used is noted in memory and written every few seconds in one statement for all
the keys used since (and once more at stop): `api_keys.last_used_at` moves forward only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.db.models import Account, ApiKey, Plan
from datasources.db.tables import API_KEYS
from datasources.events import Event, KeyChanged, MemoryBroker

log = logging.getLogger("pricegraph.keys")

CHECK_SECONDS = 1.0
USED_WRITE_SECONDS = 5.0  # how often the last-used times reach the database


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key_id: str
    account_id: int
    plan: Plan


Revoked = Callable[[set[str]], None]


class KeyTable:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: MemoryBroker,
        check_seconds: float = CHECK_SECONDS,
        lookups_per_second: int = 20,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.check_seconds = check_seconds
        self.lookups_per_second = lookups_per_second
        self.by_hash: dict[str, KeyEntry] = {}
        self.hash_of: dict[str, str] = {}  # key id → hash
        self.fingerprint: tuple[object, ...] = ()
        self.reloads = 0
        self._revoked: list[Revoked] = []
        self._lookups = (0.0, 0)  # (second, lookups in it)
        self._used: dict[str, float] = {}  # key id → Unix time it was last used, not yet written
        self._used_written = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reload()
        self.broker.watch(self.apply)
        self._task = asyncio.create_task(self._keep_current(), name="pricegraph: key table")

    async def stop(self) -> None:
        self.broker.unwatch(self.apply)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.write_used()
        except Exception:
            log.warning("could not write when the API keys were last used", exc_info=True)

    def on_revoked(self, callback: Revoked) -> None:
        self._revoked.append(callback)

    async def find(self, secret_hash: str) -> KeyEntry | None:
        """The live key with this hash: from memory, or for a key not heard of yet, from the database."""
        entry = self.by_hash.get(secret_hash)
        if entry is not None:
            self._used[entry.key_id] = time.time()
            return entry
        if not self._may_look_up():
            return None
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    select(ApiKey.id, ApiKey.account_id, Account.plan)
                    .join(Account, Account.id == ApiKey.account_id)
                    .where(ApiKey.secret_hash == secret_hash, ApiKey.revoked_at.is_(None))
                )
            ).one_or_none()
        if row is None:
            return None
        entry = KeyEntry(row.id, row.account_id, Plan(row.plan))
        self._put(secret_hash, entry)
        self._used[entry.key_id] = time.time()
        return entry

    async def write_used(self) -> None:
        """One UPDATE for every key used since the last write; a time only ever moves forward."""
        used, self._used = self._used, {}
        self._used_written = time.monotonic()
        if not used:
            return
        rows = [{"key_id": key_id, "at": datetime.fromtimestamp(at, UTC)} for key_id, at in used.items()]
        try:
            async with self.sessionmaker() as session, session.begin():
                await session.execute(
                    update(API_KEYS)
                    .where(
                        API_KEYS.c.id == bindparam("key_id"),
                        or_(API_KEYS.c.last_used_at.is_(None), API_KEYS.c.last_used_at < bindparam("at")),
                    )
                    .values(last_used_at=bindparam("at")),
                    rows,
                )
        except Exception:
            for key_id, at in used.items():  # kept for the next write
                self._used[key_id] = max(at, self._used.get(key_id, at))
            raise

    def _may_look_up(self) -> bool:
        second = float(int(time.monotonic()))
        start, count = self._lookups
        if start != second:
            start, count = second, 0
        if count >= self.lookups_per_second:
            return False
        self._lookups = (start, count + 1)
        return True

    def _put(self, secret_hash: str, entry: KeyEntry) -> None:
        self.by_hash[secret_hash] = entry
        self.hash_of[entry.key_id] = secret_hash

    def apply(self, events: Sequence[Event]) -> None:
        revoked: set[str] = set()
        for event in events:
            if not isinstance(event, KeyChanged):
                continue
            if event.key_id is None:  # the account's plan changed: every key of it
                plan = Plan(event.plan)
                for secret_hash, entry in list(self.by_hash.items()):
                    if entry.account_id == event.account_id:
                        self.by_hash[secret_hash] = KeyEntry(entry.key_id, entry.account_id, plan)
            elif event.revoked:
                known = self.hash_of.pop(event.key_id, None) or event.secret_hash
                if known is not None:
                    self.by_hash.pop(known, None)
                revoked.add(event.key_id)
            elif event.secret_hash is not None:
                self._put(event.secret_hash, KeyEntry(event.key_id, event.account_id, Plan(event.plan)))
        if revoked:
            self._announce(revoked)

    def _announce(self, revoked: set[str]) -> None:
        for callback in list(self._revoked):
            try:
                callback(revoked)
            except Exception:
                log.exception("a revocation callback failed")

    async def reload(self) -> None:
        async with self.sessionmaker() as session:
            fingerprint = await read_fingerprint(session)
            rows = (
                await session.execute(
                    select(ApiKey.id, ApiKey.secret_hash, ApiKey.account_id, Account.plan)
                    .join(Account, Account.id == ApiKey.account_id)
                    .where(ApiKey.revoked_at.is_(None))
                )
            ).all()
        before = set(self.hash_of)
        self.by_hash = {r.secret_hash: KeyEntry(r.id, r.account_id, Plan(r.plan)) for r in rows}
        self.hash_of = {entry.key_id: digest for digest, entry in self.by_hash.items()}
        self.fingerprint = fingerprint
        self.reloads += 1
        gone = before - set(self.hash_of)
        if gone:
            self._announce(gone)

    async def _keep_current(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                async with self.sessionmaker() as session:
                    found = await read_fingerprint(session)
                if found != self.fingerprint:
                    await self.reload()
                if time.monotonic() - self._used_written >= USED_WRITE_SECONDS:
                    await self.write_used()
            except Exception:  # the database is away: keep the keys we have, try again
                log.warning("could not refresh the API keys", exc_info=True)


async def read_fingerprint(session: AsyncSession) -> tuple[object, ...]:
    keys = (
        await session.execute(
            select(
                func.count(), func.count(ApiKey.revoked_at), func.max(ApiKey.created_at), func.max(ApiKey.revoked_at)
            ).select_from(ApiKey)
        )
    ).one()
    plans = (await session.execute(select(Account.plan, func.count()).group_by(Account.plan))).all()
    return (*keys, tuple(sorted((str(plan), count) for plan, count in plans)))
