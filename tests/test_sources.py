"""Price source adapters against the fixtures (and the full real files) served over HTTP on 127.0.0.1, the
replay, and the config."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datasources.catalog.litellm import parse_litellm_file
from datasources.catalog.openrouter import parse_openrouter_file
from datasources.db.models import Model, Offer, OfferStatus, PriceTick, Provider
from datasources.events import MemoryBroker, PriceChanged, StatusChanged
from datasources.sources.base import SourceError
from datasources.sources.config import SourceConfigError, SourcesConfig, load_sources
from datasources.sources.file import PriceFile
from datasources.sources.history_file import load_history
from datasources.sources.litellm import LiteLLMPrices
from datasources.sources.openrouter import OpenRouterEndpoints, OpenRouterModels
from datasources.sources.poller import poll_once
from datasources.sources.replay import Replay
from resolvers.sources import sources as sources_resolver
from schema.sources import PriceSource
from tests.conftest import FIXTURES, LiveServer, await_until, data_files

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


# ---- a real HTTP server whose answers the tests edit between polls --------------------------------


@dataclass
class Answer:
    body: bytes
    status: int = 200
    delay: float = 0.0


class Upstream:
    """A Starlette app on uvicorn (127.0.0.1) answering each path with what the test last set."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.hits: dict[str, int] = {}
        self.app = Starlette(routes=[Route("/{path:path}", self.handle)])
        self.url = ""

    async def handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        self.hits[path] = self.hits.get(path, 0) + 1
        answer = self.answers.get(path)
        if answer is None:
            return Response(b'{"error": "not found"}', 404, media_type="application/json")
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return Response(answer.body, answer.status, media_type="application/json")

    def serve(self, path: str, body: bytes | str | object, status: int = 200, delay: float = 0.0) -> str:
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.answers[path] = Answer(body, status, delay)
        return self.url + path


@contextmanager
def serve_upstream() -> Iterator[Upstream]:
    upstream = Upstream()
    with LiveServer(upstream.app) as server:
        upstream.url = server.url
        yield upstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with serve_upstream() as served:
        yield served


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def offers_by_key(sessions: async_sessionmaker[AsyncSession]) -> dict[tuple[str, str, str], Offer]:
    async with sessions() as session:
        rows = await session.execute(
            select(Offer, Provider.slug, Model.slug)
            .join(Provider, Offer.provider_id == Provider.id)
            .join(Model, Offer.model_id == Model.id)
        )
        return {(p, m, o.variant): o for o, p, m in rows}


def drain(listener) -> list:  # type: ignore[no-untyped-def]
    events = []
    while not listener.queue.empty():
        events.append(listener.queue.get_nowait())
    return events


# ---- the snapshot sources parse the files ---------------------------------------------------------

LITELLM = FIXTURES / "litellm_model_prices.json"
OR_MODELS = FIXTURES / "openrouter_models.json"
OR_ENDPOINTS = FIXTURES / "openrouter_endpoints_sample.jsonl"


@pytest.mark.parametrize("path", data_files("litellm_model_prices.json"))
async def test_litellm_url_source_applies_the_price_map(upstream, client, sessions, path) -> None:  # type: ignore[no-untyped-def]
    url = upstream.serve(f"/litellm/{path.parent.name}.json", path.read_bytes())
    source = LiteLLMPrices(url, timeout=30)
    expected = parse_litellm_file(path)
    fetched = await source.fetch(client)
    assert fetched == expected

    report = await poll_once(sessions, MemoryBroker(), source, client, now=T0)
    assert report.ok, report.error
    assert report.created == report.listed == len(expected)
    offers = await offers_by_key(sessions)
    o3 = offers[("openai", "o3", "")]
    assert (o3.input_per_1m, o3.output_per_1m, o3.source) == (Decimal(2), Decimal(8), "litellm")


@pytest.mark.parametrize("path", data_files("litellm_model_prices.json"))
async def test_litellm_source_reads_a_path(client, path) -> None:  # type: ignore[no-untyped-def]
    expected = parse_litellm_file(path)
    assert expected and await LiteLLMPrices(str(path)).fetch(client) == expected


FILE_FORMATS = {
    "litellm_model_prices.json": "litellm",
    "openrouter_models.json": "openrouter",
    "openrouter_endpoints_sample.jsonl": "openrouter",
}


@pytest.mark.parametrize(
    "fmt, path",
    [
        pytest.param(fmt, *file.values, id=f"{name}-{file.id}", marks=file.marks)
        for name, fmt in FILE_FORMATS.items()
        for file in data_files(name)
    ],
)
async def test_file_source_parses_the_files(client, fmt, path) -> None:  # type: ignore[no-untyped-def]
    expected = parse_litellm_file(path) if fmt == "litellm" else parse_openrouter_file(path)
    fetched = await PriceFile(path, fmt).fetch(client)
    assert fetched == expected and len({o.provider for o in fetched}) >= 5


async def test_file_source_reports_a_missing_file(client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceError, match="cannot read"):
        await PriceFile(tmp_path / "nope.json").fetch(client)


@pytest.mark.parametrize("path", data_files("openrouter_models.json"))
async def test_openrouter_models_source(upstream, client, path) -> None:  # type: ignore[no-untyped-def]
    url = upstream.serve(f"/{path.parent.name}/api/v1/models", path.read_bytes())
    fetched = await OpenRouterModels(url).fetch(client)
    assert fetched == parse_openrouter_file(path)
    assert {o.provider for o in fetched} >= {"openai", "anthropic", "google"}


def endpoint_records(path: Path) -> list[dict]:  # type: ignore[type-arg]
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("path", data_files("openrouter_endpoints_sample.jsonl"))
async def test_openrouter_endpoints_source_frontend_records(upstream, client, path) -> None:  # type: ignore[no-untyped-def]
    expected = parse_openrouter_file(path)
    where = path.parent.name
    one = upstream.serve(f"/{where}/endpoints/all.jsonl", path.read_bytes())  # JSON lines at one URL
    assert await OpenRouterEndpoints([one]).fetch(client) == expected
    records = endpoint_records(path)
    urls = [upstream.serve(f"/{where}/endpoints/{i}.json", record) for i, record in enumerate(records)]
    assert await OpenRouterEndpoints(urls).fetch(client) == expected  # one record per URL
    assert len({o.model.slug for o in expected}) >= 3


@pytest.mark.parametrize("path", data_files("openrouter_endpoints_sample.jsonl"))
async def test_openrouter_endpoints_source_public_shape(upstream, client, path) -> None:  # type: ignore[no-untyped-def]
    """`/api/v1/models/{author}/{slug}/endpoints` names hosts by `tag`; the offers are the same."""
    records = [r for r in endpoint_records(path) if r.get("variant") in (None, "", "standard")]
    where = path.parent.name
    urls = []
    for i, record in enumerate(records):
        public = {
            "data": {
                "id": record["model_slug"],
                "name": record["model_slug"],
                "architecture": {"input_modalities": ["text", "image"]},
                "endpoints": [
                    {
                        "name": e["name"],
                        "context_length": e["context_length"],
                        "pricing": e["pricing"],
                        "provider_name": e["provider_name"],
                        "tag": e["provider_slug"],
                        "quantization": e.get("quantization"),
                        "max_completion_tokens": e.get("max_completion_tokens"),
                        "supported_parameters": e.get("supported_parameters") or [],
                        "status": 0,
                    }
                    for e in record["endpoints"]
                    if not e.get("is_disabled")
                ],
            }
        }
        urls.append(upstream.serve(f"/{where}/api/v1/models/{record['model_slug']}/endpoints", public))
    fetched = await OpenRouterEndpoints(urls).fetch(client)
    frontend = await OpenRouterEndpoints(
        [upstream.serve(f"/{where}/front/{i}.json", r) for i, r in enumerate(records)]
    ).fetch(client)

    # Variants of one host at different prices are named after the provider's model id, which the
    # public shape does not carry: compare the hosts, models and prices.
    def key(o):  # type: ignore[no-untyped-def]
        return (o.provider, o.model.slug, o.input_per_1m, o.output_per_1m)

    assert len({(o.provider, o.model.slug) for o in fetched}) >= 10
    assert sorted(map(key, fetched)) == sorted(map(key, frontend))


async def test_openrouter_endpoints_fail_when_one_url_fails(upstream, client) -> None:  # type: ignore[no-untyped-def]
    good = upstream.serve("/ep/good.json", endpoint_records(OR_ENDPOINTS)[0])
    bad = upstream.serve("/ep/bad.json", b"oops", status=502)
    with pytest.raises(SourceError, match="HTTP 502"):
        await OpenRouterEndpoints([good, bad]).fetch(client)


# ---- replay ---------------------------------------------------------------------------------------

REPLAY_KEYS = {"o3", "deepseek/deepseek-chat", "xai/grok-3"}


PRICE_HISTORY = FIXTURES / "price_history.csv"  # rows of ../shared/data/price_history.csv


def history_slice(tmp_path: Path, history: Path = PRICE_HISTORY) -> Path:
    """The rows of three models plus rows the replay must skip (not chat, an aggregator), as a CSV."""
    with open(history, newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [r for r in rows if r["model_key"] in REPLAY_KEYS]
    kept += [r for r in rows if r["mode"] == "embedding"][:10]
    kept += [r for r in rows if r["source_provider"] == "openrouter"][:10]
    kept.sort(key=lambda r: r["observed_at"])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(kept)
    path = tmp_path / "history.csv"
    path.write_text(out.getvalue())
    return path


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_replay_plays_the_recorded_moves_in_order_on_its_own_clock(sessions, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = history_slice(tmp_path)
    groups = load_history(path)
    first = groups[0].at
    assert first == ts("2025-01-04T19:43:47.699453Z")  # deepseek-chat listed; skipped rows start earlier
    speed = 1e9  # two years in about 0.06 s
    start = datetime(2030, 1, 1, tzinfo=UTC)
    broker = MemoryBroker()
    listener = broker.listen(lambda e: True)
    replay = Replay(path, speed=speed, start=start)
    await asyncio.wait_for(replay.run(sessions, broker), timeout=10)
    assert replay.groups_applied == len(groups) == 8

    def clock(at: str) -> datetime:
        return start + (ts(at) - first) / speed

    events = drain(listener)
    prices = [
        (e.model, e.input_per_1m, e.output_per_1m, e.previous_input_per_1m, e.observed_at)
        for e in events
        if isinstance(e, PriceChanged)
    ]
    assert prices == [
        ("deepseek-chat", Decimal("0.14"), Decimal("0.28"), None, clock("2025-01-04T19:43:47.699453Z")),
        ("deepseek-chat", Decimal("0.27"), Decimal("1.1"), Decimal("0.14"), clock("2025-02-08T07:10:42.194283Z")),
        ("o3", Decimal(10), Decimal(40), None, clock("2025-04-19T22:45:17.010903Z")),
        ("grok-3", Decimal(3), Decimal(15), None, clock("2025-05-25T14:24:08.205023Z")),
        ("o3", Decimal(2), Decimal(8), Decimal(10), clock("2025-06-14T21:43:08.628278Z")),
        ("deepseek-chat", Decimal("0.28"), Decimal("0.42"), Decimal("0.27"), clock("2026-01-18T03:49:16.450126Z")),
        ("grok-3", Decimal("1.25"), Decimal("2.5"), Decimal(3), clock("2026-09-06T00:22:21.941916Z")),
    ]
    statuses = [e for e in events if isinstance(e, StatusChanged)]
    assert [(e.provider, e.model, e.status, e.previous_status, e.changed_at) for e in statuses] == [
        ("xai", "grok-3", "unavailable", "live", clock("2026-10-03T22:42:59.518830Z")),
    ]
    async with sessions() as session:
        ticks = (await session.execute(select(PriceTick.observed_at, PriceTick.source).order_by(PriceTick.id))).all()
    assert [t.observed_at for t in ticks] == [p[4] for p in prices]
    assert {t.source for t in ticks} == {"replay"}
    offers = await offers_by_key(sessions)
    assert offers[("xai", "grok-3", "")].status == OfferStatus.UNAVAILABLE
    assert offers[("openai", "o3", "")].status == OfferStatus.LIVE
    assert set(offers) == {("xai", "grok-3", ""), ("openai", "o3", ""), ("deepseek", "deepseek-chat", "")}


async def test_replay_waits_between_groups_and_loops(sessions, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = history_slice(tmp_path)
    span = (load_history(path)[-1].at - load_history(path)[0].at).total_seconds()
    speed = span / 0.4  # one pass in about 0.4 s of real waiting
    replay = Replay(path, speed=speed, loop=True)
    task = asyncio.create_task(replay.run(sessions, MemoryBroker()))
    try:
        await asyncio.sleep(0.15)
        assert 0 < replay.groups_applied < 8  # it waits (delta / speed) between groups
        await await_until(lambda: replay.groups_applied > 8, what="the replay starts over")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    async with sessions() as session:
        ticks = (await session.execute(select(PriceTick.observed_at).order_by(PriceTick.id))).scalars().all()
    assert ticks == sorted(ticks)  # the replay clock never runs backwards across loops
    assert len(ticks) > 7  # the second pass moved prices back to the first recorded ones


async def test_replay_keeps_metadata_of_existing_offers(sessions, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The CSV carries prices only: a replay over the seeded catalog does not erase context windows."""
    source = LiteLLMPrices(str(LITELLM))
    async with httpx.AsyncClient() as client:
        entries = [e for e in await source.fetch(client) if e.source_key in REPLAY_KEYS]
    from datasources.catalog.ingest import apply_offers

    async with sessions() as session, session.begin():
        await apply_offers(session, entries, source="litellm", observed_at=T0)
    before = await offers_by_key(sessions)
    await Replay(history_slice(tmp_path), speed=1e9, start=T0).run(sessions, MemoryBroker())
    after = await offers_by_key(sessions)
    o3 = ("openai", "o3", "")
    assert before[o3].context_window and after[o3].context_window == before[o3].context_window
    assert after[o3].supports_tools == before[o3].supports_tools


async def test_a_broken_replay_file_is_reported(sessions, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "broken.csv"
    path.write_text("date,observed_at\n2025-01-01,yesterday\n")
    await Replay(path, speed=1e9).run(sessions, MemoryBroker())
    async with sessions() as session:
        from datasources.sources.status import list_sources

        (row,) = await list_sources(session)
    assert row.name == "replay" and "missing columns" in (row.last_error or "") and row.last_ok_at is None


# ---- configuration --------------------------------------------------------------------------------


def test_nothing_polls_by_default() -> None:
    assert load_sources({}) == []


def test_config_from_env(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "PRICE_SOURCES": "openrouter, openrouter-endpoints,litellm,file,replay",
        "OPENROUTER_MODELS_URL": "http://127.0.0.1:1/api/v1/models",
        "OPENROUTER_ENDPOINTS_URLS": "http://127.0.0.1:1/a, http://127.0.0.1:1/b",
        "LITELLM_PRICES_URL": str(tmp_path / "prices.json"),
        "PRICE_FILE": str(tmp_path / "models.json"),
        "PRICE_FILE_FORMAT": "openrouter",
        "REPLAY_FILE": str(tmp_path / "history.csv"),
        "REPLAY_SPEED": "86400",
        "REPLAY_LOOP": "yes",
        "POLL_INTERVAL": "60",
        "POLL_TIMEOUT": "5",
    }
    config = SourcesConfig.from_env(env)
    assert config.stale_after == 180  # 3 x the interval
    assert config.openrouter_endpoints_urls == ("http://127.0.0.1:1/a", "http://127.0.0.1:1/b")
    sources = config.build()
    assert [s.name for s in sources] == ["openrouter", "openrouter-endpoints", "litellm", "file", "replay"]
    assert all(s.interval == 60 and s.timeout == 5 for s in sources[:4])  # type: ignore[union-attr]
    replay = sources[4]
    assert isinstance(replay, Replay) and replay.speed == 86400 and replay.loop


@pytest.mark.parametrize(
    "env, message",
    [
        ({"PRICE_SOURCES": "openrouter,bloomberg"}, "PRICE_SOURCES: unknown source 'bloomberg'"),
        ({"POLL_INTERVAL": "soon"}, "POLL_INTERVAL: 'soon' is not a number"),
        ({"STALE_AFTER": "0"}, "STALE_AFTER: must be a positive number"),
        ({"POLL_TIMEOUT": "nan"}, "POLL_TIMEOUT: must be a positive number"),
        ({"REPLAY_LOOP": "sometimes"}, "REPLAY_LOOP: 'sometimes' is not true or false"),
        ({"PRICE_SOURCES": "file"}, "PRICE_FILE: the file source needs a path"),
        ({"PRICE_SOURCES": "replay"}, "REPLAY_FILE:"),
        ({"PRICE_SOURCES": "openrouter-endpoints"}, "OPENROUTER_ENDPOINTS_URLS:"),
        ({"OPENROUTER_MODELS_URL": "openrouter.ai/api"}, "OPENROUTER_MODELS_URL: 'openrouter.ai/api' is not an http"),
        ({"PRICE_FILE_FORMAT": "csv"}, "PRICE_FILE_FORMAT: 'csv'"),
    ],
)
def test_bad_config_is_a_one_line_error(env, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceConfigError) as caught:
        load_sources(env)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


# ---- the graph ------------------------------------------------------------------------------------


async def test_sources_field(upstream, client, sessions) -> None:  # type: ignore[no-untyped-def]
    url = upstream.serve("/graph/models.json", OR_MODELS.read_bytes())
    await poll_once(sessions, MemoryBroker(), OpenRouterModels(url), client, now=T0)
    await poll_once(sessions, MemoryBroker(), LiteLLMPrices(upstream.url + "/graph/missing.json"), client, now=T0)

    @strawberry.type
    class Query:
        sources: list[PriceSource] = strawberry.field(resolver=sources_resolver)

    @dataclass
    class Ctx:
        sessionmaker: async_sessionmaker[AsyncSession]

    result = await strawberry.Schema(query=Query).execute(
        "{ sources { name lastPollAt lastOk lastError lastErrorAt offers } }", context_value=Ctx(sessions)
    )
    assert result.errors is None
    litellm, openrouter = result.data["sources"]  # type: ignore[index]
    assert litellm["name"] == "litellm" and litellm["lastOk"] is None and "HTTP 404" in litellm["lastError"]
    assert openrouter["name"] == "openrouter" and openrouter["lastError"] is None
    assert datetime.fromisoformat(openrouter["lastOk"]) == T0
    assert openrouter["offers"] == len(parse_openrouter_file(OR_MODELS)) > 0
    assert datetime.fromisoformat(openrouter["lastPollAt"]) == T0 - timedelta(0)
