"""The app factory: the routes of every surface, and the lifespan that starts the service's parts in order
(database, broker, price book, keys, quotas, leases, recorder, sweeper, pollers) and stops them in reverse."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Protocol, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from datasources import board, notices
from datasources.budgets import BudgetBook
from datasources.catalog.importer import ensure_seed
from datasources.credit import CreditBook
from datasources.db import migrate
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.health import DatabaseProbe
from datasources.delivery import Sender
from datasources.events import create_broker
from datasources.instances import Instance
from datasources.keytable import KeyTable
from datasources.outbox import Deliverer, MailDeliverer, OutboxWorker, WebhookDeliverer
from datasources.pricebook import PriceBook
from datasources.quotas import QuotaBook
from datasources.recorder import Recorder
from datasources.secrets import Sealer
from datasources.sources.leader import SWEEP_LOCK, create_leader
from datasources.sources.poller import Pollers
from datasources.sweeper import Sweeper
from resolvers.root import schema
from routing import websocket
from routing.cache import ResponseCache
from routing.gateway.app import install as install_gateway
from routing.graphql import GraphQLApp
from routing.metrics import Listener as MetricsListener
from routing.metrics import install as install_metrics
from routing.rest import billing_api, models_api, price_api, usage_api, webhooks_api
from routing.settings import Settings
from routing.web import browser as web_browser
from routing.web import routes as web_routes
from schema.documents import DocumentCache
from schema.pacing import Pacer

log = logging.getLogger("pricegraph")
T = TypeVar("T")


async def healthz(request: Request) -> Response:
    database = request.app.state.engine.dialect.name
    if await request.app.state.database_probe.healthy():
        return JSONResponse({"status": "ok", "database": database})
    return JSONResponse({"status": "unavailable", "database": database}, status_code=503)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": exc.detail, "code": exc.status_code}, status_code=exc.status_code, headers=exc.headers
    )


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal server error", "code": 500}, status_code=500)


async def prepare_database(engine: AsyncEngine, settings: Settings) -> None:
    if settings.migrate_on_start:
        await migrate.upgrade(engine)
    if settings.seed_on_start:
        result = await ensure_seed(sessionmaker(engine))
        if result is not None:
            log.info(
                "seeded the catalog: %d offers, %d models, %d providers",
                result.offers_created,
                result.models_created,
                result.providers_created,
            )


KEY_FILE = ".pricegraph-secret-key"


def sealer_for(settings: Settings) -> Sealer:
    """SECRET_KEY; else the key file (SECRET_KEY_FILE, or beside the SQLite database, or in the working
    directory), created on first use."""
    if settings.secret_key:
        return Sealer.from_passphrase(settings.secret_key)
    path = settings.secret_key_file
    if path is None:
        database = settings.database_url.database or ""
        local = settings.database_url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
        path = Path(database).resolve().with_name(KEY_FILE) if local else Path(KEY_FILE)
    return Sealer.from_file(path)


def outbox_worker(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], sealer: Sealer, instance_id: str
) -> OutboxWorker:
    """Webhook deliveries always; e-mails when SMTP_URL is set (else they wait in the outbox)."""
    sender = Sender(allow_hosts=settings.webhook_allow_hosts, timeout=settings.webhook_timeout)
    deliverers: dict[str, Deliverer] = {
        "webhook": WebhookDeliverer(sessions, sender, sealer, timedelta(seconds=settings.webhook_disable_after)),
    }
    if settings.smtp is not None:
        deliverers["email"] = MailDeliverer(settings.smtp)
    return OutboxWorker(
        sessions, instance_id, deliverers, settings.outbox_retry, poll_seconds=settings.outbox_poll_seconds
    )


class _Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


C = TypeVar("C", bound=_Component)


async def _started(stack: contextlib.AsyncExitStack, component: C) -> C:
    await component.start()
    stack.push_async_callback(component.stop)
    return component


def create_app(settings: Settings | None = None) -> Starlette:
    """The service as an ASGI app; without settings they are read from the environment."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        url = settings.database_url
        engine = create_engine(url)
        broker = create_broker(url, settings.broker)
        async with contextlib.AsyncExitStack() as stack:  # stopped in the reverse order of starting
            stack.push_async_callback(engine.dispose)
            await prepare_database(engine, settings)
            await _started(stack, broker)
            sessions = sessionmaker(engine)
            app.state.engine, app.state.sessionmaker, app.state.broker = engine, sessions, broker
            app.state.book = await _started(stack, PriceBook(sessions, broker, settings.catalog_check_seconds))
            app.state.keys = keys = await _started(stack, KeyTable(sessions, broker))
            app.state.quotas = await _started(stack, QuotaBook(sessions))
            app.state.instance = instance = await _started(stack, Instance(sessions, settings.lease_ttl))
            app.state.credit = credit = await _started(stack, CreditBook(sessions, instance))
            app.state.budgets = budgets = await _started(stack, BudgetBook(sessions, broker, instance))
            app.state.recorder = await _started(
                stack, Recorder(sessions, broker, credit, instance.id, budgets=budgets.leases)
            )
            app.state.sealer = sealer = sealer_for(settings)
            app.state.outbox = outbox = await _started(stack, outbox_worker(settings, sessions, sealer, instance.id))
            broker.watch(lambda events: outbox.wake() if any(notices.sends(e) for e in events) else None)
            app.state.board_moves = moves = board.Moves()  # the price board's last moves, read when first shown
            broker.watch(moves.apply)
            app.state.sweeper = await _started(stack, Sweeper(sessions, broker, create_leader(url, SWEEP_LOCK)))
            app.state.database_probe = await _started(stack, DatabaseProbe(engine))
            app.state.ws_limits = ws_limits
            app.state.ws_connections = connections = websocket.Connections(ws_limits.connections_per_subject)
            keys.on_revoked(connections.revoked)
            client = httpx.AsyncClient(headers={"user-agent": "pricegraph"})
            stack.push_async_callback(client.aclose)
            app.state.pollers = await _started(
                stack, Pollers(sessions, broker, client, settings.sources.build(), leader=create_leader(url))
            )
            if settings.metrics_port is not None:  # /metrics on a listener of its own
                await _started(stack, MetricsListener(app, settings.host, settings.metrics_port))
            # What start-up loaded (modules, the schema, the price book) lives as long as the process:
            # keep it out of the collector's full passes, which would otherwise pause the loop for
            # tens of milliseconds whenever a large answer is being built.
            gc.collect()
            gc.freeze()
            yield

    ws_limits = settings.websocket
    graphql = GraphQLApp(
        schema,
        graphql_ide="graphiql",
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
        connection_init_wait_timeout=timedelta(seconds=settings.connection_init_timeout),
        max_subscriptions_per_connection=ws_limits.subscriptions_per_connection,
    )
    routes = [
        Route("/healthz", healthz),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Mount("/api/v1", routes=price_api.routes),
        Mount("/v1", routes=models_api.routes + usage_api.routes + webhooks_api.routes + billing_api.routes),
        *web_routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.pacer = Pacer()
    app.state.response_cache = ResponseCache()
    app.state.documents = DocumentCache()
    app.state.graphql_limits = settings.graphql
    app.state.operator = settings.operator
    app.state.polar = settings.polar
    app.state.public_url = settings.public_url
    app.state.sign_in = settings.sign_in
    app.state.templates = web_browser.templates()
    install_gateway(app, settings.gateway)  # the OpenAI-compatible routes, ahead of the mounts
    install_metrics(app, settings)  # /metrics, the request middleware, the gateway's observer
    return app
