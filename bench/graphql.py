"""GraphQL reads against the REST shim answering the same data, over HTTP at concurrency 16 against
`python server.py` (SQLite, seed catalog, an enterprise key), loaded from another process; and the SQL
statements per GraphQL query for 10 models vs all models (an in-process app on the same database file,
counted with a `before_cursor_execute` listener: constant is the goal)."""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.results import RESULTS_DIR, Row

SCENARIO = "graphql"
CONCURRENCY = 16
MODEL = "llama-3.3-70b"
AREAS = {
    "graphql-core": ("graphql/",),
    "strawberry": ("strawberry/",),
    "strawberry extensions (limiters)": ("strawberry/extensions/",),
    "parse+validate": ("graphql/language/", "graphql/validation/"),
    "SQLAlchemy": ("sqlalchemy/",),
    "aiosqlite": ("aiosqlite/",),
    "h11 (HTTP parsing, no httptools)": ("h11/",),
    "callers/admission": ("datasources/callers.py", "datasources/quotas.py"),
}
PAGE = 1000  # resolvers/catalog.py: MODELS.maximum
PRICE_FIELDS = (
    "variant providerModelId inputPer1m outputPer1m blendedPer1m contextWindow status supportsVision "
    "supportsTools updatedAt"
)
SMALL = f'{{ prices(model: "{MODEL}") {{ {PRICE_FIELDS} model {{ slug }} provider {{ slug }} }} }}'
MODEL_FRAGMENT = (
    f"fragment M on Model {{ slug displayName family paramsB contextWindow isBenchmark providerCount "
    f"prices {{ {PRICE_FIELDS} provider {{ slug name }} }} }}"
)


def models_query(count: int) -> str:
    """Every model with all its prices and providers: pages of PAGE under aliases, in one operation."""
    pages = [
        f"p{i}: models(first: {min(PAGE, count - i * PAGE)}, offset: {i * PAGE}) {{ ...M }}"
        for i in range(math.ceil(count / PAGE))
    ]
    return "{ " + " ".join(pages) + " } " + MODEL_FRAGMENT


FRESH = {"cache-control": "no-cache"}  # answered afresh, not from the response cache


def _graphql_op(base: str, key: str, query: str, fresh: bool = True) -> list[dict[str, Any]]:
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}", **(FRESH if fresh else {})}
    return [{"method": "POST", "url": f"{base}/graphql", "body": json.dumps({"query": query}), "headers": headers}]


def _rest_op(base: str, key: str, *paths: str, fresh: bool = True) -> list[dict[str, Any]]:
    headers = {"authorization": f"Bearer {key}", **(FRESH if fresh else {})}
    return [{"method": "GET", "url": f"{base}{path}", "headers": headers} for path in paths]


def _check(op: list[dict[str, Any]]) -> dict[str, Any]:
    import httpx

    answer: dict[str, Any] = {}
    for request in op:
        response = httpx.request(
            request["method"], request["url"], content=request.get("body"), headers=request["headers"], timeout=60
        )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"{request['url']}: {response.status_code} {str(body)[:400]}")
        answer.update(body)
    return answer


async def statements(database: str, queries: dict[str, str]) -> dict[str, int]:
    """SQL statements per GraphQL operation, in-process on the database file the server used."""
    import httpx
    from sqlalchemy import event

    from datasources import accounts
    from datasources.db.engine import database_url
    from datasources.db.models import Plan
    from server import Settings, create_app

    app = create_app(Settings(database_url=database_url(database), migrate_on_start=False, seed_on_start=False))
    counts: dict[str, int] = {}
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker() as session, session.begin():
            _, issued = await accounts.create_account(session, Plan.ENTERPRISE, Decimal(0), "bench-sql")
        seen = [0]

        def count(*_: Any) -> None:
            seen[0] += 1

        event.listen(app.state.engine.sync_engine, "before_cursor_execute", count)
        headers = {"authorization": f"Bearer {issued.secret}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bench") as client:
            for name, query in queries.items():
                for _ in range(2):  # the second run is counted: caches (the key's) are warm as under load
                    seen[0] = 0
                    response = await client.post("/graphql", json={"query": query}, headers=headers)
                    if response.status_code != 200 or response.json().get("errors"):
                        raise RuntimeError(f"{name}: {response.text[:300]}")
                counts[name] = seen[0]
    return counts


def run(smoke: bool) -> list[Row]:
    duration, warmup = (0.6, 0.2) if smoke else (15.0, 2.0)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pricegraph-bench-") as tmp:
        database = f"sqlite+aiosqlite:///{Path(tmp) / 'graphql.db'}"
        env = {"DATABASE_URL": database}
        key = loadgen.create_key(env, "enterprise", "0")
        port = loadgen.free_port()
        base = f"http://127.0.0.1:{port}"
        with loadgen.start_pricegraph(env, port) as server:
            model_count = len(_check(_rest_op(base, key, "/api/v1/models"))["models"])
            pairs = {
                "one model's prices": (
                    _graphql_op(base, key, SMALL),
                    _rest_op(base, key, f"/api/v1/prices?model={MODEL}"),
                ),
                "one model's prices, from the response cache": (
                    _graphql_op(base, key, SMALL, fresh=False),
                    _rest_op(base, key, f"/api/v1/prices?model={MODEL}", fresh=False),
                ),
                f"all {model_count} models, prices, providers": (
                    _graphql_op(base, key, models_query(model_count)),
                    _rest_op(base, key, "/api/v1/prices", "/api/v1/models"),
                ),
            }
            for label, (graphql_op, rest_op) in pairs.items():
                small = "all" not in label
                got = _check(graphql_op)
                if smoke and not small:  # checked above; its load takes seconds per request on this code
                    rows.append(
                        Row(SCENARIO, f"graphql {label}", "load skipped in smoke", 0, "", note="answer checked once")
                    )
                    continue
                priced = (
                    sum(
                        len(m["prices"])
                        for page in got["data"].values()
                        for m in (page if isinstance(page, list) else [])
                    )
                    if not small
                    else len(got["data"]["prices"])
                )
                rest_priced = len(_check(rest_op)["prices"])
                measured, cpu = {}, {}
                for surface, op in (("graphql", graphql_op), ("rest", rest_op)):
                    result, cpu_ms = loadgen.server_cpu_per_request(
                        server.pid, lambda op=op: loadgen.load([op], CONCURRENCY, duration, warmup)
                    )
                    measured[surface], cpu[surface] = result, cpu_ms
                    note = f"{result['errors']} errors {result['statuses']}" if result["errors"] else ""
                    case = f"{surface} {label} c={CONCURRENCY}"
                    if surface == "rest" and len(op) > 1:
                        case += " (2 requests)"
                    target_rps = ">= 1000" if small and surface == "graphql" else ""
                    target_cpu = "<= 1" if small and surface == "rest" else ""
                    target_p99 = "<= 10" if small and surface == "graphql" else ""
                    rows += [
                        Row(
                            SCENARIO,
                            case,
                            "requests/s",
                            result["rps"],
                            "req/s",
                            target_rps,
                            note,
                            extra={k: result[k] for k in ("ops", "p50", "p90", "p99", "errors")},
                        ),
                        Row(SCENARIO, case, "p50 latency", result["p50"], "ms"),
                        Row(SCENARIO, case, "p99 latency", result["p99"], "ms", target_p99),
                        Row(SCENARIO, case, "server CPU per request", cpu_ms, "ms", target_cpu),
                    ]
                if small and not smoke and (measured["graphql"]["rps"] < 1000 or measured["graphql"]["p99"] > 10):
                    spots = loadgen.py_spy(
                        server.pid,
                        8.0,
                        lambda op=graphql_op: loadgen.load([op], CONCURRENCY, 8.0, 0.2),
                        RESULTS_DIR / "graphql-profile.svg",
                        AREAS,
                    )
                    rows.append(Row(SCENARIO, f"graphql {label}", "profile (py-spy, c=16)", 0, "", note=spots))
                ratio = measured["rest"]["rps"] / measured["graphql"]["rps"] if measured["graphql"]["rps"] else math.inf
                few = min(measured["rest"]["ops"], measured["graphql"]["ops"])
                rows.append(
                    Row(
                        SCENARIO,
                        f"graphql vs rest: {label}",
                        "REST/GraphQL req/s ratio",
                        ratio,
                        "x",
                        "<= 2",
                        note=f"GraphQL {priced} prices vs REST {rest_priced} prices"
                        + (f"; only {few} operations measured: use the CPU ratio" if few < 30 else ""),
                    )
                )
                rows.append(
                    Row(
                        SCENARIO,
                        f"graphql vs rest: {label}",
                        "GraphQL/REST server CPU ratio",
                        cpu["graphql"] / cpu["rest"],
                        "x",
                        "<= 1.5",
                        note="server CPU ms per operation",
                    )
                )
        counts = asyncio.run(
            statements(
                database,
                {
                    "small": SMALL,
                    "10 models": models_query(10),
                    f"all {model_count} models": models_query(model_count),
                },
            )
        )
    for name, count in counts.items():
        target = "constant" if "models" in name else ""
        rows.append(
            Row(
                SCENARIO,
                f"SQL per query: {name}",
                "statements",
                count,
                "stmts",
                target,
                note="in-process, before_cursor_execute; key cache warm",
            )
        )
    return rows
