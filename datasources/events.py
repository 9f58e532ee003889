"""Price events and the broker that fans them out after commit.

Publishers call `broker.publish(session, events)` inside the transaction that wrote the change; the
events reach listeners only if and after it commits, once each. On SQLite the broker is in-process;
on PostgreSQL it is `NOTIFY` in that same transaction and `LISTEN` in every server process, so a
listener on any process receives what any process (or the command line) committed. With BROKER_URL
set, processes exchange events through NATS instead, on any database, and every tick is also appended
to a JetStream stream (see datasources/nats.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.money import blended, percent_change
from datasources.pricing import NO_DIMENSIONS, Dimensions, Price, PriceKind, dimensions_from_dict, dimensions_to_dict

if TYPE_CHECKING:
    from datasources.nats import NatsConfig

log = logging.getLogger("pricegraph.events")

CHANNEL = "pricegraph_events"
NOTIFY_LIMIT = 7000  # bytes per NOTIFY payload; PostgreSQL's own limit is 8000
_PENDING = "pricegraph_pending_events"


@dataclass(frozen=True)
class PriceChanged:
    """A committed price tick: a new offer (no previous price) or a changed price."""

    offer_id: int
    provider: str
    model: str
    variant: str
    input_per_1m: Decimal
    output_per_1m: Decimal
    previous_input_per_1m: Decimal | None
    previous_output_per_1m: Decimal | None
    observed_at: datetime
    status: str = "live"
    dimensions: Dimensions = NO_DIMENSIONS  # the price's other dimensions (cache, reasoning, fees, tiers)

    @property
    def price(self) -> Price:
        return Price(self.input_per_1m, self.output_per_1m, self.dimensions)

    @property
    def price_kind(self) -> PriceKind:
        return self.price.kind

    @property
    def blended_per_1m(self) -> Decimal:
        return blended(self.input_per_1m, self.output_per_1m)

    @property
    def previous_blended_per_1m(self) -> Decimal | None:
        if self.previous_input_per_1m is None or self.previous_output_per_1m is None:
            return None
        return blended(self.previous_input_per_1m, self.previous_output_per_1m)

    @property
    def change_pct(self) -> Decimal | None:
        previous = self.previous_blended_per_1m
        return None if previous is None else percent_change(self.blended_per_1m, previous)


@dataclass(frozen=True)
class StatusChanged:
    """An offer moved between live, stale and unavailable."""

    offer_id: int
    provider: str
    model: str
    variant: str
    status: str
    previous_status: str
    changed_at: datetime


@dataclass(frozen=True)
class UsageRecorded:
    """A metered request: one usage record, for the account's live spend views."""

    usage_id: int
    account_id: int
    api_key_id: str | None
    model: str
    provider: str | None
    endpoint: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    status: int
    estimated: bool
    created_at: datetime
    cached_tokens: int = 0  # of prompt_tokens, read from the provider's cache
    reasoning_tokens: int = 0  # of completion_tokens


@dataclass(frozen=True)
class BalanceChanged:
    """An account's balance moved: one ledger row."""

    account_id: int
    transaction_id: int | None
    type: str
    amount: Decimal
    balance: Decimal
    created_at: datetime


@dataclass(frozen=True)
class KeyChanged:
    """An API key created (with its hash, never its secret) or revoked, or (no key) an account's plan
    changed: every process updates who its keys stand for."""

    account_id: int
    key_id: str | None
    plan: str
    secret_hash: str | None = None
    revoked: bool = False


@dataclass(frozen=True)
class BudgetChanged:
    """An account's budgets were set or removed: every process reads them again."""

    account_id: int


@dataclass(frozen=True)
class AlertRaised:
    """A budget threshold (`budget.threshold`) or the low-balance line (`balance.low`) crossed; raised once
    per period by the statement that records the crossing."""

    account_id: int
    type: str
    raised_at: datetime
    scope: str = "account"  # "account", or the key id of a key's budget
    percent: int | None = None
    spent: Decimal | None = None
    cap: Decimal | None = None
    period: str | None = None
    balance: Decimal | None = None
    threshold: Decimal | None = None


Event = PriceChanged | StatusChanged | UsageRecorded | BalanceChanged | KeyChanged | BudgetChanged | AlertRaised
KINDS: dict[str, type[Event]] = {
    "price": PriceChanged,
    "status": StatusChanged,
    "usage": UsageRecorded,
    "balance": BalanceChanged,
    "key": KeyChanged,
    "budget": BudgetChanged,
    "alert": AlertRaised,
}
_DECIMALS = frozenset({"cost", "amount", "balance", "spent", "cap", "threshold"})
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}


def encode(event: Event) -> dict[str, Any]:
    kind = _KIND_OF[type(event)]
    values = {
        f.name: _encoded(getattr(event, f.name)) for f in fields(event) if getattr(event, f.name) != NO_DIMENSIONS
    }
    return {"kind": kind, **values}


def _encoded(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Dimensions):
        return dimensions_to_dict(value)
    return value


def decode(data: dict[str, Any]) -> Event:
    cls = KINDS[data["kind"]]
    values: dict[str, Any] = {}
    for f in fields(cls):
        raw = data.get(f.name)
        if f.name == "dimensions":
            raw = dimensions_from_dict(raw) if raw else NO_DIMENSIONS
        elif raw is not None and (f.name.endswith("_per_1m") or f.name in _DECIMALS):
            raw = Decimal(raw)
        elif raw is not None and f.name.endswith("_at"):
            raw = datetime.fromisoformat(raw)
        values[f.name] = raw
    return cls(**values)


class SlowConsumer(Exception):
    """The listener fell further behind than its queue holds; it was cut off."""


class Listener:
    """One subscriber's bounded queue. Overflow ends the listener, never slows the publisher."""

    def __init__(self, broker: MemoryBroker, accepts: Callable[[Event], bool], maxsize: int) -> None:
        self.broker = broker
        self.accepts = accepts
        self.maxsize = maxsize
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()  # bounded by `offer`, not by the queue
        self.overflowed = False
        self.on_overflow: Callable[[], None] | None = None

    def offer(self, event: Event) -> None:
        if self.overflowed or not self.accepts(event):
            return
        if self.queue.qsize() >= self.maxsize:
            self.overflowed = True
            self.broker.remove(self)
            self.queue.put_nowait(None)  # wakes the reader, who then finds `overflowed`
            if self.on_overflow is not None:
                self.on_overflow()
            return
        self.queue.put_nowait(event)

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Event:
        item = await self.queue.get()
        if item is None or self.overflowed:
            raise SlowConsumer(f"fell more than {self.maxsize} events behind")
        return item

    def close(self) -> None:
        self.broker.remove(self)


class Broker(Protocol):
    async def publish(self, session: AsyncSession, events: Sequence[Event]) -> None: ...
    def listen(self, accepts: Callable[[Event], bool], maxsize: int = ...) -> Listener: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class MemoryBroker:
    """In-process fan-out: events are handed to listeners when the publishing session commits."""

    def __init__(self) -> None:
        self.listeners: set[Listener] = set()
        self.watchers: list[Callable[[Sequence[Event]], None]] = []
        self.published = 0
        self.last_received: float | None = None  # time.monotonic() of the last batch dispatched here

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.listeners.clear()

    def listen(self, accepts: Callable[[Event], bool], maxsize: int = 1000) -> Listener:
        listener = Listener(self, accepts, maxsize)
        self.listeners.add(listener)
        return listener

    def remove(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    def watch(self, watcher: Callable[[Sequence[Event]], None]) -> None:
        """Call `watcher` with every committed batch of events, as it arrives, before any listener."""
        self.watchers.append(watcher)

    def unwatch(self, watcher: Callable[[Sequence[Event]], None]) -> None:
        with contextlib.suppress(ValueError):
            self.watchers.remove(watcher)

    def dispatch(self, events: Sequence[Event]) -> None:
        if events:
            self.last_received = time.monotonic()
        for watcher in list(self.watchers):
            try:
                watcher(events)
            except Exception:
                log.exception("an event watcher failed")
        for event in events:
            self.published += 1
            for listener in list(self.listeners):
                listener.offer(event)

    async def publish(self, session: AsyncSession, events: Sequence[Event]) -> None:
        if events:
            self._after_commit(session, list(events), self.dispatch)

    @staticmethod
    def _after_commit(session: AsyncSession, events: list[Event], deliver: Callable[[Sequence[Event]], None]) -> None:
        pending: list[Event] | None = session.info.get(_PENDING)
        if pending is None:
            pending = session.info[_PENDING] = []
            sync = session.sync_session

            def committed(_session: Any) -> None:
                deliver(session.info.pop(_PENDING, []))

            def rolled_back(_session: Any, _previous: Any = None) -> None:
                session.info.pop(_PENDING, None)
                with contextlib.suppress(Exception):
                    sa_event.remove(sync, "after_commit", committed)

            sa_event.listen(sync, "after_commit", committed, once=True)
            sa_event.listen(sync, "after_soft_rollback", rolled_back, once=True)
        pending.extend(events)


class PostgresBroker(MemoryBroker):
    """NOTIFY in the publishing transaction; one LISTEN connection per process feeds local listeners."""

    def __init__(self, url: URL, reconnect_delay: float = 1.0) -> None:
        super().__init__()
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.reconnect_delay = reconnect_delay
        self.connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def publish(self, session: AsyncSession, events: Sequence[Event]) -> None:
        for payload in _payloads(events):
            await session.execute(
                text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
            )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="pricegraph: listen")
        await asyncio.wait_for(self._ready.wait(), timeout=30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.connection is not None and not self.connection.is_closed():
            await self.connection.close()
        await super().stop()

    def _received(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            events = [decode(item) for item in json.loads(payload)]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event payload on %s", CHANNEL)
            return
        self.dispatch(events)

    async def _listen_forever(self) -> None:
        while True:
            try:
                self.connection = await asyncpg.connect(self.dsn)
                lost = asyncio.Event()
                self.connection.add_termination_listener(lambda _c: lost.set())
                await self.connection.add_listener(CHANNEL, self._received)
                self._ready.set()
                await lost.wait()
                log.warning("the LISTEN connection closed; reconnecting")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot LISTEN on %s (%s); retrying", CHANNEL, exc)
            await asyncio.sleep(self.reconnect_delay)


def _payloads(events: Sequence[Event], limit: int = NOTIFY_LIMIT) -> list[str]:
    """JSON arrays of encoded events, each at most `limit` bytes (one NOTIFY) unless one event is larger."""
    chunks: list[str] = []
    batch: list[str] = []
    size = 2
    for event in events:
        item = json.dumps(encode(event), separators=(",", ":"))
        if batch and size + len(item) + 1 > limit:
            chunks.append("[" + ",".join(batch) + "]")
            batch, size = [], 2
        batch.append(item)
        size += len(item) + 1
    if batch:
        chunks.append("[" + ",".join(batch) + "]")
    return chunks


def create_broker(url: URL, nats: NatsConfig | None = None) -> MemoryBroker:
    """The broker for a database: NATS when configured (BROKER_URL), whatever the database; else
    LISTEN/NOTIFY on PostgreSQL, in-process on SQLite."""
    if nats is not None:
        from datasources.nats import NatsBroker

        return NatsBroker(nats, url)
    return PostgresBroker(url) if url.get_backend_name() == "postgresql" else MemoryBroker()
