"""The command line: serve, migrate, import price files, accounts and keys, export the schema
(`python server.py --help`)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from datasources import accounts
from datasources.catalog import precedence
from datasources.catalog.entries import CatalogFormatError
from datasources.catalog.importer import FORMATS, import_file
from datasources.db import migrate
from datasources.db.engine import create_engine, sessionmaker
from datasources.errors import DomainError
from datasources.events import PostgresBroker, create_broker
from datasources.money import parse_amount
from datasources.sources.base import SourceError
from datasources.sources.replay import BACKFILL_BATCH, backfill
from resolvers.root import SDL_PATH, schema_sdl
from routing.app import create_app, prepare_database
from routing.settings import Settings, SettingsError

T = TypeVar("T")


def _settings() -> Settings:
    """The settings the group read at start (one object for the whole command)."""
    settings = click.get_current_context().find_object(Settings)
    assert settings is not None
    return settings


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
    try:
        ctx.obj = settings = Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@cli.command()
@click.option("--host", help="Default: HOST or 127.0.0.1.")
@click.option("--port", type=click.IntRange(1, 65535), help="Default: PORT or 8000.")
def serve(host: str | None, port: int | None) -> None:
    """Apply pending migrations, seed an empty catalog and serve HTTP and websockets."""
    import uvicorn

    settings = _settings()
    _run(lambda engine, _: prepare_database(engine, settings), upgrade=False)
    app = create_app(replace(settings, migrate_on_start=False, seed_on_start=False))
    uvicorn.run(app, host=host or settings.host, port=port or settings.port, log_level=settings.log_level.lower())


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
@click.argument("path", type=click.Path(exists=True, path_type=Path))  # a file, or a directory (modelsdev)
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
        + (
            f"; {result.held_by_precedence} kept at the price of a source ranked higher"
            " (python server.py sources disagreements)"
            if result.held_by_precedence
            else ""
        )
    )


@cli.command("import-history")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--batch", type=click.IntRange(1), default=BACKFILL_BATCH, show_default=True, help="Commit times per transaction."
)
def import_history(path: Path, batch: int) -> None:
    """File a price history CSV (LiteLLM's weekly history or models.dev's) as the offers' history, at its
    own times: real candles from the first day. The whole file is read first (a bad line fails, naming it,
    before anything is written); then one transaction per batch."""
    with click.progressbar(length=1, label=f"filing {path.name}", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done)

        async def main(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
            return await backfill(sessions, path, progress, batch)

        try:
            report = _run(main)
        except SourceError as exc:
            raise click.ClickException(f"import failed, nothing was written: {exc}") from None
    click.echo(
        f"{path}: {report.rows} rows in {report.groups} commits as {report.source}: {report.ticks} price ticks, "
        f"{report.backfilled} filed before a later price, {report.held} kept at a higher source's price"
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
@click.option("--email", default=None, help="Where account and security e-mails go.")
def accounts_create(plan: str, credit: str, name: str, email: str | None) -> None:
    """Create an account and print its first API key (shown only this once)."""
    try:
        parsed_plan = accounts.parse_plan(plan)
    except DomainError as exc:
        raise click.BadParameter(str(exc), param_hint="--plan") from None
    try:
        address = accounts.check_email(email) if email else None
    except DomainError as exc:
        raise click.BadParameter(str(exc), param_hint="--email") from None
    try:
        amount = parse_amount(credit, "credit", allow_zero=True)
    except DomainError as exc:
        raise click.BadParameter(str(exc), param_hint="--credit") from None

    broker = _announcer()

    async def main(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
        async with sessions() as session, session.begin():
            return await accounts.create_account(session, parsed_plan, amount, name, broker, email=address)

    account, issued = _run(main)
    click.echo(f"account {account.id} ({account.plan.value}), balance {account.balance:f} USD")
    click.echo(f"key id: {issued.key.id}")
    click.echo(f"api key: {issued.secret}")
    click.echo("Store the API key now: it is not kept and cannot be shown again.", err=True)


@accounts_group.command("email")
@click.argument("account_id", type=int)
@click.argument("address")
def accounts_email(account_id: int, address: str) -> None:
    """Set where the account's e-mails go ("none" to stop them)."""
    try:
        checked = None if address.strip().lower() == "none" else accounts.check_email(address)
    except DomainError as exc:
        raise click.BadParameter(str(exc), param_hint="ADDRESS") from None

    async def main(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
        async with sessions() as session, session.begin():
            return await accounts.set_email(session, account_id, checked)

    account = _run(main)
    click.echo(f"account {account.id}: e-mails go to {account.email or 'nowhere'}")


@accounts_group.command("credit")
@click.argument("account_id", type=int)
@click.option("--amount", required=True, help="USD to add, e.g. 10 or 2.50.")
@click.option("--idempotency-key", required=True, help="The same key credits once, however often it is run.")
@click.option("--description", default="", help="Shown in the account's billing history.")
def accounts_credit(account_id: int, amount: str, idempotency_key: str, description: str) -> None:
    """Add USD to an account's balance: one ledger row per idempotency key."""
    from datasources import billing

    try:
        parsed = parse_amount(amount)
    except DomainError as exc:
        raise click.BadParameter(str(exc), param_hint="--amount") from None
    broker = _announcer()

    async def main(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
        async with sessions() as session, session.begin():
            return await billing.credit(session, account_id, parsed, idempotency_key, description, broker)

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


@cli.group("sources")
def sources_group() -> None:
    """Price sources."""


@sources_group.command("disagreements")
@click.option(
    "--threshold",
    default=str(precedence.DISAGREEMENT_PCT),
    show_default=True,
    help="Percent of the blended price by which two sources must differ.",
)
@click.option("--source", default=None, help="Only where this source disagrees (e.g. modelsdev).")
def sources_disagreements(threshold: str, source: str | None) -> None:
    """Offers whose sources disagree on the price: the offer's own (the source that set it) and the other's."""
    limit = parse_amount(threshold, "--threshold", allow_zero=True)

    async def main(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> Any:
        async with sessions() as session:
            return await precedence.disagreements(session, source, limit)

    found = _run(main)
    for d in found:
        offer = "/".join(part for part in (d.provider, d.model, d.variant) if part)
        click.echo(
            f"{offer}: {d.source} {d.input_per_1m}/{d.output_per_1m}, {d.other_source} "
            f"{d.other_input_per_1m}/{d.other_output_per_1m} ({d.change_pct:+}%)"
        )
    click.echo(f"{len(found)} disagreement(s) above {limit}%")


@cli.command("export-schema")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=SDL_PATH, show_default=True)
def export_schema(output: Path) -> None:
    """Write the GraphQL schema (SDL) that the code defines."""
    output.write_text(schema_sdl())
    click.echo(f"wrote {output}")
