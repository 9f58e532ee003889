"""Candle rollups: each offer's OHLC per UTC hour and day, for every price dimension, kept in the table
`candle_rollups` in the same transaction as the ticks that change them, so candles.candles_for_offers
reads one row per interval instead of aggregating raw ticks.

Every dimension is stored (blended, input, output, cache_read: 8 rows per tick, written by the same
statement as 2 would be), so every candle series reads from the rollup. A bucket's row holds its tick
count, low and high, and its first and last tick's price and (observed_at, id): a tick inserted later,
live or back-dated into the middle of a bucket or into an older one, merges in exactly (count + 1, low
and high by min / max, open / close replaced when the tick sorts before the first / after the last).
Buckets do not depend on each other (a candle's open is the previous close, stitched when read), so a
back-dated tick touches only its own hour and day.

Writing is batched: `record` aggregates the inserted ticks per (offer, period, dimension, bucket) in
Python and upserts them with one statement executed over all those rows (executemany). Back-dated ticks filed one at a time
(ingest's history path) are `defer`red and written by the next `record` of the same transaction; any
left when it commits are written then (a `before_commit` hook), and a transaction that ends otherwise
drops them with its ticks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Executable, and_, case, delete, event, or_, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from datasources.candles import Dimension, Interval
from datasources.db.models import CandleRollup
from datasources.money import price

PENDING = "candle_rollups.pending"
KEY = ("offer_id", "period", "dimension", "bucket")

Tick = tuple[int, int, datetime, Decimal, Decimal, Decimal | None]  # id, offer_id, observed_at, in, out, cache read


def measures(input_per_1m: Decimal, output_per_1m: Decimal, cache_read_per_1m: Decimal | None) -> dict[str, Decimal]:
    """What each dimension measures a tick by, as candles.Dimension.measure does in SQL."""
    i, o = price(input_per_1m), price(output_per_1m)
    return {
        Dimension.BLENDED.value: i + o,
        Dimension.INPUT.value: i,
        Dimension.OUTPUT.value: o,
        Dimension.CACHE_READ.value: i if cache_read_per_1m is None else price(cache_read_per_1m),
    }


def ticks_of(rows: Iterable[Mapping[str, Any]], ids: Iterable[int]) -> list[Tick]:
    """The ticks of `price_ticks` insert parameters and the ids the insert returned, in the same order."""
    return [
        (tick_id, r["offer_id"], r["observed_at"], r["input_per_1m"], r["output_per_1m"], r.get("cache_read_per_1m"))
        for r, tick_id in zip(rows, ids, strict=True)
    ]


def aggregate(ticks: Iterable[Tick]) -> list[dict[str, Any]]:
    """One rollup row per (offer, period, dimension, bucket) the ticks fall in, as if they were alone."""
    rows: dict[tuple[int, str, str, datetime], dict[str, Any]] = {}
    for tick_id, offer_id, observed_at, input_, output, cache_read in sorted(ticks, key=lambda t: (t[2], t[0])):
        values = measures(input_, output, cache_read)
        for period in Interval:
            bucket = period.floor(observed_at)
            for dimension, value in values.items():
                key = (offer_id, period.value, dimension, bucket)
                row = rows.get(key)
                if row is None:
                    rows[key] = {
                        "offer_id": offer_id,
                        "period": period.value,
                        "dimension": dimension,
                        "bucket": bucket,
                        "ticks": 1,
                        "open": value,
                        "high": value,
                        "low": value,
                        "close": value,
                        "first_at": observed_at,
                        "first_id": tick_id,
                        "last_at": observed_at,
                        "last_id": tick_id,
                    }
                    continue
                row["ticks"] += 1
                if value > row["high"]:
                    row["high"] = value
                elif value < row["low"]:
                    row["low"] = value
                row["close"], row["last_at"], row["last_id"] = value, observed_at, tick_id
    return list(rows.values())


def _upsert(dialect: str) -> Executable:
    """One rollup row merged into its bucket's (executed with many rows: compiled once, cached)."""
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(CandleRollup)
    new, old = statement.excluded, CandleRollup
    earlier = or_(new.first_at < old.first_at, and_(new.first_at == old.first_at, new.first_id < old.first_id))
    later = or_(new.last_at > old.last_at, and_(new.last_at == old.last_at, new.last_id > old.last_id))
    return statement.on_conflict_do_update(
        index_elements=list(KEY),
        set_={
            "ticks": old.ticks + new.ticks,
            "high": case((new.high > old.high, new.high), else_=old.high),
            "low": case((new.low < old.low, new.low), else_=old.low),
            "open": case((earlier, new.open), else_=old.open),
            "first_at": case((earlier, new.first_at), else_=old.first_at),
            "first_id": case((earlier, new.first_id), else_=old.first_id),
            "close": case((later, new.close), else_=old.close),
            "last_at": case((later, new.last_at), else_=old.last_at),
            "last_id": case((later, new.last_id), else_=old.last_id),
        },
    )


_UPSERT = {dialect: _upsert(dialect) for dialect in ("sqlite", "postgresql")}


def _take_pending(session: Session) -> list[Tick]:
    """The ticks `defer`red in this session's current transaction (older ones died with theirs)."""
    pending: tuple[SessionTransaction | None, list[Tick]] | None = session.info.pop(PENDING, None)
    if pending is None or pending[0] is not session.get_transaction():
        return []
    return pending[1]


def defer(session: AsyncSession, row: Mapping[str, Any], tick_id: int) -> None:
    """Note a tick just inserted, to write its rollups with the next `record` (or at commit)."""
    sync = session.sync_session
    transaction = sync.get_transaction()
    pending: tuple[SessionTransaction | None, list[Tick]] | None = sync.info.get(PENDING)
    if pending is None or pending[0] is not transaction:
        pending = (transaction, [])
        sync.info[PENDING] = pending
    pending[1].extend(ticks_of([row], [tick_id]))


async def record(session: AsyncSession, rows: Sequence[Mapping[str, Any]], ids: Sequence[int]) -> None:
    """Merge ticks just inserted (`price_ticks` insert parameters and their ids) into the rollups, with
    any deferred ones: one statement, executed with one row per bucket touched."""
    ticks = ticks_of(rows, ids) + _take_pending(session.sync_session)
    if ticks:
        await session.execute(_UPSERT[session.get_bind().dialect.name], aggregate(ticks))


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    ticks = _take_pending(session)
    if ticks:
        session.execute(_UPSERT[session.get_bind().dialect.name], aggregate(ticks))


# ---- rebuilding from the ticks (the migration's backfill; and after ticks are written around ingest) --

_BUCKET = {
    "sqlite": {
        "1h": "strftime('%Y-%m-%d %H:00:00.000000', observed_at)",
        "1d": "strftime('%Y-%m-%d 00:00:00.000000', observed_at)",
    },
    "postgresql": {
        "1h": "date_trunc('hour', observed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        "1d": "date_trunc('day', observed_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    },
}

_REBUILD = """
WITH t AS (
    SELECT offer_id, id, observed_at, {bucket} AS bucket,
           input_per_1m AS i, output_per_1m AS o, COALESCE(cache_read_per_1m, input_per_1m) AS c,
           ROW_NUMBER() OVER (PARTITION BY offer_id, {bucket} ORDER BY observed_at, id) AS up,
           ROW_NUMBER() OVER (PARTITION BY offer_id, {bucket} ORDER BY observed_at DESC, id DESC) AS down
    FROM price_ticks
),
d (dimension) AS (VALUES ('blended'), ('input'), ('output'), ('cache_read')),
m AS (
    SELECT t.offer_id, t.bucket, t.up, t.down, t.observed_at, t.id, d.dimension,
           CASE d.dimension WHEN 'blended' THEN t.i + t.o WHEN 'input' THEN t.i WHEN 'output' THEN t.o
                ELSE t.c END AS v
    FROM t CROSS JOIN d
)
INSERT INTO candle_rollups
    (offer_id, period, dimension, bucket, ticks, open, high, low, close, first_at, first_id, last_at, last_id)
SELECT offer_id, '{period}', dimension, bucket, COUNT(*),
       MAX(CASE WHEN up = 1 THEN v END), MAX(v), MIN(v), MAX(CASE WHEN down = 1 THEN v END),
       MAX(CASE WHEN up = 1 THEN observed_at END), MAX(CASE WHEN up = 1 THEN id END),
       MAX(CASE WHEN down = 1 THEN observed_at END), MAX(CASE WHEN down = 1 THEN id END)
FROM m
GROUP BY offer_id, dimension, bucket
"""


async def rebuild(session: AsyncSession) -> None:
    """Recompute every rollup from the raw ticks, in SQL (for ticks written without `record`, as bulk
    loads do)."""
    await session.execute(delete(CandleRollup))
    buckets = _BUCKET[session.get_bind().dialect.name]
    for period in Interval:
        await session.execute(text(_REBUILD.format(bucket=buckets[period.value], period=period.value)))
