"""Polls against a real HTTP server on 127.0.0.1 serving real LiteLLM snapshots that change between polls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.catalog.ingest import apply_offers
from datasources.db.models import Offer, OfferStatus, PriceSource, PriceTick
from datasources.events import Event, MemoryBroker, PostgresBroker, PriceChanged, StatusChanged
from datasources.sources.leader import PostgresLeader
from datasources.sources.litellm import LiteLLMPrices
from datasources.sources.poller import Pollers, poll_once
from tests.conftest import await_until
from tests.test_sources import LITELLM, T0, Upstream, drain, offers_by_key, serve_upstream

# Real LiteLLM entries (tests/fixtures holds them unchanged): closed models, open models at several hosts,
# and entries the importer skips.
KEYS = [
    "gpt-4o",
    "gpt-4o-mini",
    "o3",
    "claude-sonnet-4-5",
    "deepseek/deepseek-chat",
    "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "mistral/mistral-large-latest",
    "gemini/gemini-2.5-flash",
    "fireworks_ai/accounts/fireworks/models/deepseek-r1",
    "text-embedding-3-small",
    "sample_spec",
]
O3 = ("openai", "o3", "")
GPT4O = ("openai", "gpt-4o", "")
STALE_AFTER = 900.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with serve_upstream() as served:
        yield served


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def snapshot() -> dict[str, dict]:  # type: ignore[type-arg]
    data = json.loads(LITELLM.read_text())
    return {key: standard(data[key]) for key in KEYS}


def standard(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry at its standard tier only: one offer (service tiers are the parsers' tests)."""
    return {k: v for k, v in entry.items() if not k.endswith(("_batches", "_priority", "_flex"))}


class Feed:
    """One served LiteLLM snapshot and a source polling it; `publish()` re-serves the edited snapshot."""

    def __init__(self, upstream: Upstream, snapshot: dict, name: str) -> None:  # type: ignore[type-arg]
        self.upstream, self.snapshot, self.path = upstream, snapshot, f"/feeds/{name}.json"
        self.source = LiteLLMPrices(upstream.serve(self.path, snapshot), stale_after=STALE_AFTER, timeout=1.0)

    def publish(self) -> None:
        self.upstream.serve(self.path, self.snapshot)


@pytest.fixture
def feed(upstream, snapshot, request) -> Feed:  # type: ignore[no-untyped-def]
    return Feed(upstream, snapshot, request.node.name.replace("[", "-").rstrip("]"))


async def count(sessions, table) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(table))).scalar_one()


async def status_row(sessions) -> PriceSource:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return (await session.execute(select(PriceSource))).scalar_one()


async def test_first_poll_creates_offers_and_ticks(feed, client, sessions) -> None:  # type: ignore[no-untyped-def]
    broker = MemoryBroker()
    listener = broker.listen(lambda e: True)
    report = await poll_once(sessions, broker, feed.source, client, now=T0)
    assert report.ok and report.created == report.listed == 9
    assert await count(sessions, PriceTick) == 9
    events = drain(listener)
    assert len(events) == 9 and all(isinstance(e, PriceChanged) and e.previous_input_per_1m is None for e in events)
    offers = await offers_by_key(sessions)
    assert (offers[O3].input_per_1m, offers[O3].output_per_1m, offers[O3].source) == (Decimal(2), Decimal(8), "litellm")
    row = await status_row(sessions)
    assert (row.name, row.last_ok_at, row.last_poll_at, row.offers, row.last_error) == ("litellm", T0, T0, 9, None)


async def test_an_unchanged_poll_only_confirms(feed, client, sessions) -> None:  # type: ignore[no-untyped-def]
    await poll_once(sessions, MemoryBroker(), feed.source, client, now=T0)
    before = await offers_by_key(sessions)
    broker = MemoryBroker()
    listener = broker.listen(lambda e: True)
    t1 = T0 + timedelta(minutes=5)
    report = await poll_once(sessions, broker, feed.source, client, now=t1)
    assert report.ok and (report.created, report.changed, report.unavailable, report.stale) == (0, 0, 0, 0)
    assert drain(listener) == []
    assert await count(sessions, PriceTick) == 9
    after = await offers_by_key(sessions)
    for key, offer in after.items():
        old = before[key]
        assert offer.confirmed_at == t1 and old.confirmed_at == T0
        assert (offer.input_per_1m, offer.output_per_1m, offer.updated_at, offer.status) == (
            old.input_per_1m,
            old.output_per_1m,
            old.updated_at,
            old.status,
        )


async def test_a_changed_price_is_one_tick_and_one_event(feed, client, sessions) -> None:  # type: ignore[no-untyped-def]
    await poll_once(sessions, MemoryBroker(), feed.source, client, now=T0)
    feed.snapshot["o3"] = {**feed.snapshot["o3"], "input_cost_per_token": 1.5e-06}
    feed.publish()
    broker = MemoryBroker()
    listener = broker.listen(lambda e: True)
    t1 = T0 + timedelta(minutes=5)
    report = await poll_once(sessions, broker, feed.source, client, now=t1)
    assert report.ok and report.changed == 1
    (event,) = drain(listener)
    assert isinstance(event, PriceChanged)
    assert (event.provider, event.model, event.variant, event.observed_at) == ("openai", "o3", "", t1)
    assert (event.input_per_1m, event.output_per_1m) == (Decimal("1.5"), Decimal(8))
    assert (event.previous_input_per_1m, event.previous_output_per_1m) == (Decimal(2), Decimal(8))
    async with sessions() as session:
        ticks = (
            await session.execute(
                select(PriceTick.input_per_1m, PriceTick.observed_at, PriceTick.source)
                .where(PriceTick.offer_id == event.offer_id)
                .order_by(PriceTick.id)
            )
        ).all()
    assert ticks == [(Decimal(2), T0, "litellm"), (Decimal("1.5"), t1, "litellm")]
    assert await count(sessions, PriceTick) == 10


async def test_a_removed_entry_is_unavailable_and_comes_back_live(feed, client, sessions) -> None:  # type: ignore[no-untyped-def]
    await poll_once(sessions, MemoryBroker(), feed.source, client, now=T0)
    broker = MemoryBroker()
    listener = broker.listen(lambda e: True)
    removed = feed.snapshot.pop("gpt-4o")
    feed.publish()
    t1 = T0 + timedelta(minutes=5)
    report = await poll_once(sessions, broker, feed.source, client, now=t1)
    assert report.ok and report.unavailable == 1 and report.listed == 8
    (event,) = drain(listener)
    assert isinstance(event, StatusChanged)
    assert (event.provider, event.model, event.status, event.previous_status, event.changed_at) == (
        "openai",
        "gpt-4o",
        "unavailable",
        "live",
        t1,
    )
    offers = await offers_by_key(sessions)
    assert offers[GPT4O].status == OfferStatus.UNAVAILABLE
    assert offers[GPT4O].input_per_1m == Decimal("2.5")  # the last price stays; only the status says so
    assert await count(sessions, PriceTick) == 9

    t2 = t1 + timedelta(minutes=5)
    await poll_once(sessions, broker, feed.source, client, now=t2 - timedelta(seconds=1))
    assert drain(listener) == []  # still gone: no repeated event
    feed.snapshot["gpt-4o"] = removed
    feed.publish()
    report = await poll_once(sessions, broker, feed.source, client, now=t2)
    assert report.ok and report.live_again == 1
    (event,) = drain(listener)
    assert isinstance(event, StatusChanged)
    assert (event.model, event.status, event.previous_status, event.changed_at) == ("gpt-4o", "live", "unavailable", t2)
    assert (await offers_by_key(sessions))[GPT4O].status == OfferStatus.LIVE
    assert await count(sessions, PriceTick) == 9  # same price: no tick


async def test_a_new_entry_is_a_new_offer(feed, client, sessions) -> None:  # type: ignore[no-untyped-def]
    await poll_once(sessions, MemoryBroker(), feed.source, client, now=T0)
    full = json.loads(LITELLM.read_text())
    feed.snapshot["gpt-4.1"] = standard(full["gpt-4.1"])
    feed.publish()
    broker = MemoryBroker()
    listener = broker.listen(lambda e: True)
    report = await poll_once(sessions, broker, feed.source, client, now=T0 + timedelta(minutes=5))
    assert report.ok and report.created == 1 and report.listed == 10
    (event,) = drain(listener)
    assert isinstance(event, PriceChanged) and event.previous_input_per_1m is None


async def test_offers_go_stale_without_confirmation(feed, client, sessions) -> None:  # type: ignore[no-untyped-def]
    async with sessions() as session, session.begin():  # an offer of another source is not ours to age
        (o3,) = [e for e in await feed.source.fetch(client) if e.source_key == "o3"]
        await apply_offers(session, [replace(o3, variant="eu")], source="admin", observed_at=T0 - timedelta(days=30))
    await poll_once(sessions, MemoryBroker(), feed.source, client, now=T0)
    feed.upstream.serve(feed.path, b"upstream down", status=503)
    broker = MemoryBroker()
    listener = broker.listen(lambda e: True)

    almost = T0 + timedelta(seconds=STALE_AFTER - 1)
    report = await poll_once(sessions, broker, feed.source, client, now=almost)
    assert not report.ok and report.stale == 0 and drain(listener) == []

    late = T0 + timedelta(seconds=STALE_AFTER + 1)
    report = await poll_once(sessions, broker, feed.source, client, now=late)
    assert not report.ok and report.stale == 9
    events = drain(listener)
    assert len(events) == 9 and all(
        isinstance(e, StatusChanged) and (e.status, e.previous_status, e.changed_at) == ("stale", "live", late)
        for e in events
    )
    offers = await offers_by_key(sessions)
    assert {o.status for k, o in offers.items() if k[2] != "eu"} == {OfferStatus.STALE}
    assert offers[("openai", "o3", "eu")].status == OfferStatus.LIVE
    assert await count(sessions, PriceTick) == 10  # prices untouched

    feed.publish()  # the source recovers: its offers are live again
    later = late + timedelta(minutes=5)
    report = await poll_once(sessions, broker, feed.source, client, now=later)
    assert report.ok and report.live_again == 9 and report.stale == 0
    assert {e.status for e in drain(listener)} == {"live"}
    row = await status_row(sessions)
    assert (row.last_ok_at, row.last_error_at) == (later, late) and "HTTP 503" in (row.last_error or "")


class Answer:
    def __init__(self, body: bytes, status: int = 200, delay: float = 0.0) -> None:
        self.body, self.status, self.delay = body, status, delay


BROKEN = {
    "broken JSON": lambda text: Answer(b'{"gpt-4o": {"litellm_provider": "openai",, }'),
    "truncated file": lambda text: Answer(text[: len(text) // 2]),
    "HTTP 500": lambda text: Answer(b"internal error", status=500),
    "timeout": lambda text: Answer(text, delay=2.5),
    "wrong format": lambda text: Answer(b'{"data": [1, 2, 3]}'),
    "not an object": lambda text: Answer(b"[]"),
    "bad price": lambda text: Answer(
        text.replace(b'"input_cost_per_token": 2e-06', b'"input_cost_per_token": "cheap"', 1)
    ),
    "empty snapshot": lambda text: Answer(b"{}"),
}
ERRORS = {
    "broken JSON": "invalid JSON",
    "truncated file": "invalid JSON",
    "HTTP 500": "HTTP 500",
    "timeout": "timed out after 1 s",
    "wrong format": "not an object",
    "not an object": "not a JSON object",
    "bad price": "not a number",
    "empty snapshot": "no offers",
}


@pytest.mark.parametrize("how", list(BROKEN))
async def test_a_failing_source_changes_nothing(feed, client, sessions, how) -> None:  # type: ignore[no-untyped-def]
    await poll_once(sessions, MemoryBroker(), feed.source, client, now=T0)
    async with sessions() as session:
        before = sorted(
            (o.id, o.input_per_1m, o.output_per_1m, o.status, o.updated_at, o.confirmed_at)
            for o in (await session.execute(select(Offer))).scalars()
        )
    text = json.dumps(feed.snapshot, indent=1).encode()
    if how == "bad price":
        assert b'"input_cost_per_token": 2e-06' in text
    answer = BROKEN[how](text)
    feed.upstream.serve(feed.path, answer.body, answer.status, answer.delay)
    broker = MemoryBroker()
    listener = broker.listen(lambda e: True)
    t1 = T0 + timedelta(minutes=5)
    report = await poll_once(sessions, broker, feed.source, client, now=t1)
    assert not report.ok and ERRORS[how] in (report.error or ""), report.error
    assert drain(listener) == []
    async with sessions() as session:
        after = sorted(
            (o.id, o.input_per_1m, o.output_per_1m, o.status, o.updated_at, o.confirmed_at)
            for o in (await session.execute(select(Offer))).scalars()
        )
    assert after == before
    assert await count(sessions, PriceTick) == 9
    row = await status_row(sessions)
    assert (row.last_ok_at, row.last_poll_at, row.last_error_at, row.offers) == (T0, t1, t1, 9)
    assert ERRORS[how] in (row.last_error or "")


class FailAfterPublish:
    """Publishes into the poll's transaction, then fails it (once): the transaction rolls back."""

    def __init__(self, inner: MemoryBroker) -> None:
        self.inner = inner
        self.failed = False

    async def publish(self, session: AsyncSession, events: Sequence[Event]) -> None:
        await self.inner.publish(session, events)
        if not self.failed:
            self.failed = True
            raise RuntimeError("the database went away")


async def test_events_arrive_only_after_commit(feed, client, sessions) -> None:  # type: ignore[no-untyped-def]
    broker = MemoryBroker()
    listener = broker.listen(lambda e: True)
    report = await poll_once(sessions, FailAfterPublish(broker), feed.source, client, now=T0)  # type: ignore[arg-type]
    assert not report.ok and report.error
    assert drain(listener) == []
    assert await count(sessions, Offer) == 0 and await count(sessions, PriceTick) == 0
    assert (await status_row(sessions)).last_ok_at is None

    report = await poll_once(sessions, broker, feed.source, client, now=T0 + timedelta(minutes=1))
    assert report.ok and len(drain(listener)) == 9

    # Published inside a transaction: nothing until it commits, then once.
    (o3,) = [e for e in await feed.source.fetch(client) if e.source_key == "o3"]
    async with sessions() as session:
        async with session.begin():
            result = await apply_offers(session, [replace(o3, input_per_1m=Decimal(1))], source="admin")
            await broker.publish(session, result.ticks)
            assert drain(listener) == []
        assert [e.input_per_1m for e in drain(listener)] == [Decimal(1)]
        async with session.begin():
            pass
    assert drain(listener) == []


async def test_pollers_poll_on_an_interval_and_stop(feed, client, sessions) -> None:  # type: ignore[no-untyped-def]
    feed.source.interval = 0.05
    pollers = Pollers(sessions, MemoryBroker(), client, [feed.source])
    await pollers.start()
    try:
        await await_until(lambda: feed.upstream.hits.get(feed.path, 0) >= 3, what="three polls")
        assert pollers.polling
    finally:
        await pollers.stop()
    hits = feed.upstream.hits[feed.path]
    await asyncio.sleep(0.2)
    assert feed.upstream.hits[feed.path] == hits and not pollers.polling
    assert pollers.last["litellm"].ok and await count(sessions, PriceTick) == 9


# ---- PostgreSQL: one poller per database, and LISTEN/NOTIFY of what a poll committed ---------------


@pytest.fixture
def pg_url(db_url: URL, backend: str) -> URL:
    if backend != "postgresql":
        pytest.skip("needs PostgreSQL (set TEST_DATABASE_URL): advisory-lock leader election and LISTEN/NOTIFY")
    return db_url


async def wait_until(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_only_one_process_polls_and_another_takes_over(pg_url, upstream, snapshot, client, sessions) -> None:  # type: ignore[no-untyped-def]
    feeds = [Feed(upstream, snapshot, f"leader-{pg_url.database}-{i}") for i in range(3)]
    instances = []
    for f in feeds[:2]:
        f.source.interval = 0.05
        instances.append(
            Pollers(
                sessions, MemoryBroker(), client, [f.source], leader=PostgresLeader(pg_url, heartbeat=0.5), retry=0.2
            )
        )
    first, second = instances
    try:
        await first.start()
        assert await wait_until(lambda: first.polling)
        await second.start()
        assert await wait_until(lambda: upstream.hits.get(feeds[0].path, 0) >= 3)
        assert not second.polling and upstream.hits.get(feeds[1].path, 0) == 0

        await first.stop()  # the lock goes with its connection; the other takes over within a retry
        assert await wait_until(lambda: second.polling, timeout=3)
        assert await wait_until(lambda: upstream.hits.get(feeds[1].path, 0) >= 1, timeout=3)
        assert not first.polling

        # When the leader's lock connection dies, it stops polling; a third instance takes over.
        feeds[2].source.interval = 0.05
        third = Pollers(
            sessions, MemoryBroker(), client, [feeds[2].source], leader=PostgresLeader(pg_url, heartbeat=0.5), retry=0.2
        )
        instances.append(third)
        await third.start()
        await asyncio.sleep(0.3)
        assert not third.polling
        leader = second.leader
        assert isinstance(leader, PostgresLeader) and leader.connection is not None
        pid = leader.connection.get_server_pid()
        admin = await asyncpg.connect(pg_url.set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        assert await wait_until(lambda: not second.polling, timeout=3)
        assert await wait_until(lambda: second.polling or third.polling, timeout=5)
        assert not (second.polling and third.polling)
    finally:
        for instance in instances:
            await instance.stop()


async def test_a_postgres_listener_receives_what_a_poll_committed(pg_url, feed, client, sessions) -> None:  # type: ignore[no-untyped-def]
    publisher, receiver = PostgresBroker(pg_url), PostgresBroker(pg_url)
    await receiver.start()
    listener = receiver.listen(lambda e: True)
    try:
        await poll_once(sessions, publisher, feed.source, client, now=T0)
        feed.snapshot["o3"] = {**feed.snapshot["o3"], "output_cost_per_token": 6e-06}
        feed.publish()
        await poll_once(sessions, publisher, feed.source, client, now=T0 + timedelta(minutes=5))
        received: list[Event] = []
        while len(received) < 10:
            received.append(await asyncio.wait_for(listener.__anext__(), timeout=5))
    finally:
        await receiver.stop()
    assert sum(1 for e in received if isinstance(e, PriceChanged) and e.previous_input_per_1m is None) == 9
    change = received[-1]
    assert isinstance(change, PriceChanged)
    assert (change.model, change.output_per_1m, change.previous_output_per_1m) == ("o3", Decimal(6), Decimal(8))
    assert change.observed_at == T0 + timedelta(minutes=5)
