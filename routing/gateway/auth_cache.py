"""API keys checked against an in-memory cache of their hashes, so the hot path rarely reads the database.

An entry lives `ttl` seconds (2 s by default): a key revoked by another process is refused within that.
A key revoked through this process is refused on its very next request: any committed session that
updated `api_keys` (revokeApiKey, `keys revoke`, a plan change through the same tables) clears the
caches of this process.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session

from datasources.accounts import hash_secret
from datasources.db.models import Account, ApiKey
from datasources.errors import Unauthenticated
from routing.auth import Principal, authenticate, bearer_token

_CACHES: weakref.WeakSet[KeyCache] = weakref.WeakSet()
_FLAG = "pricegraph_api_keys_changed"


class KeyCache:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: float = 2.0,
                 max_entries: int = 100_000, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.sessionmaker = sessionmaker
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.entries: dict[str, tuple[float, Principal | None]] = {}  # hash → (expires, principal or refused)
        self.generation = 0
        _watch_sessions()
        _CACHES.add(self)

    def clear(self) -> None:
        self.entries.clear()
        self.generation += 1

    async def principal(self, authorization: str | None, client_ip: str) -> Principal:
        token = bearer_token(authorization)
        if token is None:
            return await authenticate(self.sessionmaker, None, client_ip)
        digest = hash_secret(token)
        now = self.clock()
        hit = self.entries.get(digest)
        if hit is not None and hit[0] > now:
            if hit[1] is None:
                raise Unauthenticated("invalid or revoked API key")
            return hit[1] if hit[1].client_ip == client_ip else _with_ip(hit[1], client_ip)
        generation = self.generation
        try:
            principal = await authenticate(self.sessionmaker, authorization, client_ip)
        except Unauthenticated:
            self._store(digest, None, generation)
            raise
        self._store(digest, principal, generation)
        return principal

    def _store(self, digest: str, principal: Principal | None, generation: int) -> None:
        if generation != self.generation:  # a revocation committed while we read: do not cache the old answer
            return
        if len(self.entries) >= self.max_entries:
            now = self.clock()
            self.entries = {k: v for k, v in self.entries.items() if v[0] > now}
            if len(self.entries) >= self.max_entries:
                self.entries.clear()
        self.entries[digest] = (self.clock() + self.ttl, principal)


def _with_ip(principal: Principal, client_ip: str) -> Principal:
    from dataclasses import replace

    return replace(principal, client_ip=client_ip)


def clear_all() -> None:
    for cache in list(_CACHES):
        cache.clear()


_watching = False


def _changes_principals(statement: Any, delete: bool) -> bool:
    """A key revoked or deleted, or an account's plan changed (holds and charges change neither)."""
    table = getattr(getattr(statement, "table", None), "name", None)
    if table == ApiKey.__table__.name:
        return True
    if table == Account.__table__.name:
        values = getattr(statement, "_values", None) or {}
        return delete or any(getattr(column, "key", column) == "plan" for column in values)
    return False


def _watch_sessions() -> None:
    global _watching  # noqa: PLW0603 - one set of listeners per process, installed once
    if _watching:
        return
    _watching = True

    @event.listens_for(Session, "do_orm_execute")
    def _executed(state: ORMExecuteState) -> None:
        if (state.is_update or state.is_delete) and _changes_principals(state.statement, state.is_delete):
            state.session.info[_FLAG] = True
            clear_all()  # now, and again once committed

    @event.listens_for(Session, "after_commit")
    def _committed(session: Session) -> None:
        if session.info.pop(_FLAG, False):
            clear_all()

    @event.listens_for(Session, "after_soft_rollback")
    def _rolled_back(session: Session, _previous: Any) -> None:
        session.info.pop(_FLAG, None)
