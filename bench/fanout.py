"""Live price fan-out: N websocket subscribers (graphql-transport-ws, `priceChanged` without a filter)
spread over client processes, against a `python server.py` subprocess on a fresh SQLite file. One
price tick recorded through `recordPrices` (ADMIN_TOKEN), then one tick per second: delivery time to
every subscriber, server CPU per tick, server memory per connection, subscribers that missed a tick.

    .venv/bin/python bench/fanout.py [--smoke] [--sizes 1000 5000 10000] [--series-seconds 10]

Latency is measured from just before the mutation is sent (so it includes the mutation's own request
and commit) to the moment a client process has the message, with `time.time()` on both sides (one
host). Clients turn permessage-deflate off, so the server's CPU is spent on GraphQL and framing only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.results import Row

SCENARIO = "fanout"
ROOT = Path(__file__).resolve().parents[1]
ADMIN = "bench-admin-token"
QUERY = (
    "subscription { priceChanged { model provider variant inputPer1m outputPer1m blendedPer1m "
    "previousBlendedPer1m changePct status observedAt } }"
)
RECORD = "mutation ($prices: [PriceInput!]!) { recordPrices(prices: $prices) { ticks { model } unchanged } }"
MODEL, PROVIDER, OUTPUT = "gpt-4o", "openai", "10"
MARKER = '"inputPer1m":"'
TARGET_P99_MS = 250.0


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the server --------------------------------------------------------------------------------------


class Server:
    def __init__(self, folder: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/fanout.db",
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "ADMIN_TOKEN": ADMIN,
            "WS_MAX_CONNECTIONS": "20000",
            "LOG_LEVEL": "WARNING",
        }
        self.log = open(f"{folder}/server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "server.py"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see {folder}/server.log")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the server did not answer /healthz within 120 s")

    def stat(self) -> tuple[float, int]:
        """CPU seconds used so far and resident memory in bytes."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        rss = int(fields[21]) * resource.getpagesize()
        return cpu, rss

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def record(client: httpx.Client, server: Server, input_per_1m: str) -> float:
    """Records one price change; returns time.time() just before the request went out."""
    rows = [{"model": MODEL, "provider": PROVIDER, "inputPer1m": input_per_1m, "outputPer1m": OUTPUT}]
    sent = time.time()
    answer = client.post(
        f"{server.url}/graphql",
        json={"query": RECORD, "variables": {"prices": rows}},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=60,
    )
    body = answer.json()
    assert "errors" not in body and body["data"]["recordPrices"]["ticks"], body
    return sent


# ---- a client process --------------------------------------------------------------------------------


def client_main(url: str, count: int, conn: Any, received: Any) -> None:
    raise_fd_limit()
    asyncio.run(_client(url, count, conn, received))


async def _client(url: str, count: int, conn: Any, received: Any) -> None:
    from websockets.asyncio.client import connect

    arrivals: dict[str, list[float]] = {}
    sockets: list[Any] = []
    failed: list[str] = []
    gate = asyncio.Semaphore(64)
    init = json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {ADMIN}"}})
    subscribe = json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}})

    async def reader(ws: Any) -> None:
        try:
            async for message in ws:
                now = time.time()
                at = message.find(MARKER)
                if at >= 0:
                    start = at + len(MARKER)
                    arrivals.setdefault(message[start : message.index('"', start)], []).append(now)
                    received.value += 1
        except Exception:  # noqa: BLE001, S110 - a dropped connection shows up as missed ticks
            pass

    async def open_one() -> None:
        async with gate:
            try:
                ws = await connect(
                    url,
                    subprotocols=["graphql-transport-ws"],
                    compression=None,  # type: ignore[list-item]
                    open_timeout=120,
                    ping_interval=None,
                    max_queue=None,
                )
                await ws.send(init)
                ack = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no ack: {ack}")
                await ws.send(subscribe)
            except Exception as exc:  # noqa: BLE001
                failed.append(f"{type(exc).__name__}: {exc}"[:200])
                return
            sockets.append(ws)
            asyncio.get_running_loop().create_task(reader(ws))

    await asyncio.gather(*(open_one() for _ in range(count)))
    loop = asyncio.get_running_loop()
    conn.send({"connected": len(sockets), "failed": len(failed), "errors": failed[:3]})
    await loop.run_in_executor(None, conn.recv)  # "report"
    alive = sum(1 for ws in sockets if ws.close_code is None)
    conn.send({"arrivals": arrivals, "alive": alive})
    await loop.run_in_executor(None, conn.recv)  # "close"
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


# ---- one size ----------------------------------------------------------------------------------------


@dataclass
class Clients:
    procs: list[Any]
    pipes: list[Any]
    counters: list[Any]

    def received(self) -> int:
        return sum(c.value for c in self.counters)


def start_clients(url: str, total: int) -> tuple[Clients, int, int, list[str]]:
    ctx = multiprocessing.get_context("spawn")
    procs_n = max(1, min(6, total // 1500))
    sizes = [total // procs_n + (1 if i < total % procs_n else 0) for i in range(procs_n)]
    clients = Clients([], [], [])
    for size in sizes:
        mine, theirs = ctx.Pipe()
        counter = ctx.Value("q", 0, lock=False)
        proc = ctx.Process(target=client_main, args=(url, size, theirs, counter), daemon=True)
        proc.start()
        clients.procs.append(proc)
        clients.pipes.append(mine)
        clients.counters.append(counter)
    connected = failed = 0
    errors: list[str] = []
    for pipe in clients.pipes:
        status = pipe.recv()
        connected += status["connected"]
        failed += status["failed"]
        errors += status["errors"]
    return clients, connected, failed, errors


def wait_for(clients: Clients, expected: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if clients.received() >= expected:
            return True
        time.sleep(0.005)
    return False


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def wait_idle(server: Server, seconds: float = 1.0, timeout: float = 120) -> None:
    """Until the server spends less than 5% of a core over `seconds` (every subscription registered)."""
    deadline = time.time() + timeout
    cpu, _ = server.stat()
    while time.time() < deadline:
        time.sleep(seconds)
        now, _ = server.stat()
        if now - cpu < 0.05 * seconds:
            return
        cpu = now


def bench_size(total: int, series_seconds: int) -> list[Row]:
    rows: list[Row] = []
    case = f"{total:,} subscribers"
    with tempfile.TemporaryDirectory(prefix="pricegraph-fanout-", dir="/tmp") as folder:
        server = Server(folder)
        clients: Clients | None = None
        try:
            url = server.url.replace("http://", "ws://") + "/graphql"
            with httpx.Client() as http:
                record(http, server, "1.9999")  # warms the mutation path; nobody listens yet
                wait_idle(server)
                cpu0, rss0 = server.stat()
                began = time.time()
                clients, connected, failed, errors = start_clients(url, total)
                setup = time.time() - began
                wait_idle(server)
                cpu1, rss1 = server.stat()
                print(
                    f"  {case}: {connected:,} connected, {failed} failed in {setup:.1f} s"
                    + (f" ({errors[0]})" if errors else ""),
                    flush=True,
                )
                rows.append(
                    Row(
                        SCENARIO,
                        case,
                        "connected",
                        connected,
                        "conns",
                        f"= {total}",
                        f"{failed} failed; {len(clients.procs)} client processes; set up in {setup:.1f} s",
                    )
                )
                rows.append(
                    Row(
                        SCENARIO,
                        case,
                        "server memory per connection",
                        (rss1 - rss0) / max(connected, 1),
                        "bytes",
                        "",
                        f"RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB",
                    )
                )
                rows.append(
                    Row(
                        SCENARIO,
                        case,
                        "server CPU per connection setup",
                        (cpu1 - cpu0) / max(connected, 1) * 1000,
                        "ms",
                        "",
                        "handshake, connection_init, subscribe (quota upsert)",
                    )
                )

                # a warm-up tick: every subscription is registered with the broker once this arrives
                prices: list[tuple[str, float]] = []
                n = 0

                def tick() -> None:
                    nonlocal n
                    n += 1
                    value = f"2.{n:04d}1"  # no trailing zero: the answer writes it back unchanged
                    prices.append((value, record(http, server, value)))

                tick()
                wait_for(clients, connected, 60)
                time.sleep(0.5)
                warm = clients.received()

                # one measured tick
                cpu2, _ = server.stat()
                tick()
                done = wait_for(clients, warm + connected, 60)
                cpu3, _ = server.stat()
                single_cpu = cpu3 - cpu2

                # then one tick per second
                cpu4, _ = server.stat()
                series_began = time.time()
                for s in range(series_seconds):
                    pause = series_began + s - time.time()
                    if pause > 0:
                        time.sleep(pause)
                    tick()
                wait_for(clients, warm + connected * (1 + series_seconds), 60)
                cpu5, _ = server.stat()
                time.sleep(0.5)

                alive = 0
                arrivals: dict[str, list[float]] = {}
                for pipe in clients.pipes:
                    pipe.send("report")
                for pipe in clients.pipes:
                    report = pipe.recv()
                    alive += report["alive"]
                    for value, times in report["arrivals"].items():
                        arrivals.setdefault(value, []).extend(times)
                for pipe in clients.pipes:
                    pipe.send("close")

            def latencies(value: str, sent: float) -> list[float]:
                return [(t - sent) * 1000 for t in arrivals.get(value, [])]

            first = latencies(*prices[1])
            rows += [
                Row(SCENARIO, case + ", one tick", "p50", _pct(first, 0.5), "ms", "", "from mutation sent to received"),
                Row(SCENARIO, case + ", one tick", "p99", _pct(first, 0.99), "ms", f"<= {TARGET_P99_MS:g}", ""),
                Row(
                    SCENARIO,
                    case + ", one tick",
                    "max",
                    max(first, default=float("nan")),
                    "ms",
                    "",
                    "" if done else "not every subscriber had it within 60 s",
                ),
                Row(SCENARIO, case + ", one tick", "missed", connected - len(first), "subscribers", "= 0", ""),
                Row(
                    SCENARIO,
                    case + ", one tick",
                    "server CPU",
                    single_cpu * 1000,
                    "ms",
                    "",
                    f"{single_cpu * 1e6 / max(connected, 1):.1f} us per subscriber",
                ),
            ]
            series = prices[2:]
            if not series:
                for r in rows:
                    print(f"  {r.case}: {r.metric} {r.value:,.1f} {r.unit}", flush=True)
                return rows
            every = [x for value, sent in series for x in latencies(value, sent)]
            missed = sum(connected - len(arrivals.get(value, [])) for value, _ in series)
            note = f"{len(series)} ticks at 1/s"
            rows += [
                Row(SCENARIO, case + f", 1 tick/s x {series_seconds}s", "p50", _pct(every, 0.5), "ms", "", note),
                Row(
                    SCENARIO,
                    case + f", 1 tick/s x {series_seconds}s",
                    "p99",
                    _pct(every, 0.99),
                    "ms",
                    f"<= {TARGET_P99_MS:g}",
                    note,
                ),
                Row(
                    SCENARIO,
                    case + f", 1 tick/s x {series_seconds}s",
                    "max",
                    max(every, default=float("nan")),
                    "ms",
                    "",
                    note,
                ),
                Row(
                    SCENARIO,
                    case + f", 1 tick/s x {series_seconds}s",
                    "missed",
                    missed,
                    "deliveries",
                    "= 0",
                    f"{alive:,} of {connected:,} connections still open at the end",
                ),
                Row(
                    SCENARIO,
                    case + f", 1 tick/s x {series_seconds}s",
                    "server CPU",
                    (cpu5 - cpu4) / max(time.time() - series_began, 1e-9) * 100,
                    "% of a core",
                    "",
                    note,
                ),
            ]
            for r in rows[-10:]:
                print(f"  {r.case}: {r.metric} {r.value:,.1f} {r.unit}", flush=True)
        finally:
            if clients is not None:
                for proc in clients.procs:
                    proc.join(timeout=30)
                    if proc.is_alive():
                        proc.terminate()
            server.stop()
    return rows


def run(smoke: bool, sizes: list[int] | None = None, series_seconds: int | None = None) -> list[Row]:
    raise_fd_limit()  # inherited by the server and the client processes
    if smoke:
        return bench_size(50, series_seconds or 0)
    rows: list[Row] = []
    for total in sizes or [1000, 5000, 10000]:
        rows += bench_size(total, 10 if series_seconds is None else series_seconds)
    return rows


if __name__ == "__main__":
    from bench.results import table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="50 subscribers, one tick")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--series-seconds", type=int)
    args = parser.parse_args()
    print(table(run(args.smoke, args.sizes, args.series_seconds)))
