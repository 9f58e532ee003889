"""Pricegraph: the app factory and the command line (`python server.py --help`)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click
import httpx
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL

from datasources import accounts
from datasources.catalog.entries import CatalogFormatError
from datasources.catalog.importer import FORMATS, ensure_seed, import_file
from datasources.credit import CreditBook
from datasources.db import migrate
from datasources.db.engine import (
    DatabaseURLError,
    create_engine,
    database_url,
    sessionmaker,
)
from datasources.db.health import DatabaseProbe
from datasources.errors import DomainError
from datasources.events import PostgresBroker, create_broker
from datasources.instances import Instance
from datasources.keytable import KeyTable
from datasources.money import parse_amount
from datasources.pricebook import PriceBook
from datasources.quotas import QuotaBook
from datasources.recorder import Recorder
from datasources.sources.config import SourceConfigError, SourcesConfig
from datasources.sources.leader import SWEEP_LOCK, create_leader
from datasources.sources.poller import Pollers
from datasources.sweeper import Sweeper
from routing import websocket
from routing.cache import ResponseCache
from routing.gateway.app import install as install_gateway
from routing.gateway.providers import GatewayConfig, ProvidersFileError
from routing.graphql import GraphQLApp
from routing.rest import account_api, price_api, usage_api
from schema.documents import DocumentCache
from schema.limits import GraphQLLimits, LimitsConfigError
from schema.pacing import Pacer
from schema.root import schema

log = logging.getLogger("pricegraph")
SDL_PATH = Path(__file__).with_name("schema.graphql")
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    database_url: URL
    migrate_on_start: bool = True
    seed_on_start: bool = True
    connection_init_timeout: float = 10.0
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    graphql: GraphQLLimits = field(default_factory=GraphQLLimits)
    catalog_check_seconds: float = 5.0  # how often the price book looks for changes it had no event for
    lease_ttl: float = field(default_factory=lambda: _seconds("LEASE_TTL", 30.0))  # credit leases and instances

    @classmethod
    def from_env(cls, url: str | None = None) -> Settings:
        return cls(database_url=database_url(url), sources=SourcesConfig.from_env(), graphql=GraphQLLimits.from_env())


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise LimitsConfigError(f"{name}: expected a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise LimitsConfigError(f"{name}: must be above 0, got {raw!r}")
    return value


def schema_sdl() -> str:
    return schema.as_str() + "\n"


async def healthz(request: Request) -> Response:
    database = request.app.state.engine.dialect.name
    if await request.app.state.database_probe.healthy():
        return JSONResponse({"status": "ok", "database": database})
    return JSONResponse({"status": "unavailable", "database": database}, status_code=503)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail, "code": exc.status_code}, status_code=exc.status_code,
                        headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"error": "internal server error", "code": 500}, status_code=500)


async def prepare_database(engine: AsyncEngine, settings: Settings) -> None:
    if settings.migrate_on_start:
        await migrate.upgrade(engine)
    if settings.seed_on_start:
        result = await ensure_seed(sessionmaker(engine))
        if result is not None:
            log.info("seeded the catalog: %d offers, %d models, %d providers",
                     result.offers_created, result.models_created, result.providers_created)


class _Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


C = TypeVar("C", bound=_Component)


async def _started(stack: contextlib.AsyncExitStack, component: C) -> C:
    await component.start()
    stack.push_async_callback(component.stop)
    return component


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        url = settings.database_url
        engine = create_engine(url)
        broker = create_broker(url)
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
            app.state.recorder = await _started(stack, Recorder(sessions, broker, credit, instance.id))
            app.state.sweeper = await _started(stack, Sweeper(sessions, broker, create_leader(url, SWEEP_LOCK)))
            app.state.database_probe = await _started(stack, DatabaseProbe(engine))
            app.state.ws_limits = ws_limits
            app.state.ws_connections = connections = websocket.Connections(ws_limits.connections_per_subject)
            keys.on_revoked(connections.revoked)
            client = httpx.AsyncClient(headers={"user-agent": "pricegraph"})
            stack.push_async_callback(client.aclose)
            app.state.pollers = await _started(stack, Pollers(sessions, broker, client, settings.sources.build(),
                                                              leader=create_leader(url)))
            # What start-up loaded (modules, the schema, the price book) lives as long as the process:
            # keep it out of the collector's full passes, which would otherwise pause the loop for
            # tens of milliseconds whenever a large answer is being built.
            gc.collect()
            gc.freeze()
            yield

    ws_limits = websocket.Limits()
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
        Mount("/v1", routes=account_api.routes + usage_api.routes),
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
    install_gateway(app, GatewayConfig.from_env())  # the OpenAI-compatible routes, ahead of the mounts
    return app


# ---- command line ---------------------------------------------------------------------------------


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except (DatabaseURLError, SourceConfigError, LimitsConfigError) as exc:
        raise click.ClickException(str(exc)) from None


def _run(
    make: Callable[[AsyncEngine, async_sessionmaker[AsyncSession]], Coroutine[Any, Any, T]],
    upgrade: bool = True,
) -> T:
    """Open the configured database, bring its schema up to date, run one coroutine, close it."""
    settings = _settings()

    async def main() -> T:
        engine = create_engine(settings.database_url)
        try:
            if upgrade:
                await migrate.upgrade(engine)
            return await make(engine, sessionmaker(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except DomainError as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, DBAPIError) as exc:
        reason = getattr(exc, "orig", None) or exc
        raise click.ClickException(f"cannot use the database: {str(reason).splitlines()[0]}") from None


@click.group(invoke_without_command=True)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Pricegraph: LLM inference prices as a GraphQL graph, a REST API and a routing gateway.

    The database is DATABASE_URL (default: pricegraph.db, SQLite, in the working directory).
    With no command, `serve` runs.
    """
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@cli.command()
@click.option("--host", default=lambda: os.environ.get("HOST", "127.0.0.1"), help="Default: HOST or 127.0.0.1.")
@click.option("--port", default=lambda: os.environ.get("PORT", "8000"), type=int, help="Default: PORT or 8000.")
def serve(host: str, port: int) -> None:
    """Apply pending migrations, seed an empty catalog and serve HTTP and websockets."""
    import uvicorn

    settings = _settings()
    _run(lambda engine, _: prepare_database(engine, settings), upgrade=False)
    try:
        app = create_app(replace(settings, migrate_on_start=False, seed_on_start=False))
    except ProvidersFileError as exc:
        raise click.ClickException(str(exc)) from None
    uvicorn.run(app, host=host, port=port, log_level=os.environ.get("LOG_LEVEL", "info").lower())


@cli.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Upgrade to this revision.")
@click.option("--down", "down", metavar="REVISION", help="Downgrade to this revision instead (e.g. base).")
def migrate_command(revision: str, down: str | None) -> None:
    """Bring the database schema to a revision (default: the newest)."""

    async def main(engine: AsyncEngine, _: async_sessionmaker[AsyncSession]) -> str | None:
        if down:
            await migrate.downgrade(engine, down)
        else:
            await migrate.upgrade(engine, revision)
        return await migrate.current_revision(engine)

    click.echo(f"database at revision {_run(main, upgrade=False) or 'base'}")


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), required=True, help="The file's format.")
def import_command(path: Path, fmt: str) -> None:
    """Import a price file in one transaction: new offers, and a tick for every changed price."""
    with click.progressbar(length=1, label=f"importing {path.name}", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done)

        async def main(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
            # On PostgreSQL, running servers hear the changes (NOTIFY); on SQLite no other process listens.
            broker = create_broker(engine.url) if engine.dialect.name == "postgresql" else None
            return await import_file(sessions, path, fmt, progress, broker)

        try:
            result = _run(main)
        except (CatalogFormatError, OSError) as exc:
            raise click.ClickException(f"import failed, nothing was written: {exc}") from None
    click.echo(
        f"{path}: {result.offers_created} new offers, {result.offers_updated} updated, "
        f"{result.unchanged} unchanged, {len(result.ticks)} price ticks, "
        f"{result.models_created} new models, {result.providers_created} new providers"
    )


def _announcer() -> PostgresBroker | None:
    """On PostgreSQL what a command changes is announced to every server's listeners (NOTIFY in its
    transaction); on SQLite there is no broker to reach another process (servers notice within a second)."""
    url = _settings().database_url
    return PostgresBroker(url) if url.get_backend_name() == "postgresql" else None


@cli.group("accounts")
def accounts_group() -> None:
    """Accounts and plans."""


@accounts_group.command("create")
@click.option("--plan", required=True, help="free, developer, team or enterprise.")
@click.option("--credit", default="0", show_default=True, help="Prepaid balance in USD.")
@click.option("--name", default="", help="A name for the account.")
def accounts_create(plan: str, credit: str, name: str) -> None:
    """Create an account and print its first API key (shown only this once)."""
    try:
        parsed_plan = accounts.parse_plan(plan)
    except DomainError as exc:
        raise click.BadParameter(str(exc), param_hint="--plan") from None
    try:
        amount = parse_amount(credit, "credit", allow_zero=True)
    except DomainError as exc:
        raise click.BadParameter(str(exc), param_hint="--credit") from None

    broker = _announcer()

    async def main(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
        async with sessions() as session, session.begin():
            return await accounts.create_account(session, parsed_plan, amount, name, broker)

    account, issued = _run(main)
    click.echo(f"account {account.id} ({account.plan.value}), balance {account.balance:f} USD")
    click.echo(f"key id: {issued.key.id}")
    click.echo(f"api key: {issued.secret}")
    click.echo("Store the API key now: it is not kept and cannot be shown again.", err=True)


@accounts_group.command("credit")
@click.argument("account_id", type=int)
@click.option("--amount", required=True, help="USD to add, e.g. 10 or 2.50.")
@click.option("--idempotency-key", required=True, help="The same key credits once, however often it is run.")
@click.option("--description", default="", help="Shown in the account's billing history.")
def accounts_credit(account_id: int, amount: str, idempotency_key: str, description: str) -> None:
    """Add USD to an account's balance: one ledger row per idempotency key."""
    from datasources import usage

    try:
        parsed = parse_amount(amount)
    except DomainError as exc:
        raise click.BadParameter(str(exc), param_hint="--amount") from None
    broker = _announcer()

    async def main(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
        async with sessions() as session, session.begin():
            return await usage.credit(session, account_id, parsed, idempotency_key, description, broker)

    credited = _run(main)
    txn = credited.transaction
    if credited.replayed:
        click.echo(f"already credited with this key: txn_{txn.id} ({txn.amount:f} USD); nothing changed")
    else:
        click.echo(f"credited {txn.amount:f} USD to account {account_id} (txn_{txn.id})")
    click.echo(f"balance {credited.balance.balance:f} USD, available {credited.balance.available:f} USD")


@cli.group("keys")
def keys_group() -> None:
    """API keys."""


@keys_group.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key by its id (key_...); requests with it are refused from then on."""
    broker = _announcer()

    async def main(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
        async with sessions() as session, session.begin():
            return await accounts.revoke_key(session, key_id, broker=broker)

    key = _run(main)
    click.echo(f"revoked {key.id} ({key.prefix}...) at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC")


@cli.command("export-schema")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=SDL_PATH, show_default=True)
def export_schema(output: Path) -> None:
    """Write the GraphQL schema (SDL) that the code defines."""
    output.write_text(schema_sdl())
    click.echo(f"wrote {output}")


if __name__ == "__main__":
    cli()
