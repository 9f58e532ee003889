"""Import the full LiteLLM price map (../shared/data/litellm_model_prices.json) into an empty database,
then again unchanged: seconds and price ticks written, on SQLite and (when reachable) PostgreSQL. An
unchanged import over its target is profiled (cProfile, in-process) and its hot spots put in the note."""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
import tempfile
import time
from pathlib import Path

from bench import loadgen
from bench.results import Row

SCENARIO = "catalog"
SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "litellm_model_prices.json"
SMOKE_ENTRIES = 150


async def _import_twice(url: str, path: Path, profile_over: float | None) -> dict[str, object]:
    from datasources.catalog.importer import import_file
    from datasources.db import migrate
    from datasources.db.engine import create_engine, database_url, sessionmaker

    engine = create_engine(database_url(url))
    try:
        await migrate.upgrade(engine)
        sessions = sessionmaker(engine)
        out: dict[str, object] = {}
        for run in ("fresh", "unchanged"):
            started = time.perf_counter()
            result = await import_file(sessions, path, "litellm")
            out[run] = (time.perf_counter() - started, len(result.ticks), result.offers_created, result.unchanged)
        if profile_over is not None and out["unchanged"][0] > profile_over:  # type: ignore[index]
            profiler = cProfile.Profile()
            profiler.enable()
            await import_file(sessions, path, "litellm")
            profiler.disable()
            out["profile"] = _hot_spots(profiler)
        return out
    finally:
        await engine.dispose()


def _hot_spots(profiler: cProfile.Profile, top: int = 8) -> str:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]

    def name(key: tuple[str, int, str]) -> str:
        path, line, func = key
        for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
            if marker in path:
                path = path.split(marker, 1)[1]
        return f"{path}:{func}"

    own = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]  # type: ignore[attr-defined]
    cumulative = sorted(
        (
            (k, v)
            for k, v in stats.stats.items()  # type: ignore[attr-defined]
            if k[0].startswith(str(Path(__file__).resolve().parents[1] / "datasources"))
        ),
        key=lambda kv: -kv[1][3],
    )[:top]
    return (
        "cProfile of a third (unchanged) import, self: "
        + ", ".join(f"{name(k)} {v[2]:.2f}s" for k, v in own)
        + f" (total self {total:.2f}s); project code cumulative: "
        + ", ".join(f"{name(k)} {v[3]:.2f}s x{v[1]}" for k, v in cumulative)
    )


def _subset(tmp: Path, entries: int) -> Path:
    data = json.loads(SOURCE.read_text())
    keys = [k for k, v in data.items() if isinstance(v, dict) and v.get("mode") == "chat"][:entries]
    path = tmp / "litellm-subset.json"
    path.write_text(json.dumps({k: data[k] for k in keys}))
    return path


def run(smoke: bool) -> list[Row]:
    if not SOURCE.exists():
        return [Row(SCENARIO, "-", "skipped", 0, "", note=f"{SOURCE} is absent")]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pricegraph-bench-") as tmp_name:
        tmp = Path(tmp_name)
        path = _subset(tmp, SMOKE_ENTRIES) if smoke else SOURCE
        size = f"{SMOKE_ENTRIES} chat entries (smoke)" if smoke else f"full map, {SOURCE.stat().st_size / 1e6:.1f} MB"
        backends = [("sqlite", lambda: _nullcontext(f"sqlite+aiosqlite:///{tmp / 'catalog.db'}"))]
        if loadgen.pg_reachable():
            backends.append(("postgresql", lambda: loadgen.pg_database("pricegraph_bench_catalog")))
        else:
            rows.append(Row(SCENARIO, "postgresql", "skipped", 0, "", note="not reachable at 127.0.0.1:5432"))
        for backend, database in backends:
            with database() as url:
                first = asyncio.run(_import_twice(url, path, None if smoke else 1.0))
            for run_name, target in (("fresh", "<= 5"), ("unchanged", "<= 1")):
                seconds, ticks, created, unchanged = first[run_name]  # type: ignore[misc]
                note = f"{size}; {created} offers created, {unchanged} unchanged"
                rows.append(Row(SCENARIO, f"{backend} {run_name}", "import time", seconds, "s", target, note))
                rows.append(Row(SCENARIO, f"{backend} {run_name}", "ticks written", ticks, "ticks"))
            if "profile" in first:
                rows.append(Row(SCENARIO, f"{backend} unchanged", "profile", 0, "", note=str(first["profile"])))
    return rows


class _nullcontext:
    def __init__(self, value: str) -> None:
        self.value = value

    def __enter__(self) -> str:
        return self.value

    def __exit__(self, *exc: object) -> None:
        return None
