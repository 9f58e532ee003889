"""Heavy GraphQL never holds the server: `/healthz` answers within 100 ms while the heaviest query a plan
admits runs, its memory stays bounded, and a few hundred fuzzed queries give no 5xx and no answer
slower than the deadline.

Against `python server.py` in a process of its own (so that its memory can be read and its event loop
is not the test's), on a fresh database.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes, queries

from datasources.db.models import Plan
from datasources.plans import RULES
from resolvers.root import schema
from schema.cost import estimate
from schema.limits import GraphQLLimits
from tests.conftest import Databases, free_port
from tests.test_query_cost import values

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "operator-token-for-responsiveness-0123456789"
HEALTHZ_LIMIT = 0.100  # seconds
# This machine is itself a virtual one, with two cores the server, the watcher and the database share:
# now and then its scheduler alone delays one answer past 100 ms (seen once in a few thousand, with the
# suite's databases busy beside it). A held event loop delays answer after answer while the query runs.
SPIKES_ALLOWED = 1 / 1000
SPIKE_CEILING = 0.300
MEMORY_BOUND_MB = 300  # above the idle server, for the heaviest admitted query
FIELDS = (
    "id variant providerModelId inputPer1m outputPer1m blendedPer1m contextWindow maxOutputTokens "
    "supportsVision supportsTools status source updatedAt confirmedAt "
    "model { slug displayName family paramsB contextWindow isBenchmark providerCount } "
    "provider { slug name signupUrl modelCount }"
)


@dataclass
class Server:
    url: str
    pid: int

    def memory_mb(self, field_name: str = "VmRSS") -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith(field_name + ":"))
        return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("responsive")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(PORT=str(port), ADMIN_TOKEN=ADMIN_TOKEN, LOG_LEVEL="WARNING")
    databases = Databases("postgresql", workdir)
    if os.environ.get("TEST_DATABASE_URL"):
        env["DATABASE_URL"] = asyncio.run(databases.new()).render_as_string(hide_password=False)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "server.py")],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, "the server exited"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not answer /healthz within 120 s")
        yield Server(base, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if os.environ.get("TEST_DATABASE_URL"):
            asyncio.run(databases.drop_all())


WATCHER = """
import json, sys, threading, time, httpx
url, stop, latencies, failures = sys.argv[1], threading.Event(), [], []
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
with httpx.Client(timeout=10) as client:
    while not stop.is_set():
        started = time.perf_counter()
        response = client.get(url + "/healthz")
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            failures.append(response.text)
        stop.wait(0.01)
print(json.dumps({"latencies": latencies, "failures": failures}))
"""


@dataclass
class HealthWatch:
    """Asks `/healthz` every 10 ms, from a process of its own (the test's own work would otherwise hold
    the watcher up), and keeps how long each answer took."""

    url: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __enter__(self) -> HealthWatch:
        self._process = subprocess.Popen(
            [sys.executable, "-c", WATCHER, self.url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        output, _ = self._process.communicate("", timeout=60)
        found = json.loads(output)
        self.latencies, self.failures = found["latencies"], found["failures"]

    def assert_responsive(self, at_least: int) -> None:
        assert len(self.latencies) >= at_least and not self.failures, self.failures
        slow = [latency for latency in self.latencies if latency >= HEALTHZ_LIMIT]
        assert len(slow) <= max(1, len(self.latencies) * SPIKES_ALLOWED), sorted(self.latencies)[-10:]
        assert max(self.latencies) < SPIKE_CEILING, sorted(self.latencies)[-10:]


def heaviest_admitted(budget: int) -> str:
    """As many pages of every price as the budget admits (the aliases limit allows 30)."""
    best = ""
    for aliases in range(1, 31):
        query = "{ " + " ".join(f"a{i}: prices(first: 1000) {{ {FIELDS} }}" for i in range(aliases)) + " }"
        cost = estimate(schema._schema, parse(query))
        assert cost is not None
        if cost > budget:
            break
        best = query
    return best


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


def test_the_heaviest_admitted_query_leaves_the_server_responsive_and_bounded(server: Server) -> None:
    budget = RULES[Plan.ENTERPRISE].query_cost
    query = heaviest_admitted(budget)
    cost = estimate(schema._schema, parse(query))
    assert cost is not None and budget * 0.8 < cost <= budget
    idle = server.memory_mb()
    with HealthWatch(server.url) as watch:
        response = httpx.post(
            f"{server.url}/graphql",
            json={"query": query},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=120,
        )
    body = response.json()
    assert response.status_code == 200
    if body.get("data") is not None:  # it finished within the deadline: a whole answer
        assert "errors" not in body and values(body["data"]) == cost
    else:  # a slower machine: stopped at the deadline
        assert codes(body) == ["DEADLINE_EXCEEDED"]
    watch.assert_responsive(at_least=20)
    assert server.memory_mb("VmHWM") - idle < MEMORY_BOUND_MB


def _custom_scalars() -> dict[str, st.SearchStrategy[Any]]:
    moments = st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: nodes.String(d.isoformat()))
    return {
        "DateTime": moments,
        "Date": st.dates().map(nodes.String),
        "Decimal": st.decimals(allow_nan=False, allow_infinity=False, places=4).map(nodes.String),
        "BigInt": st.integers(min_value=0, max_value=2**40).map(nodes.Int),
    }


FUZZED = queries(schema.as_str(), custom_scalars=_custom_scalars())


def test_fuzzed_queries_give_no_server_error_and_never_outlast_the_deadline(server: Server) -> None:
    deadline = GraphQLLimits().deadline
    slowest: list[float] = []
    seen = {"answered": 0, "refused": 0}

    @settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(query=FUZZED, keyed=st.booleans(), address=st.integers(1, 250))
    def check(query: str, keyed: bool, address: int) -> None:
        headers = {"X-Forwarded-For": f"192.0.2.{address}"}
        if keyed:
            headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        started = time.perf_counter()
        response = httpx.post(f"{server.url}/graphql", json={"query": query}, headers=headers, timeout=60)
        slowest.append(time.perf_counter() - started)
        assert response.status_code < 500, (query, response.text)
        body = response.json()
        for error in body.get("errors") or []:
            assert error["extensions"]["code"] != "INTERNAL_SERVER_ERROR", (query, error)
        cost = (body.get("extensions") or {}).get("cost")
        if body.get("data") and cost:  # whatever was answered holds no more than was estimated
            assert values(body["data"]) <= cost["estimate"], query
            seen["answered"] += 1
        else:
            seen["refused"] += 1

    with HealthWatch(server.url) as watch:
        check()
    assert max(slowest) < deadline + 1
    assert seen["answered"] >= 50, seen
    watch.assert_responsive(at_least=200)
