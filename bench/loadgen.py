"""Load from a separate process, and the plumbing every HTTP scenario shares.

`python -m bench.loadgen` reads a JSON spec on stdin and prints one JSON result on stdout:

    {"ops": [[{"method": "POST", "url": "...", "headers": {...}, "body": "..."}], ...],
     "concurrency": 16, "duration": 15.0, "warmup": 1.0}

Each of `concurrency` workers runs operations back to back over its own keep-alive connection (aiohttp);
an operation is a list of requests made one after the other (REST's "prices + models" is two) and its
latency is from the first request's start to the last byte of the last answer. Operations that start in
the warm-up are not measured; every operation started in the window is, and the window's wall time runs
until the last of them ends (so requests/s is honest when an answer takes longer than the window). For every operation the time to the first body byte of its first answer and
the number of body reads are kept too (streams).

The rest of the module is used by the scenarios in the parent process: free ports, subprocess servers,
the CPU time and resident memory of a process from /proc, and a throwaway PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


# ---- the load client (runs in its own process) ----------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    ops: list[list[dict[str, Any]]] = spec["ops"]
    concurrency: int = spec["concurrency"]
    warmup: float = spec.get("warmup", 1.0)
    duration: float = spec["duration"]
    latencies: list[float] = []
    ttfbs: list[float] = []
    reads: list[int] = []
    statuses: dict[str, int] = {}
    warm = errors = 0
    prepared = [
        [(r["method"], r["url"], r.get("headers", {}), (r.get("body") or "").encode() or None) for r in op]
        for op in ops
    ]
    connector = aiohttp.TCPConnector(
        limit=concurrency, limit_per_host=concurrency, force_close=False, enable_cleanup_closed=False
    )
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False, skip_auto_headers=("User-Agent",)
    ) as session:
        start = time.perf_counter()
        measure_from, end = start + warmup, start + warmup + duration

        async def worker(offset: int) -> None:
            nonlocal warm, errors
            i = offset
            while True:
                began = time.perf_counter()
                if began >= end:
                    return
                op = prepared[i % len(prepared)]
                i += 1
                first_byte = None
                count = 0
                ok = True
                try:
                    for method, url, headers, body in op:
                        async with session.request(method, url, data=body, headers=headers) as response:
                            statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
                            ok = ok and response.status == 200
                            while True:
                                chunk = await response.content.readany()
                                if not chunk:
                                    break
                                if first_byte is None:
                                    first_byte = time.perf_counter()
                                count += 1
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                    statuses["error"] = statuses.get("error", 0) + 1
                done = time.perf_counter()
                if not ok:
                    errors += 1
                if began < measure_from:
                    warm += 1
                else:  # started in the window: measured however long it takes (slow answers count too)
                    latencies.append(done - began)
                    ttfbs.append((first_byte or done) - began)
                    reads.append(count)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        wall = time.perf_counter() - measure_from
    ms = [x * 1000 for x in latencies]
    first = [x * 1000 for x in ttfbs]
    return {
        "ops": len(latencies),
        "warm": warm,
        "errors": errors,
        "statuses": statuses,
        "wall": wall,
        "rps": len(latencies) / wall if wall > 0 else 0.0,
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "mean": sum(ms) / len(ms) if ms else float("nan"),
        "ttfb_p50": percentile(first, 50),
        "ttfb_p99": percentile(first, 99),
        "reads_mean": sum(reads) / len(reads) if reads else 0.0,
    }


def main() -> None:
    spec = json.load(sys.stdin)
    print(json.dumps(asyncio.run(_load(spec))))


# ---- helpers for the scenarios (parent process) ---------------------------------------------------


def load(ops: list[list[dict[str, Any]]], concurrency: int, duration: float, warmup: float = 1.0) -> dict[str, Any]:
    """Run the load client in its own process and return its result."""
    spec = {"ops": ops, "concurrency": concurrency, "duration": duration, "warmup": warmup}
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=duration + warmup + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load client failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_http(url: str, process: subprocess.Popen[Any] | None = None, timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


class Process:
    """A subprocess with its output in a temporary log file, stopped (by its own pid) on exit."""

    def __init__(
        self, args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT, inherit: bool = True
    ) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False)  # noqa: SIM115
        environment = {**os.environ, **(env or {})} if inherit else dict(env or {})
        self.popen = subprocess.Popen(
            args, env=environment, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 20) -> str:
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_cli(args: list[str], env: dict[str, str]) -> str:
    """Run `python server.py ...` and return its standard output."""
    done = subprocess.run(
        [sys.executable, "server.py", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"server.py {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def create_key(env: dict[str, str], plan: str = "enterprise", credit: str = "1000000") -> str:
    out = server_cli(["accounts", "create", "--plan", plan, "--credit", credit, "--name", "bench"], env)
    for line in out.splitlines():
        if line.startswith("api key: "):
            return line.removeprefix("api key: ").strip()
    raise RuntimeError(f"no api key in: {out}")


def start_pricegraph(env: dict[str, str], port: int) -> Process:
    """`python server.py serve` on a port; waits for /healthz."""
    process = Process([sys.executable, "server.py", "serve", "--port", str(port)], {"LOG_LEVEL": "WARNING", **env})
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process.popen)
    except RuntimeError as exc:
        tail = process.tail()
        process.stop()
        raise RuntimeError(f"{exc}\n{tail}") from None
    return process


def pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError:
        return False

    async def probe() -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(PG_SERVER, timeout=3)
        except Exception:  # noqa: BLE001 — any failure means "not usable"
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@contextlib.contextmanager
def pg_database(prefix: str = "pricegraph_bench") -> Iterator[str]:
    """A fresh PostgreSQL database for one run (dropped afterwards); yields its postgresql+asyncpg URL."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(PG_SERVER)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def server_cpu_per_request(pid: int, run: Any) -> tuple[dict[str, Any], float]:
    """Run `run()` (a load) and return its result and the server's CPU ms per operation, warm-up included."""
    before = cpu_seconds(pid)
    result = run()
    spent = cpu_seconds(pid) - before
    total = result["ops"] + result["warm"]
    return result, (spent * 1000 / total if total else float("nan"))


PY_SPY = Path(sys.executable).with_name("py-spy")


def py_spy(
    pid: int, seconds: float, run_load: Any, svg: Path, areas: dict[str, tuple[str, ...]], skip: tuple[str, ...] = ()
) -> str:
    """Sample a server with py-spy (--gil: Python CPU only) while `run_load()` runs, twice: once for a flame
    graph at `svg`, once for collapsed stacks summarised by `hot_spots`."""
    spy = str(PY_SPY) if PY_SPY.exists() else shutil.which("py-spy")
    if spy is None:
        return "py-spy not installed (.venv/bin/pip install py-spy)"
    svg.parent.mkdir(exist_ok=True)
    raw = Path(tempfile.mkstemp(suffix=".txt")[1])
    try:
        for fmt, out in (("flamegraph", svg), ("raw", raw)):
            process = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, int(seconds))),
                    "--rate",
                    "250",
                    "--format",
                    fmt,
                    "--output",
                    str(out),
                    "--nonblocking",
                    "--gil",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(0.5)
            run_load()
            _, err = process.communicate(timeout=60)
            if process.returncode != 0:
                return f"py-spy failed: {err.decode()[-300:].strip()}"
        return hot_spots(raw.read_text(), areas, skip)
    finally:
        raw.unlink(missing_ok=True)


def _frame(frame: str) -> str:
    """'send (aiohttp/client.py:123)' -> 'aiohttp/client.py:send' with the path cut after site-packages."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{where}:{name}"


def hot_spots(collapsed: str, areas: dict[str, tuple[str, ...]], skip: tuple[str, ...] = (), top: int = 8) -> str:
    """Self time of the hottest frames and inclusive time of the biggest areas, from py-spy's raw output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")[1:]]  # the first frame is the thread
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return "py-spy: no samples"

    def area(prefixes: tuple[str, ...]) -> float:
        hits = sum(
            int(line.rpartition(" ")[2])
            for line in collapsed.splitlines()
            if line.rpartition(" ")[2].isdigit() and any(p in line for p in prefixes)
        )
        return 100 * hits / total

    self_part = ", ".join(f"{f} {100 * n / total:.0f}%" for f, n in own.most_common(top))
    area_part = ", ".join(f"{name} {area(p):.0f}%" for name, p in areas.items())
    project = [
        (f, n)
        for f, n in inclusive.most_common()
        if f.startswith(("routing/", "datasources/", "resolvers/", "schema/")) and not f.endswith(skip)
    ][:10]
    project_part = ", ".join(f"{f} {100 * n / total:.0f}%" for f, n in project)
    return (
        f"py-spy --gil, {total} samples. self: {self_part}. inclusive by area: {area_part}. "
        f"project code (inclusive): {project_part}"
    )


if __name__ == "__main__":
    main()
