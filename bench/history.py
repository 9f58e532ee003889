"""Candles over a year of ticks: 500 sparse pairs shaped like the real LiteLLM price changes plus 20 dense
pairs with a tick every minute (~10.5 million rows), loaded into a fresh SQLite file and a fresh
PostgreSQL database, and rolled up (datasources/rollups.py); then 365 daily and 30 days of hourly candles
for one sparse and one dense pair, from the rollups and (the baseline) from the raw ticks
(`candles_from_ticks`), checked equal. Last, the rollups' write cost: ingest time per tick with and
without their maintenance, live ticks and back-dated ones.

    .venv/bin/python bench/history.py [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from sqlalchemy import func, insert, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.results import Row
from datasources import rollups
from datasources.candles import Interval, build_candles, candles_for_offer, candles_from_ticks, window
from datasources.catalog.entries import ModelIdentity, OfferEntry
from datasources.catalog.ingest import apply_offers
from datasources.db import migrate
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Model, Offer, PriceTick, Provider
from datasources.money import blended

SCENARIO = "history"
HISTORY_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "price_history.csv"
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)
UNIT = 10**10  # money as integer counts of 1e-10 USD while generating
RUNS, WARMUP = 20, 2
TARGET_MS = 20.0


# ---- the series --------------------------------------------------------------------------------------


def real_changes(path: Path = HISTORY_CSV) -> tuple[list[tuple[int, int]], list[tuple[float, float]]]:
    """Starting prices (input, output in 1e-10 USD) and step ratios (input, output) of every real change."""
    starts: list[tuple[int, int]] = []
    steps: list[tuple[float, float]] = []
    last: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if not row["input_per_1m"] or not row["output_per_1m"]:
                continue
            key = (row["source_provider"], row["model_key"])
            state = Decimal(row["input_per_1m"]), Decimal(row["output_per_1m"])
            if row["event"] in ("initial", "listed") and sum(state) > 0:
                starts.append((int(state[0] * UNIT), int(state[1] * UNIT)))
            elif row["event"] == "changed" and key in last:
                old = last[key]
                if old[0] > 0 and old[1] > 0 and state[0] > 0 and state[1] > 0 and state != old:
                    steps.append((float(state[0] / old[0]), float(state[1] / old[1])))
            last[key] = state
    return starts, steps


def _walk(
    rng: random.Random, start: tuple[int, int], steps: list[tuple[float, float]], moments: Iterator[datetime]
) -> Iterator[tuple[datetime, int, int]]:
    """A price walk taking real step ratios, kept within 1/4..4x of where it started."""
    base_i, base_o = start
    i, o = start
    for moment in moments:
        ri, ro = rng.choice(steps)
        ni, no = int(i * ri), int(o * ro)
        if not (base_i // 4 <= ni <= base_i * 4 and base_o // 4 <= no <= base_o * 4):
            ni, no = int(i / ri), int(o / ro)  # step back the other way
        i = min(max(ni, base_i // 4, 1), base_i * 4 + 1)
        o = min(max(no, base_o // 4, 1), base_o * 4 + 1)
        yield moment, i, o


def sparse_moments(rng: random.Random, first: datetime, last: datetime) -> Iterator[datetime]:
    """A change every few days (exponential gaps, mean 3 days), at whole seconds."""
    moment = first
    while moment < last:
        yield moment
        moment += timedelta(seconds=int(rng.expovariate(1 / (3 * 86400))) + 1)


def dense_moments(first: datetime, last: datetime) -> Iterator[datetime]:
    moment = first
    while moment < last:
        yield moment
        moment += timedelta(minutes=1)


# ---- loading -----------------------------------------------------------------------------------------


async def create_offers(engine: AsyncEngine, count: int, starts: list[tuple[int, int]]) -> list[int]:
    sessions = sessionmaker(engine)
    providers, models = 10, -(-count // 10)
    async with sessions() as session, session.begin():
        await session.execute(
            insert(Provider), [{"slug": f"bench-p{p}", "name": f"Bench {p}"} for p in range(providers)]
        )
        await session.execute(
            insert(Model),
            [{"slug": f"bench-m{m}", "display_name": f"Bench {m}", "family": "bench"} for m in range(models)],
        )
        pids = (await session.execute(select(Provider.id).order_by(Provider.id))).scalars().all()
        mids = (await session.execute(select(Model.id).order_by(Model.id))).scalars().all()
        rows = []
        for n in range(count):
            i, o = starts[n % len(starts)]
            rows.append(
                {
                    "provider_id": pids[n % providers],
                    "model_id": mids[n // providers],
                    "provider_model_id": f"bench-{n}",
                    "input_per_1m": Decimal(i) / UNIT,
                    "output_per_1m": Decimal(o) / UNIT,
                    "source": "bench",
                }
            )
        await session.execute(insert(Offer), rows)
        return list((await session.execute(select(Offer.id).order_by(Offer.id))).scalars().all())


def _money(value: int) -> str:
    return f"{value // UNIT}.{value % UNIT:010d}"


class Loader:
    """Writes one offer's ticks at a time, the fastest way each backend takes them."""

    async def ticks(self, offer_id: int, ticks: Iterator[tuple[datetime, int, int]]) -> int:
        raise NotImplementedError

    async def finish(self) -> None:
        return None


class SQLiteLoader(Loader):
    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        self.text: dict[datetime, str] = {}

    def _stamp(self, moment: datetime) -> str:  # UTCDateTime's storage on SQLite: naive UTC text
        stamp = self.text.get(moment)
        if stamp is None:
            stamp = self.text[moment] = moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return stamp

    async def ticks(self, offer_id: int, ticks: Iterator[tuple[datetime, int, int]]) -> int:
        rows = [(offer_id, i, o, self._stamp(t), "bench") for t, i, o in ticks]
        with self.db:
            self.db.executemany(
                "INSERT INTO price_ticks (offer_id, input_per_1m, output_per_1m, observed_at, source) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    async def finish(self) -> None:
        self.db.execute("ANALYZE")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()


class PostgresLoader(Loader):
    def __init__(self, connection: asyncpg.Connection) -> None:
        self.conn = connection
        self.text: dict[datetime, str] = {}

    async def ticks(self, offer_id: int, ticks: Iterator[tuple[datetime, int, int]]) -> int:
        out = io.StringIO()
        n = 0
        for t, i, o in ticks:
            stamp = self.text.get(t)
            if stamp is None:
                stamp = self.text[t] = t.strftime("%Y-%m-%d %H:%M:%S+00")
            out.write(f"{offer_id},{_money(i)},{_money(o)},{stamp},bench\n")
            n += 1
        data = io.BytesIO(out.getvalue().encode())
        await self.conn.copy_to_table(
            "price_ticks",
            source=data,
            format="csv",
            columns=["offer_id", "input_per_1m", "output_per_1m", "observed_at", "source"],
        )
        return n

    async def finish(self) -> None:
        await self.conn.execute("VACUUM ANALYZE price_ticks")
        await self.conn.close()


async def load(
    engine: AsyncEngine, loader: Loader, sparse: int, dense: int, days: int, seed: int = 7
) -> tuple[list[int], list[int], int, float]:
    rng = random.Random(seed)
    starts, steps = real_changes()
    offers = await create_offers(engine, sparse + dense, starts)
    first = NOW - timedelta(days=days)
    began = time.perf_counter()
    total = 0
    for n, offer_id in enumerate(offers):
        start = rng.choice(starts)
        if n < sparse:
            moments = sparse_moments(rng, first + timedelta(seconds=rng.randrange(3 * 86400)), NOW)
        else:
            moments = dense_moments(first, NOW)
        total += await loader.ticks(offer_id, _walk(rng, start, steps, moments))
    await loader.finish()
    return offers[:sparse], offers[sparse:], total, time.perf_counter() - began


# ---- measuring ---------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(call: Callable[[], Awaitable[object]], runs: int, warmup: int) -> tuple[list[float], object]:
    result: object = None
    for _ in range(warmup):
        result = await call()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - began) * 1000)
    return times, result


async def legacy_candles(engine: AsyncEngine, offer_id: int, days: int, interval: Interval) -> list[object]:
    """The previous implementation's shape: every tick of the window to Python, then build_candles."""
    start, end = window(days, interval, NOW)
    async with sessionmaker(engine)() as session:
        prior = (
            await session.execute(
                select(PriceTick.input_per_1m, PriceTick.output_per_1m)
                .where(PriceTick.offer_id == offer_id, PriceTick.observed_at < start)
                .order_by(PriceTick.observed_at.desc(), PriceTick.id.desc())
                .limit(1)
            )
        ).first()
        rows = await session.execute(
            select(PriceTick.observed_at, PriceTick.input_per_1m, PriceTick.output_per_1m)
            .where(PriceTick.offer_id == offer_id, PriceTick.observed_at >= start, PriceTick.observed_at <= NOW)
            .order_by(PriceTick.observed_at, PriceTick.id)
        )
        ticks = [(t, blended(i, o)) for t, i, o in rows]
    return build_candles(blended(*prior) if prior else None, ticks, start, end, interval)  # type: ignore[return-value]


async def measure(backend: str, engine: AsyncEngine, pairs: dict[str, int], smoke: bool) -> list[Row]:
    sessions = sessionmaker(engine)
    rows: list[Row] = []
    runs = 5 if smoke else RUNS
    for kind, offer_id in pairs.items():
        for days, interval, label in [(365, Interval.DAY, "365 x 1d"), (30, Interval.HOUR, "30d x 1h")]:

            async def call(days: int = days, interval: Interval = interval, offer_id: int = offer_id) -> object:
                async with sessions() as session:
                    return await candles_for_offer(session, offer_id, days, interval, now=NOW)

            times, candles = await timed(call, runs, WARMUP)
            ticks = sum(c.ticks for c in candles)  # type: ignore[attr-defined]
            case = f"{backend} {kind} {label}"
            note = f"{len(candles)} candles from {ticks:,} ticks; {runs} runs"  # type: ignore[arg-type]
            target = f"<= {TARGET_MS:g}" if kind == "dense" else ""
            rows.append(Row(SCENARIO, case, "p50", _pct(times, 0.5), "ms", target, note))
            rows.append(Row(SCENARIO, case, "p99", _pct(times, 0.99), "ms", "", note))
            print(f"  {case}: p50 {_pct(times, 0.5):.1f} ms, p99 {_pct(times, 0.99):.1f} ms ({note})", flush=True)
            raw_runs = 2 if smoke or kind == "dense" else 5

            async def raw(days: int = days, interval: Interval = interval, offer_id: int = offer_id) -> object:
                async with sessions() as session:
                    return (await candles_from_ticks(session, [offer_id], days, interval, now=NOW))[offer_id]

            times, baseline = await timed(raw, raw_runs, 1)
            assert baseline == candles, f"the rollups disagree with the raw ticks on {case}"
            note = f"raw ticks aggregated in SQL (candles_from_ticks, the baseline); {raw_runs} runs; same candles"
            rows.append(Row(SCENARIO, case + " (raw ticks, before)", "p50", _pct(times, 0.5), "ms", "", note))
            print(f"  {case} raw ticks: p50 {_pct(times, 0.5):.1f} ms", flush=True)
            if kind == "dense" and not smoke:  # the old path, for comparison: a few runs are enough
                times, old = await timed(lambda d=days, i=interval, o=offer_id: legacy_candles(engine, o, d, i), 3, 0)
                assert old == candles, f"the SQL path disagrees with the Python path on {case}"
                rows.append(
                    Row(
                        SCENARIO,
                        case + " (python path, before)",
                        "p50",
                        _pct(times, 0.5),
                        "ms",
                        "",
                        "every tick fetched, candles built in Python; 3 runs; same candles",
                    )
                )
                print(f"  {case} python path: p50 {_pct(times, 0.5):.1f} ms", flush=True)
    return rows


async def _ingest_rounds(engine: AsyncEngine, tag: str, offers: int, rounds: int) -> tuple[float, float]:
    """ms per tick of `rounds` live ingest calls changing every one of `offers` prices, then of one
    back-dated call filing a tick per offer as history."""
    sessions = sessionmaker(engine)
    model = ModelIdentity(f"bench-{tag}", "Bench", "bench", None, False)

    def entries(step: int) -> list[OfferEntry]:
        return [
            OfferEntry(
                f"bench-{tag}-{n}",
                model,
                "",
                f"m{n}",
                Decimal(step + 1),
                Decimal(n + 1),
                None,
                None,
                False,
                False,
                f"k{n}",
            )
            for n in range(offers)
        ]

    async def call(step: int, at: datetime) -> None:
        async with sessions() as session, session.begin():
            await apply_offers(session, entries(step), source="bench", observed_at=at)

    await call(0, NOW)
    began = time.perf_counter()
    for step in range(1, rounds + 1):
        await call(step, NOW + timedelta(minutes=step))
    live = (time.perf_counter() - began) * 1000 / (rounds * offers)
    began = time.perf_counter()
    await call(rounds + 1, NOW - timedelta(hours=3))
    history = (time.perf_counter() - began) * 1000 / offers
    return live, history


async def write_cost(backend: str, engine: AsyncEngine, smoke: bool) -> list[Row]:
    """Ingest with the rollups kept, and with their maintenance switched off (the ticks' insert still
    returns ids), on fresh offers each."""
    offers, rounds = (100, 3) if smoke else (1000, 5)
    with_live, with_history = await _ingest_rounds(engine, "with", offers, rounds)
    record, defer = rollups.record, rollups.defer

    async def no_record(*args: object) -> None:
        return None

    rollups.record, rollups.defer = no_record, lambda *args: None  # type: ignore[assignment]
    try:
        without_live, without_history = await _ingest_rounds(engine, "without", offers, rounds)
    finally:
        rollups.record, rollups.defer = record, defer  # type: ignore[method-assign]
    rows = []
    for path, with_, without in (("live", with_live, without_live), ("history", with_history, without_history)):
        note = f"{offers} offers per ingest call; without rollups {without:.3f}, with {with_:.3f} ms/tick"
        case = f"{backend} ingest {path} tick"
        rows.append(Row(SCENARIO, case + " (with rollups)", "per tick", with_, "ms", "", note))
        rows.append(Row(SCENARIO, case + " (without rollups)", "per tick", without, "ms", "", note))
        rows.append(Row(SCENARIO, case + " rollup cost", "per tick", with_ - without, "ms", "", note))
        print(f"  {case}: {without:.3f} -> {with_:.3f} ms per tick", flush=True)
    return rows


async def bench_backend(backend: str, url: URL, loader: Callable[[], Awaitable[Loader]], smoke: bool) -> list[Row]:
    sparse, dense, days = (20, 2, 30) if smoke else (500, 20, 365)
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        print(f"{backend}: loading {sparse} sparse + {dense} dense pairs over {days} days", flush=True)
        sparse_ids, dense_ids, total, seconds = await load(engine, await loader(), sparse, dense, days)
        print(f"{backend}: {total:,} ticks in {seconds:.1f} s", flush=True)
        rows = [
            Row(
                SCENARIO,
                f"{backend} load",
                "ticks/s",
                total / seconds,
                "rows/s",
                "",
                f"{total:,} ticks ({sparse} sparse + {dense} dense pairs, {days} days) in {seconds:.1f} s",
            )
        ]
        async with sessionmaker(engine)() as session:  # the sparse pair with the most ticks
            busiest = (
                await session.execute(
                    select(PriceTick.offer_id)
                    .where(PriceTick.offer_id.in_(sparse_ids))
                    .group_by(PriceTick.offer_id)
                    .order_by(func.count().desc(), PriceTick.offer_id)
                    .limit(1)
                )
            ).scalar_one()
        began = time.perf_counter()
        async with sessionmaker(engine)() as session, session.begin():
            await rollups.rebuild(session)
        seconds = time.perf_counter() - began
        print(f"{backend}: rolled up in {seconds:.1f} s", flush=True)
        rows.append(Row(SCENARIO, f"{backend} rollup backfill", "s", seconds, "s", "", f"{total:,} ticks, in SQL"))
        rows += await measure(backend, engine, {"sparse": busiest, "dense": dense_ids[0]}, smoke)
        rows += await write_cost(backend, engine, smoke)
        return rows
    finally:
        await engine.dispose()


async def main(smoke: bool) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pricegraph-history-", dir="/tmp") as tmp:
        path = f"{tmp}/history.db"

        async def sqlite_loader() -> Loader:
            return SQLiteLoader(path)

        rows += await bench_backend("sqlite", make_url(f"sqlite+aiosqlite:///{path}"), sqlite_loader, smoke)

    server = make_url(PG_SERVER)
    dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = await asyncpg.connect(dsn, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        note = f"PostgreSQL unreachable at {server.host}:{server.port} ({exc.__class__.__name__}); skipped"
        print(note, flush=True)
        return rows + [Row(SCENARIO, "postgresql", "skipped", 0, "", "", note)]
    name = f"pricegraph_bench_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = server.set(database=name)

        async def pg_loader() -> Loader:
            return PostgresLoader(
                await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
            )

        rows += await bench_backend("postgresql", url, pg_loader, smoke)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return rows


def run(smoke: bool) -> list[Row]:
    return asyncio.run(main(smoke))


if __name__ == "__main__":
    from bench.results import table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="20 sparse + 2 dense pairs over 30 days")
    print(table(run(parser.parse_args().smoke)))
