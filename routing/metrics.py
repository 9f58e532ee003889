"""The operator's metrics in the Prometheus text format: one registry per app (`app.state.metrics`), fed by
a request middleware (HTTP only), by the gateway's observer (upstream calls, fallbacks, what it metered),
and, at scrape time, by a collector reading the app's state (leases, websockets, broker, price sources,
breakers) and by the outbox's backlog counted just before rendering.

Served at `/metrics` to `Authorization: Bearer <ADMIN_TOKEN>`; with METRICS_PORT set, only on a plain
listener of its own at HOST:METRICS_PORT, without authentication."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datasources.callers import OperatorToken, bearer_token
from datasources.credit import CreditBook
from datasources.errors import Unauthenticated
from datasources.outbox import pending_by_channel
from datasources.pricing import TokenUse
from routing.settings import Settings

log = logging.getLogger("pricegraph.metrics")

PATH = "/metrics"
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
UNMATCHED = "unmatched"
OUTBOX_TIMEOUT = 5.0  # seconds the backlog count may take before a scrape goes on without it
BREAKER_CLOSED, BREAKER_HALF_OPEN, BREAKER_OPEN = 0, 1, 2
SURFACES = (  # by the module of a route's endpoint
    ("routing.gateway", "gateway"),
    ("routing.rest", "rest"),
    ("routing.graphql", "graphql"),
    ("routing.web", "web"),
)


def surface_of(route: BaseRoute) -> str:
    if isinstance(route, Mount) and isinstance(route.app, StaticFiles):
        return "web"  # the pages' own assets
    endpoint = getattr(route, "endpoint", None) or getattr(route, "app", None)
    module = getattr(endpoint, "__module__", None) or ""
    return next((name for prefix, name in SURFACES if module.startswith(prefix)), "other")


def templates(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[BaseRoute, str]]:
    """Every route with its path template, mounts' routes under their mount's path."""
    for route in routes:
        if isinstance(route, Mount):
            inner = route.routes
            if inner:
                yield from templates(inner, prefix + route.path)
                yield route, UNMATCHED  # the mount matched, none of its routes did
            else:
                yield route, prefix + route.path + "/{path}"
        elif (path := getattr(route, "path", None)) is not None:
            yield route, prefix + str(path)


class Metrics:
    """The app's registry and the instruments updated as things happen; the gateway's observer."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "pricegraph_http_requests", "HTTP requests answered", ["surface", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "pricegraph_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer",
            ["surface", "route"],
            buckets=SECONDS,
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "pricegraph_upstream_latency_seconds",
            "Seconds from sending a request to a provider to its first byte (or its failure)",
            ["provider"],
            buckets=SECONDS,
            registry=r,
        )
        self.upstream_failures = Counter(
            "pricegraph_upstream_failures",
            "Provider attempts that failed, by reason",
            ["provider", "reason"],
            registry=r,
        )
        self.fallbacks = Counter(
            "pricegraph_gateway_fallbacks",
            "Requests that fell back from this provider to the next",
            ["provider"],
            registry=r,
        )
        self.tokens = Counter(
            "pricegraph_gateway_tokens", "Tokens metered, input or output", ["provider", "model", "kind"], registry=r
        )
        self.cost = Counter("pricegraph_gateway_cost_usd", "Cost metered, USD", ["provider", "model"], registry=r)
        self.state = StateCollector(app)
        r.register(self.state)
        self._requests: dict[tuple[int, int], tuple[BaseRoute | None, Counter, Histogram]] = {}
        self._upstream: dict[str, Histogram] = {}
        self._metered: dict[tuple[str, str], tuple[Counter, Counter, Counter]] = {}

    # ---- requests ---------------------------------------------------------------------------------

    def answered(self, route: BaseRoute | None, status: int, seconds: float) -> None:
        found = self._requests.get((id(route), status))
        if found is None:
            found = self._requests[(id(route), status)] = self._request_series(route, status)
        found[1].inc()
        found[2].observe(seconds)

    def _request_series(self, route: BaseRoute | None, status: int) -> tuple[BaseRoute | None, Counter, Histogram]:
        template, surface = UNMATCHED, "other"
        if route is not None:
            template = next((t for r, t in templates(self.app.router.routes) if r is route), UNMATCHED)
            surface = surface_of(route)
        return (  # the route is kept, so that its id stays its own
            route,
            self.requests.labels(surface, template, str(status)),
            self.request_seconds.labels(surface, template),
        )

    # ---- the gateway (routing.gateway.state.Observer) ---------------------------------------------

    def upstream(self, provider: str, seconds: float) -> None:
        child = self._upstream.get(provider)
        if child is None:
            child = self._upstream[provider] = self.upstream_seconds.labels(provider)
        child.observe(seconds)

    def failed(self, provider: str, reason: str) -> None:
        self.upstream_failures.labels(provider, reason).inc()

    def fell_back(self, provider: str) -> None:
        self.fallbacks.labels(provider).inc()

    def metered(self, provider: str, model: str, use: TokenUse, cost: Decimal) -> None:
        children = self._metered.get((provider, model))
        if children is None:
            children = self._metered[(provider, model)] = (
                self.tokens.labels(provider, model, "input"),
                self.tokens.labels(provider, model, "output"),
                self.cost.labels(provider, model),
            )
        children[0].inc(use.prompt)
        children[1].inc(use.completion)
        if cost:
            children[2].inc(float(cost))

    # ---- a scrape ---------------------------------------------------------------------------------

    async def render(self) -> bytes:
        """The text format; the outbox's backlog is counted first (the rest is read from memory)."""
        self.state.outbox = await self._outbox_backlog()
        return generate_latest(self.registry)

    async def _outbox_backlog(self) -> dict[str, int] | None:
        state = self.app.state
        sessions = getattr(state, "sessionmaker", None)
        if sessions is None:
            return None
        try:
            async with asyncio.timeout(OUTBOX_TIMEOUT), sessions() as session:
                found = await pending_by_channel(session)
        except Exception:  # noqa: BLE001 - the other series are still worth answering
            log.warning("metrics: cannot count the outbox backlog", exc_info=True)
            return None
        outbox = getattr(state, "outbox", None)
        return {**{channel: 0 for channel in getattr(outbox, "deliverers", ())}, **found}


class StateCollector:
    """What the app's state holds right now, read at each scrape (never kept up to date on the hot path)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.outbox: dict[str, int] | None = None  # set by the scrape, just before the registry is read

    def collect(self) -> Iterator[Metric]:
        state = self.app.state
        yield from self._leases(state)
        yield from self._websockets(state)
        yield from self._broker(state)
        yield from self._sources(state)
        yield from self._breakers(state)
        if self.outbox is not None:
            pending = GaugeMetricFamily("pricegraph_outbox_pending", "Outbox messages waiting", labels=["channel"])
            for channel, count in sorted(self.outbox.items()):
                pending.add_metric([channel], count)
            yield pending

    @staticmethod
    def _leases(state: Any) -> Iterator[Metric]:
        books: list[tuple[str, CreditBook]] = []
        if (credit := getattr(state, "credit", None)) is not None:
            books.append(("account", credit))
        if (budgets := getattr(state, "budgets", None)) is not None:
            books.append(("budget", budgets.leases))
        leases = GaugeMetricFamily("pricegraph_leases", "Leases this process holds", labels=["pool"])
        leased = GaugeMetricFamily("pricegraph_leased_usd", "USD the leases hold", labels=["pool"])
        held = GaugeMetricFamily("pricegraph_held_usd", "USD held by requests in flight", labels=["pool"])
        holding = GaugeMetricFamily(
            "pricegraph_holding_leases", "Leases with requests in flight holding on them", labels=["pool"]
        )
        unsettled = GaugeMetricFamily(
            "pricegraph_unsettled_usd", "USD charged to leases, not settled in the database yet", labels=["pool"]
        )
        for pool, book in books:
            values = list(book.leases.values())
            leases.add_metric([pool], sum(1 for lease in values if lease.lease_id is not None))
            leased.add_metric([pool], float(sum(lease.amount for lease in values)))
            held.add_metric([pool], float(sum(lease.reserved for lease in values)))
            holding.add_metric([pool], sum(1 for lease in values if lease.reserved > 0))
            unsettled.add_metric([pool], float(sum(lease.spent for lease in values)))
        yield from (leases, leased, held, holding, unsettled)

    @staticmethod
    def _websockets(state: Any) -> Iterator[Metric]:
        connections = getattr(state, "ws_connections", None)
        if connections is not None:
            yield GaugeMetricFamily(
                "pricegraph_websocket_connections", "Open websocket connections", sum(connections.open.values())
            )
        groups = list(getattr(getattr(state, "fanout", None), "groups", {}).values())
        yield GaugeMetricFamily(
            "pricegraph_subscriptions", "Active subscriptions over websockets", sum(len(g.members) for g in groups)
        )
        yield GaugeMetricFamily(
            "pricegraph_subscription_groups", "Shared executions serving the subscriptions", len(groups)
        )

    @staticmethod
    def _broker(state: Any) -> Iterator[Metric]:
        broker = getattr(state, "broker", None)
        if broker is None:
            return
        yield CounterMetricFamily(
            "pricegraph_broker_events_received", "Events the broker delivered to this process", broker.published
        )
        last = getattr(broker, "last_received", None)
        if last is not None:
            yield GaugeMetricFamily(
                "pricegraph_broker_last_event_age_seconds",
                "Seconds since the broker last delivered an event to this process",
                max(0.0, time.monotonic() - last),
            )

    @staticmethod
    def _sources(state: Any) -> Iterator[Metric]:
        pollers = getattr(state, "pollers", None)
        if pollers is None:
            return
        age = GaugeMetricFamily(
            "pricegraph_price_source_age_seconds",
            "Seconds since each price source's last successful poll",
            labels=["source"],
        )
        now = datetime.now(UTC)
        for source, at in sorted(pollers.last_ok.items()):
            age.add_metric([source], max(0.0, (now - at).total_seconds()))
        yield age

    @staticmethod
    def _breakers(state: Any) -> Iterator[Metric]:
        gateway = getattr(state, "gateway", None)
        if gateway is None:
            return
        health = gateway.health
        now = health.clock()
        breaker = GaugeMetricFamily(
            "pricegraph_breaker_state",
            "Each provider's circuit breaker: 0 closed, 1 half-open (the next request probes), 2 open",
            labels=["provider"],
        )
        failures = GaugeMetricFamily(
            "pricegraph_provider_consecutive_failures", "Failures in a row of each provider", labels=["provider"]
        )
        for provider, seen in sorted(health.providers.items()):
            if seen.open_until > now:
                value = BREAKER_OPEN
            elif seen.open_until:
                value = BREAKER_HALF_OPEN
            else:
                value = BREAKER_CLOSED
            breaker.add_metric([provider], value)
            failures.add_metric([provider], seen.failures)
        yield from (breaker, failures)


class RequestMetrics:
    """Pure ASGI: counts and times each HTTP request by its route's template (websockets pass through)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: the error handler outside answers 500

        def noting(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            self.metrics.answered(scope.get("route"), status, time.perf_counter() - started)


def _authorize(request: Request, operator: OperatorToken) -> None:
    try:
        token = bearer_token(request.headers.get("authorization"))
    except Unauthenticated:
        token = None
    if token is None:
        raise HTTPException(
            401, "operators only: send Authorization: Bearer <ADMIN_TOKEN>", headers={"www-authenticate": "Bearer"}
        )
    if not operator.matches(token):
        raise HTTPException(403, "operators only: send Authorization: Bearer <ADMIN_TOKEN>")


def endpoint(operator: OperatorToken | None, guarded: bool) -> Route:
    async def metrics(request: Request) -> Response:
        if not guarded or operator is None:
            raise HTTPException(404, "Not Found")
        _authorize(request, operator)
        body = await request.app.state.metrics.render()
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4, headers={"cache-control": "no-store"})

    return Route(PATH, metrics, methods=["GET"])


def install(app: Starlette, settings: Settings) -> Metrics:
    """The app's registry (`app.state.metrics`), the request middleware, `/metrics` (guarded by ADMIN_TOKEN;
    404 when METRICS_PORT moves it to its own listener, or without ADMIN_TOKEN), and the gateway's
    observer (`app.state.gateway_observer`)."""
    metrics = Metrics(app)
    app.state.metrics = app.state.gateway_observer = metrics
    app.router.routes.insert(0, endpoint(settings.operator, guarded=settings.metrics_port is None))
    app.add_middleware(RequestMetrics, metrics=metrics)
    return metrics


class Listener:
    """`GET /metrics` over plain HTTP/1.1 on a port of its own, in the app's event loop; one request per
    connection. Started and stopped in the app's lifespan."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        log.info("metrics on http://%s:%d%s", self.host, self.port, PATH)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            async with asyncio.timeout(10.0):
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(await self._answer(head))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> bytes:
        method, _, rest = head.partition(b" ")
        target = rest.partition(b" ")[0].partition(b"?")[0]
        if target != PATH.encode():
            return _response(404, b"application/json", json.dumps({"error": "Not Found", "code": 404}).encode())
        if method not in (b"GET", b"HEAD"):
            error = json.dumps({"error": "Method Not Allowed", "code": 405}).encode()
            return _response(405, b"application/json", error, b"allow: GET, HEAD\r\n")
        body = await self.app.state.metrics.render()
        head = _response(200, CONTENT_TYPE_PLAIN_0_0_4.encode(), body)
        return head[: len(head) - len(body)] if method == b"HEAD" else head


_REASONS = {200: b"OK", 404: b"Not Found", 405: b"Method Not Allowed"}


def _response(status: int, content_type: bytes, body: bytes, extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n" % (
        status,
        _REASONS[status],
        content_type,
        len(body),
    )
    return head + extra + b"cache-control: no-store\r\n\r\n" + body
