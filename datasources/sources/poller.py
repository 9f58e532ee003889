"""Poll price sources inside the server: one transaction per poll, events published with it.

A poll diffs the source's snapshot against current offers and writes, in one transaction: a tick for
every new offer and changed price; `unavailable` for offers this source last confirmed that it no
longer lists (and `live` again when they return); `stale` for offers this source has not confirmed
for `stale_after` seconds. A source that fails or answers garbage changes no price: its error is
logged and recorded in `price_sources` (the staleness sweep still runs, so offers nobody confirms
turn stale rather than look current).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources.catalog.entries import OfferEntry
from datasources.catalog.ingest import apply_offers
from datasources.db.models import Model, Offer, OfferStatus, Provider
from datasources.events import Broker, Event, StatusChanged
from datasources.notices import announce
from datasources.sources.base import Source, SourceError, raise_if_cancelled
from datasources.sources.leader import Leader, LocalLeader
from datasources.sources.replay import Replay
from datasources.sources.status import record_error, record_ok, register

log = logging.getLogger("pricegraph.sources")
CHUNK = 500


@dataclass
class PollReport:
    source: str
    at: datetime
    error: str | None = None
    listed: int = 0
    created: int = 0
    changed: int = 0
    unavailable: int = 0
    live_again: int = 0
    stale: int = 0
    events: list[Event] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


async def poll_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    broker: Broker,
    source: Source,
    client: httpx.AsyncClient,
    now: datetime | None = None,
    write_lock: asyncio.Lock | None = None,
) -> PollReport:
    """Fetch one snapshot and apply it; never raises for a failing source (the report says why).

    `write_lock` serialises the writing transactions of one process's pollers (SQLite allows one
    writer, and a read transaction that a concurrent commit overtook cannot upgrade to a write).
    """
    write_lock = write_lock or asyncio.Lock()
    now = now or datetime.now(UTC)
    report = PollReport(source.name, now)
    try:
        async with asyncio.timeout(source.timeout):
            entries = await source.fetch(client)
    except SourceError as exc:
        report.error = str(exc)
    except TimeoutError:
        report.error = f"timed out after {source.timeout:g} s"
    except Exception as exc:  # a broken adapter is reported like a broken source
        raise_if_cancelled()
        log.exception("price source %s: fetch failed unexpectedly", source.name)
        report.error = f"{type(exc).__name__}: {exc}"
    else:
        try:
            async with write_lock:
                await _apply_snapshot(sessionmaker, broker, source, entries, report)
            log.info(
                "price source %s: %d offers, %d new, %d changed, %d unavailable, %d back, %d stale",
                source.name,
                report.listed,
                report.created,
                report.changed,
                report.unavailable,
                report.live_again,
                report.stale,
            )
            return report
        except Exception as exc:  # rolled back; reported below
            raise_if_cancelled()
            log.exception("price source %s: applying the snapshot failed", source.name)
            report = PollReport(source.name, now, error=f"{type(exc).__name__}: {exc}")
    log.warning("price source %s failed: %s", source.name, report.error)
    try:
        async with write_lock, sessionmaker() as session, session.begin():
            assert report.error is not None
            await record_error(session, source.name, now, report.error)
            stale = await mark_stale(session, source.name, now - timedelta(seconds=source.stale_after), now)
            await announce(session, stale, broker)
        report.stale, report.events = len(stale), list(stale)
    except Exception:
        raise_if_cancelled()
        log.exception("price source %s: cannot record the failure", source.name)
    return report


async def _apply_snapshot(
    sessionmaker: async_sessionmaker[AsyncSession],
    broker: Broker,
    source: Source,
    entries: list[OfferEntry],
    report: PollReport,
) -> None:
    now = report.at
    async with sessionmaker() as session, session.begin():
        result = await apply_offers(session, entries, source=source.name, observed_at=now, confirm=True)
        listed = {(e.provider, e.model.slug, e.variant) for e in entries}
        gone = await mark_unavailable(session, source.name, listed, now)
        stale = await mark_stale(session, source.name, now - timedelta(seconds=source.stale_after), now)
        await record_ok(session, source.name, now, len(listed))
        events: list[Event] = [*result.ticks, *result.status_changes, *gone, *stale]
        await announce(session, events, broker)
    report.listed, report.created = len(listed), result.offers_created
    report.changed = sum(1 for t in result.ticks if t.previous_input_per_1m is not None)
    report.unavailable, report.stale = len(gone), len(stale)
    report.live_again = len(result.status_changes)
    report.events = events


async def _owned(session: AsyncSession, source: str, *conditions: ColumnElement[bool]) -> list[tuple[Offer, str, str]]:
    rows = await session.execute(
        select(Offer, Provider.slug, Model.slug)
        .join(Provider, Offer.provider_id == Provider.id)
        .join(Model, Offer.model_id == Model.id)
        .where(Offer.source == source, *conditions)
        .order_by(Offer.id)
    )
    return [(offer, provider, model) for offer, provider, model in rows]


async def _set_status(
    session: AsyncSession, rows: list[tuple[Offer, str, str]], status: OfferStatus, at: datetime
) -> list[StatusChanged]:
    events = [
        StatusChanged(offer.id, provider, model, offer.variant, status.value, OfferStatus(offer.status).value, at)
        for offer, provider, model in rows
    ]
    ids = [event.offer_id for event in events]
    for start in range(0, len(ids), CHUNK):
        await session.execute(update(Offer).where(Offer.id.in_(ids[start : start + CHUNK])).values(status=status))
    return events


async def mark_unavailable(
    session: AsyncSession, source: str, listed: set[tuple[str, str, str]], now: datetime
) -> list[StatusChanged]:
    """Offers this source last confirmed that its snapshot no longer lists."""
    rows = await _owned(session, source, Offer.status != OfferStatus.UNAVAILABLE)
    gone = [(o, p, m) for o, p, m in rows if (p, m, o.variant) not in listed]
    return await _set_status(session, gone, OfferStatus.UNAVAILABLE, now)


async def mark_stale(session: AsyncSession, source: str, cutoff: datetime, now: datetime) -> list[StatusChanged]:
    """Live offers this source last confirmed before `cutoff`."""
    rows = await _owned(session, source, Offer.status == OfferStatus.LIVE, Offer.confirmed_at < cutoff)
    return await _set_status(session, rows, OfferStatus.STALE, now)


class Pollers:
    """One task per source while this process is the leader; `start` and `stop` from the lifespan."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: Broker,
        client: httpx.AsyncClient,
        sources: Sequence[Source | Replay],
        leader: Leader | None = None,
        retry: float = 5.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.client = client
        self.sources = list(sources)
        self.leader = leader or LocalLeader()
        self.retry = retry
        self.polling = False
        self.last: dict[str, PollReport] = {}
        self.last_ok: dict[str, datetime] = {}  # each source's last successful poll
        self.write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if not self.sources or self._task is not None:
            return
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"price sources need distinct names: {', '.join(names)}")
        async with self.sessionmaker() as session, session.begin():
            await register(session, names)
        self._task = asyncio.create_task(self._lead(), name="pricegraph: price pollers")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await _cancelled(task)

    async def _lead(self) -> None:
        while True:
            raise_if_cancelled()
            try:
                leading = await self.leader.acquire()
            except Exception:
                raise_if_cancelled()
                log.exception("cannot try the poll lock")
                leading = False
            if not leading:
                await asyncio.sleep(self.retry)
                continue
            log.info("polling %s", ", ".join(s.name for s in self.sources))
            tasks = [asyncio.create_task(self._run(s), name=f"pricegraph: poll {s.name}") for s in self.sources]
            self.polling = True
            try:
                await self.leader.wait_lost()
                log.warning("lost the poll lock; polling stopped until it is taken again")
            finally:
                self.polling = False
                for task in tasks:
                    await _cancelled(task)
                await self.leader.release()
            await asyncio.sleep(self.retry)

    async def _run(self, source: Source | Replay) -> None:
        if isinstance(source, Replay):
            await source.run(self.sessionmaker, self.broker, self.write_lock)
            return
        while True:
            raise_if_cancelled()  # a cancellation a driver swallowed mid-poll still stops the loop
            try:
                report = self.last[source.name] = await poll_once(
                    self.sessionmaker, self.broker, source, self.client, write_lock=self.write_lock
                )
                if report.ok:
                    self.last_ok[source.name] = report.at
            except Exception:  # poll_once reports failures; this guards the loop itself
                raise_if_cancelled()
                log.exception("price source %s: poll failed", source.name)
            await asyncio.sleep(source.interval)


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for its end, cancelling again while it runs on (a database driver may
    swallow a cancellation that arrives in the middle of a statement)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("%s ended with %r", task.get_name(), error)
