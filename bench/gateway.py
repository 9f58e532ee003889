"""Gateway overhead: an upstream that answers at once (bench/upstream.py, its own process), loaded from
another process (bench/loadgen.py) at concurrency 1, 16 and 64, (a) directly, (a') through a bare aiohttp
passthrough (bench/passthrough.py: the floor any Python gateway pays), (b) through Pricegraph
(`python server.py`, one provider pointed at the upstream with a platform key, an enterprise account,
metering on) on SQLite and on PostgreSQL, (c) through the LiteLLM proxy in its own venv under /tmp.
Server CPU per request from /proc/<pid>/stat; a 200-chunk stream at c=1 for first-byte and per-chunk
overhead; resident memory after the run. Missed targets are profiled with py-spy (if installed)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.loadgen import Process
from bench.results import RESULTS_DIR, Row

SCENARIO = "gateway"
LEVELS = (1, 16, 64)
CHUNKS = 200
MODEL = "llama-3.3-70b"
PROVIDER = "cerebras"  # one default-variant offer of the model in the seed catalog
PLATFORM_KEY = "bench-platform-key"
# LiteLLM counts a stream's tokens with a tokenizer chosen by model name (a "llama" one is fetched from the
# Hugging Face hub); a neutral name keeps it on its bundled tiktoken files, offline.
LITELLM_MODEL = "bench-model"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
LITELLM_VENV = Path(os.environ.get("BENCH_LITELLM_VENV", "/tmp/litellm-venv"))
LITELLM_INSTALL_TIMEOUT = 600.0


def _ops(url: str, key: str, stream: bool = False, model: str = MODEL) -> list[list[dict[str, Any]]]:
    body = {**BODY, "model": model, "stream": True} if stream else {**BODY, "model": model}
    return [
        [
            {
                "method": "POST",
                "url": url,
                "body": json.dumps(body),
                "headers": {"content-type": "application/json", "authorization": f"Bearer {key}"},
            }
        ]
    ]


class Case:
    """One thing under load: a name, the chat URL, the key, and the server process to measure (if any)."""

    def __init__(self, name: str, url: str, key: str, pids: list[int], model: str = MODEL) -> None:
        self.name, self.url, self.key, self.pids, self.model = name, url, key, pids, model

    def cpu(self) -> float:
        return sum(_tree_cpu(pid) for pid in self.pids)

    def rss(self) -> float:
        return sum(_tree_rss(pid) for pid in self.pids)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for child in _children(pid):
        pids += _tree(child)
    return pids


def _tree_cpu(pid: int) -> float:
    return sum(loadgen.cpu_seconds(p) for p in _tree(pid) if Path(f"/proc/{p}").exists())


def _tree_rss(pid: int) -> float:
    return sum(loadgen.rss_mb(p) for p in _tree(pid) if Path(f"/proc/{p}").exists())


def measure(case: Case, duration: float, warmup: float, levels: tuple[int, ...]) -> dict[str, Any]:
    """Load the case at each level and once with the stream at c=1; CPU per request of its server."""
    out: dict[str, Any] = {}
    for level in levels:
        before = case.cpu()
        result = loadgen.load(_ops(case.url, case.key, model=case.model), level, duration, warmup)
        spent = case.cpu() - before
        result["cpu_ms"] = spent * 1000 / max(1, result["ops"] + result["warm"]) if case.pids else float("nan")
        out[level] = result
    before = case.cpu()
    stream = loadgen.load(_ops(case.url, case.key, True, case.model), 1, duration, warmup)
    stream["cpu_ms"] = (
        (case.cpu() - before) * 1000 / max(1, stream["ops"] + stream["warm"]) if case.pids else float("nan")
    )
    out["stream"] = stream
    out["rss"] = case.rss() if case.pids else float("nan")
    return out


def _check(case: Case, stream: bool = False) -> None:
    import httpx

    body = {**BODY, "model": case.model, "stream": stream}
    response = httpx.post(case.url, json=body, headers={"authorization": f"Bearer {case.key}"}, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{case.name}: {response.status_code} {response.text[:500]}")


# ---- the servers ---------------------------------------------------------------------------------


def _pricegraph(database_url: str, upstream: int, tmp: Path) -> tuple[Process, Case]:
    providers = tmp / "providers.toml"
    providers.write_text(
        f'[providers.{PROVIDER}]\nbase_url = "http://127.0.0.1:{upstream}/v1"\napi_key = "{PLATFORM_KEY}"\n'
    )
    env = {"DATABASE_URL": database_url, "PROVIDERS_FILE": str(providers)}
    key = loadgen.create_key(env, "enterprise", "1000000")
    port = loadgen.free_port()
    process = loadgen.start_pricegraph(env, port)
    return process, Case("", f"http://127.0.0.1:{port}/v1/chat/completions", key, [process.pid])


def _litellm_installed(notes: list[str]) -> Path | None:
    """The LiteLLM proxy in its own venv under /tmp (never the project's); None (with a note) when it fails."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if binary.exists():
        return binary
    started = time.monotonic()
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True, capture_output=True)
        subprocess.run(
            [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
            check=True,
            capture_output=True,
            timeout=LITELLM_INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        notes.append(f"LiteLLM skipped: pip install took over {LITELLM_INSTALL_TIMEOUT:g} s")
        return None
    except subprocess.CalledProcessError as exc:
        notes.append(f"LiteLLM skipped: install failed ({(exc.stderr or b'').decode()[-200:].strip()})")
        return None
    if not binary.exists():
        notes.append("LiteLLM skipped: no litellm command after install")
        return None
    notes.append(f"LiteLLM installed in {time.monotonic() - started:.0f} s")
    return binary


def _litellm(binary: Path, upstream: int, tmp: Path) -> tuple[Process, Case]:
    config = tmp / "litellm.yaml"
    master_key = "sk-bench-" + secrets.token_hex(16)
    config.write_text(
        "model_list:\n"
        f"  - model_name: {LITELLM_MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{LITELLM_MODEL}\n"
        f"      api_base: http://127.0.0.1:{upstream}/v1\n"
        f"      api_key: {PLATFORM_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
        "general_settings:\n"
        f"  master_key: {master_key}\n"  # no database: checked in memory, as Pricegraph's key cache does
    )
    port = loadgen.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROVIDERS_FILE")}
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        TELEMETRY="False",
        LITELLM_LOG="ERROR",
        NO_DOCS="True",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    process = Process(
        [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        env,
        cwd=tmp,
        inherit=False,
    )
    try:
        loadgen.wait_http(f"http://127.0.0.1:{port}/health/liveliness", process.popen, timeout=180)
    except RuntimeError as exc:
        tail = process.tail()
        process.stop()
        raise RuntimeError(f"{exc}\n{tail}") from None
    return process, Case(
        "litellm", f"http://127.0.0.1:{port}/v1/chat/completions", master_key, [process.pid], LITELLM_MODEL
    )


# ---- profiling -----------------------------------------------------------------------------------

AREAS = {
    "h11 (HTTP parsing, no httptools)": ("h11/",),
    "httpx+aiohttp upstream client": ("httpx/", "httpx_aiohttp", "aiohttp/"),
    "SQLAlchemy": ("sqlalchemy/",),
    "SQLAlchemy ORM": ("sqlalchemy/orm/",),
    "SQL compile/cache key": ("sqlalchemy/sql/",),
    "aiosqlite/asyncpg driver": ("aiosqlite/", "asyncpg/"),
    "json": ("json/",),
}


def profile(case: Case, seconds: float) -> str:
    """py-spy under load at c=16 (only the thread holding the GIL, i.e. Python CPU): a flame graph in
    bench/results/gateway-profile.svg, and the hottest frames as text."""
    return loadgen.py_spy(
        case.pids[0],
        seconds,
        lambda: loadgen.load(_ops(case.url, case.key), 16, seconds, 0.2),
        RESULTS_DIR / "gateway-profile.svg",
        AREAS,
        skip=("ChatCompletions.__call__", "ChatCompletions.handle", "_unless_gone"),
    )


# ---- rows ------------------------------------------------------------------------------------------


def _rows(name: str, measured: dict[str, Any], server: bool) -> list[Row]:
    rows = []
    for level in LEVELS:
        if level not in measured:
            continue
        r = measured[level]
        case = f"{name} c={level}"
        extra = {k: r[k] for k in ("ops", "warm", "errors", "p50", "p90", "p99", "mean")}
        note = f"{r['errors']} errors {r['statuses']}" if r["errors"] else ""
        rows.append(Row(SCENARIO, case, "requests/s", r["rps"], "req/s", note=note, extra=extra))
        rows += [Row(SCENARIO, case, f"{p} latency", r[p], "ms") for p in ("p50", "p90", "p99")]
        if server:
            rows.append(Row(SCENARIO, case, "server CPU per request", r["cpu_ms"], "ms"))
    s = measured["stream"]
    rows.append(
        Row(
            SCENARIO,
            f"{name} stream c=1",
            "first byte p50",
            s["ttfb_p50"],
            "ms",
            extra={"p50": s["p50"], "p99": s["p99"], "reads_mean": s["reads_mean"], "ops": s["ops"]},
        )
    )
    rows.append(
        Row(
            SCENARIO,
            f"{name} stream c=1",
            "whole stream p50",
            s["p50"],
            "ms",
            note=f"{s['reads_mean']:.0f} client reads per stream",
        )
    )
    if server:
        rows.append(Row(SCENARIO, f"{name} stream c=1", "server CPU per stream", s["cpu_ms"], "ms"))
    return rows


def _summary(name: str, measured: dict[str, Any], direct: dict[str, Any], floor: dict[str, Any]) -> list[Row]:
    one, base = measured[1], direct[1]
    s, ds = measured["stream"], direct["stream"]
    cpu_levels = {level: measured[level]["cpu_ms"] for level in LEVELS if level in measured}
    first_byte = s["ttfb_p50"] - ds["ttfb_p50"]
    per_chunk_latency = ((s["p50"] - s["ttfb_p50"]) - (ds["p50"] - ds["ttfb_p50"])) * 1000 / CHUNKS
    per_chunk_cpu = (s["cpu_ms"] - one["cpu_ms"]) * 1000 / CHUNKS
    return [
        Row(SCENARIO, name, "added p50 vs direct, c=1", one["p50"] - base["p50"], "ms", "<= 0.5"),
        Row(SCENARIO, name, "added p99 vs direct, c=1", one["p99"] - base["p99"], "ms", "<= 2"),
        Row(
            SCENARIO,
            name,
            "server CPU per request (c=16)",
            cpu_levels[16],
            "ms",
            "<= 0.5",
            note=", ".join(f"c={k}: {v:.3f}" for k, v in cpu_levels.items()),
            extra=dict((f"c{k}", v) for k, v in cpu_levels.items()),
        ),
        Row(
            SCENARIO,
            name,
            "server CPU per request vs the passthrough (c=16)",
            cpu_levels[16] / floor[16]["cpu_ms"],
            "x",
            "<= 3",
            note=f"{cpu_levels[16]:.3f} vs {floor[16]['cpu_ms']:.3f} ms in the same run",
        ),
        Row(SCENARIO, name, "stream first-byte overhead p50", first_byte, "ms", "<= 1"),
        Row(
            SCENARIO,
            name,
            "per relayed chunk, latency",
            per_chunk_latency,
            "µs/chunk",
            "<= 20",
            note=f"(stream p50 - first byte) vs direct, / {CHUNKS}",
        ),
        Row(
            SCENARIO,
            name,
            "per relayed chunk, server CPU",
            per_chunk_cpu,
            "µs/chunk",
            "<= 20",
            note=f"(CPU per stream - CPU per plain request) / {CHUNKS}",
        ),
        Row(SCENARIO, name, "resident memory after run", measured["rss"], "MB", "<= 120"),
    ]


def _missed(rows: list[Row]) -> list[str]:
    missed = []
    for r in rows:
        if not r.target:
            continue
        op, bound = r.target.split()
        value, limit = r.value, float(bound)
        if (op == "<=" and value > limit) or (op == ">=" and value < limit):
            missed.append(f"{r.case} {r.metric}")
    return missed


def _pricegraph_case(
    name: str,
    url: str,
    upstream: int,
    tmp: Path,
    duration: float,
    warmup: float,
    levels: tuple[int, ...],
    direct: dict[str, Any],
    floor: dict[str, Any],
    profile_seconds: float | None,
) -> tuple[dict[str, Any], list[Row]]:
    process, case = _pricegraph(url, upstream, tmp)
    case.name = name
    with process:
        _check(case)
        _check(case, stream=True)
        measured = measure(case, duration, warmup, levels)
        rows = _rows(name, measured, server=True)
        summary = _summary(name, measured, direct, floor)
        rows += summary
        missed = _missed(summary)
        if profile_seconds and missed:
            spots = profile(case, profile_seconds)
            rows.append(Row(SCENARIO, name, "profile (py-spy, c=16)", 0, "", note=spots))
    return measured, rows


def run(smoke: bool) -> list[Row]:
    duration, warmup = (0.5, 0.2) if smoke else (15.0, 2.0)
    levels = (1, 16) if smoke else LEVELS
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pricegraph-bench-") as tmp_name:
        tmp = Path(tmp_name)
        upstream_port = loadgen.free_port()
        with Process(
            [sys.executable, "-m", "bench.upstream", "--port", str(upstream_port), "--chunks", str(CHUNKS)]
        ) as upstream:
            loadgen.wait_http(f"http://127.0.0.1:{upstream_port}/", upstream.popen)
            direct_case = Case("direct", f"http://127.0.0.1:{upstream_port}/v1/chat/completions", PLATFORM_KEY, [])
            direct = measure(direct_case, duration, warmup, levels)
            upstream_cpu = loadgen.cpu_seconds(upstream.pid)
            direct_ops = sum(r["ops"] + r["warm"] for k, r in direct.items() if k != "rss")
            rows += _rows("direct", direct, server=False)
            rows.append(
                Row(
                    SCENARIO,
                    "direct",
                    "upstream CPU per request",
                    upstream_cpu * 1000 / max(1, direct_ops),
                    "ms",
                    note="the instant upstream itself, for scale",
                )
            )

            floor_port = loadgen.free_port()
            with Process(
                [
                    sys.executable,
                    "-m",
                    "bench.passthrough",
                    "--port",
                    str(floor_port),
                    "--upstream",
                    f"http://127.0.0.1:{upstream_port}",
                ]
            ) as floor_process:
                loadgen.wait_http(f"http://127.0.0.1:{floor_port}/", floor_process.popen)
                floor_case = Case(
                    "passthrough",
                    f"http://127.0.0.1:{floor_port}/v1/chat/completions",
                    PLATFORM_KEY,
                    [floor_process.pid],
                )
                floor = measure(floor_case, duration, warmup, levels)
            rows += _rows("bare aiohttp passthrough", floor, server=True)

            results: dict[str, dict[str, Any]] = {}
            profile_seconds = None if smoke else 8.0
            name = "pricegraph sqlite"
            results[name], more = _pricegraph_case(
                name,
                f"sqlite+aiosqlite:///{tmp / 'gateway.db'}",
                upstream_port,
                tmp,
                duration,
                warmup,
                levels,
                direct,
                floor,
                profile_seconds,
            )
            rows += more
            if loadgen.pg_reachable():
                name = "pricegraph postgresql"
                with loadgen.pg_database("pricegraph_bench_gw") as url:
                    results[name], more = _pricegraph_case(
                        name, url, upstream_port, tmp, duration, warmup, levels, direct, floor, profile_seconds
                    )
                rows += more
            else:
                notes.append("PostgreSQL not reachable at 127.0.0.1:5432: its case skipped")

            if smoke:
                notes.append("LiteLLM skipped in smoke")
            else:
                rows += _against_litellm(results, upstream_port, tmp, duration, warmup, notes)
    rows += [Row(SCENARIO, "notes", "note", 0, "", note=note) for note in notes]
    return rows


def _against_litellm(
    results: dict[str, dict[str, Any]], upstream: int, tmp: Path, duration: float, warmup: float, notes: list[str]
) -> list[Row]:
    binary = _litellm_installed(notes)
    if binary is None:
        return []
    try:
        process, case = _litellm(binary, upstream, tmp)
        with process:
            _check(case)
            _check(case, stream=True)
            lite = measure(case, duration, warmup, LEVELS)
    except Exception as exc:  # noqa: BLE001 — a LiteLLM that will not start or answer is a note
        notes.append(f"LiteLLM skipped: {str(exc).splitlines()[0][:200]}")
        return []
    rows = _rows("litellm", lite, server=True)
    rows.append(Row(SCENARIO, "litellm", "resident memory after run", lite["rss"], "MB"))
    for name, measured in results.items():
        for level in LEVELS:
            case = f"{name} vs litellm c={level}"
            rows.append(
                Row(
                    SCENARIO,
                    case,
                    "requests/s ratio",
                    measured[level]["rps"] / lite[level]["rps"],
                    "x",
                    ">= 15",
                    note=f"{measured[level]['rps']:.0f} vs {lite[level]['rps']:.0f} req/s, one worker each",
                )
            )
            rows.append(
                Row(
                    SCENARIO,
                    case,
                    "CPU per request ratio",
                    lite[level]["cpu_ms"] / measured[level]["cpu_ms"],
                    "x",
                    note="litellm CPU ms / pricegraph CPU ms",
                )
            )
    return rows
