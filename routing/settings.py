"""The service's configuration, read once at start from the environment and the providers file. Every
value is checked there: a bad one stops the start with one line naming the variable. Nothing reads the
environment after this."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL

from datasources.callers import OperatorToken
from datasources.db.engine import DatabaseURLError, database_url
from datasources.mail import SmtpConfig
from datasources.nats import NatsConfig, check_namespace, parse_servers
from datasources.outbox import DISABLE_AFTER, RETRY_SCHEDULE
from datasources.polar import PolarConfig
from datasources.signin import SignInPolicy
from datasources.sources.config import SourceConfigError, SourcesConfig
from routing.gateway.providers import PROVIDERS_FILE_ENV, GatewayConfig, ProvidersFileError
from routing.websocket import Limits as WebsocketLimits
from schema.limits import GraphQLLimits


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable."""


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise SettingsError(f"{name}: must be a number above 0, got {raw!r}")
    return value


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default)
    if value != int(value):
        raise SettingsError(f"{name}: expected a whole number, got {env[name].strip()!r}")
    return int(value)


def _broker(env: Mapping[str, str]) -> NatsConfig | None:
    """BROKER_URL (NATS servers, comma-separated) and BROKER_NAMESPACE; unset, no NATS."""
    raw = env.get("BROKER_URL", "").strip()
    namespace = env.get("BROKER_NAMESPACE", "").strip()
    if not raw:
        if namespace:
            raise SettingsError("BROKER_NAMESPACE: set only with BROKER_URL")
        return None
    try:
        servers = parse_servers(raw)
    except ValueError as exc:
        raise SettingsError(f"BROKER_URL: {exc}") from None
    try:
        return NatsConfig(servers, check_namespace(namespace))
    except ValueError as exc:
        raise SettingsError(f"BROKER_NAMESPACE: {exc}") from None


def _smtp(env: Mapping[str, str]) -> SmtpConfig | None:
    raw = env.get("SMTP_URL", "").strip()
    sender = env.get("SMTP_FROM", "").strip() or None
    if not raw:
        if sender:
            raise SettingsError("SMTP_FROM: set only with SMTP_URL")
        return None
    try:
        return SmtpConfig.parse(raw, sender)
    except ValueError as exc:
        raise SettingsError(str(exc) if "SMTP_URL" in str(exc) else f"SMTP_URL: {exc}") from None


def _public_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("PUBLIC_URL", "").strip().rstrip("/")
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")) or "://" not in raw or not raw.split("://", 1)[1]:
        raise SettingsError(f"PUBLIC_URL: expected an http:// or https:// address, got {raw!r}")
    return raw


def _hosts(env: Mapping[str, str], name: str) -> frozenset[str]:
    raw = env.get(name, "")
    return frozenset(h.strip().lower().strip("[]") for h in raw.split(",") if h.strip())


def _schedule(env: Mapping[str, str]) -> tuple[float, ...]:
    raw = env.get("OUTBOX_RETRY_SCHEDULE", "").strip()
    if not raw:
        return RETRY_SCHEDULE
    try:
        values = tuple(float(v) for v in raw.split(","))
    except ValueError:
        raise SettingsError(f"OUTBOX_RETRY_SCHEDULE: expected seconds separated by commas, got {raw!r}") from None
    if not values or any(not v >= 0 for v in values):
        raise SettingsError(f"OUTBOX_RETRY_SCHEDULE: expected seconds of 0 or more, got {raw!r}")
    return values


def _polar(env: Mapping[str, str]) -> PolarConfig | None:
    token = env.get("POLAR_ACCESS_TOKEN", "").strip()
    product = env.get("POLAR_PRODUCT_ID", "").strip()
    secret = env.get("POLAR_WEBHOOK_SECRET", "").strip() or None
    server = env.get("POLAR_SERVER", "").strip() or None
    base_url = env.get("POLAR_API_URL", "").strip() or None
    if not token and not secret:
        return None
    if token and not product:
        raise SettingsError("POLAR_PRODUCT_ID: set it to the top-up product's id with POLAR_ACCESS_TOKEN")
    if server not in (None, "production", "sandbox"):
        raise SettingsError(f"POLAR_SERVER: expected production or sandbox, got {server!r}")
    return PolarConfig(
        access_token=token,
        product_id=product,
        webhook_secret=secret,
        server=server,
        base_url=base_url,
        success_url=env.get("POLAR_SUCCESS_URL", "").strip() or None,
    )


def _port_number(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise SettingsError(f"{name}: expected a port number from 1 to 65535, got {raw!r}")
    return int(raw)


def _port(env: Mapping[str, str]) -> int:
    port = _port_number(env, "PORT")
    return Settings.port if port is None else port


def _metrics_port(env: Mapping[str, str], port: int) -> int | None:
    """METRICS_PORT: the metrics on a listener of their own, beside HOST:PORT."""
    metrics = _port_number(env, "METRICS_PORT")
    if metrics is not None and metrics == port:
        raise SettingsError(f"METRICS_PORT: must differ from PORT ({port})")
    return metrics


@dataclass(frozen=True)
class Settings:
    database_url: URL
    migrate_on_start: bool = True
    seed_on_start: bool = True
    connection_init_timeout: float = 10.0  # seconds a websocket may take to send connection_init
    catalog_check_seconds: float = 5.0  # how often the price book looks for changes it had no event for
    lease_ttl: float = 30.0  # seconds a credit lease and an instance's heartbeat last (LEASE_TTL)
    operator: OperatorToken | None = None  # ADMIN_TOKEN, as its digest
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    graphql: GraphQLLimits = field(default_factory=GraphQLLimits)
    websocket: WebsocketLimits = field(default_factory=WebsocketLimits)
    gateway: GatewayConfig = field(default_factory=GatewayConfig.defaults)
    log_level: str = "INFO"
    host: str = "127.0.0.1"  # where `serve` listens (HOST, PORT)
    port: int = 8000
    metrics_port: int | None = None  # METRICS_PORT: /metrics on HOST:METRICS_PORT, unguarded, instead of PORT
    broker: NatsConfig | None = None  # BROKER_URL, BROKER_NAMESPACE: events and the tick feed through NATS
    smtp: SmtpConfig | None = None  # SMTP_URL, SMTP_FROM; without it e-mails wait in the outbox
    webhook_allow_hosts: frozenset[str] = frozenset()  # WEBHOOK_ALLOW_HOSTS: hosts exempt from the SSRF check
    webhook_timeout: float = 10.0  # WEBHOOK_TIMEOUT: seconds a delivery may take
    webhook_disable_after: float = DISABLE_AFTER.total_seconds()  # WEBHOOK_DISABLE_AFTER, seconds
    outbox_retry: tuple[float, ...] = RETRY_SCHEDULE  # OUTBOX_RETRY_SCHEDULE: seconds before each retry
    outbox_poll_seconds: float = 1.0  # how often the outbox worker looks for what another process queued
    secret_key: str | None = field(default=None, repr=False)  # SECRET_KEY: seals webhook secrets
    secret_key_file: Path | None = None  # SECRET_KEY_FILE: without SECRET_KEY; None: beside the SQLite file
    polar: PolarConfig | None = None  # POLAR_ACCESS_TOKEN, POLAR_PRODUCT_ID, POLAR_WEBHOOK_SECRET, ...
    public_url: str | None = None  # PUBLIC_URL: the service's address in e-mailed links (else the request's)
    sign_in: SignInPolicy = field(default_factory=SignInPolicy)  # SIGN_IN_LINK_MINUTES, SESSION_DAYS, ...

    @classmethod
    def from_env(cls, url: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """`url` overrides DATABASE_URL. Raises SettingsError naming the variable at fault."""
        env = os.environ if environ is None else environ
        try:
            database = database_url(url if url is not None else env.get("DATABASE_URL") or None)
            sources = SourcesConfig.from_env(env)
            providers_file = env.get(PROVIDERS_FILE_ENV, "").strip()
            gateway = GatewayConfig.from_file(Path(providers_file)) if providers_file else GatewayConfig.defaults()
        except (DatabaseURLError, SourceConfigError, ProvidersFileError) as exc:
            raise SettingsError(str(exc)) from None
        token = env.get("ADMIN_TOKEN", "").strip()
        level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(f"LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {level!r}")
        port = _port(env)
        return cls(
            database_url=database,
            lease_ttl=_number(env, "LEASE_TTL", cls.lease_ttl),
            operator=OperatorToken(token) if token else None,
            sources=sources,
            graphql=GraphQLLimits(
                deadline=_number(env, "GRAPHQL_DEADLINE", GraphQLLimits.deadline),
                response_bytes=_whole(env, "GRAPHQL_MAX_RESPONSE_BYTES", GraphQLLimits.response_bytes),
                request_bytes=_whole(env, "GRAPHQL_MAX_REQUEST_BYTES", GraphQLLimits.request_bytes),
            ),
            websocket=WebsocketLimits(
                connections_per_subject=_whole(env, "WS_MAX_CONNECTIONS", WebsocketLimits.connections_per_subject),
                subscriptions_per_connection=_whole(
                    env, "WS_MAX_SUBSCRIPTIONS", WebsocketLimits.subscriptions_per_connection
                ),
                queue_size=_whole(env, "WS_QUEUE_SIZE", WebsocketLimits.queue_size),
                key_recheck_seconds=_number(env, "WS_KEY_RECHECK_SECONDS", WebsocketLimits.key_recheck_seconds),
            ),
            gateway=gateway,
            log_level=level,
            host=env.get("HOST", "").strip() or cls.host,
            port=port,
            metrics_port=_metrics_port(env, port),
            broker=_broker(env),
            smtp=_smtp(env),
            webhook_allow_hosts=_hosts(env, "WEBHOOK_ALLOW_HOSTS"),
            webhook_timeout=_number(env, "WEBHOOK_TIMEOUT", cls.webhook_timeout),
            webhook_disable_after=_number(env, "WEBHOOK_DISABLE_AFTER", cls.webhook_disable_after),
            outbox_retry=_schedule(env),
            secret_key=env.get("SECRET_KEY", "").strip() or None,
            secret_key_file=Path(raw_key_file) if (raw_key_file := env.get("SECRET_KEY_FILE", "").strip()) else None,
            polar=_polar(env),
            public_url=_public_url(env),
            sign_in=SignInPolicy(
                link_minutes=_whole(env, "SIGN_IN_LINK_MINUTES", SignInPolicy.link_minutes),
                session_days=_whole(env, "SESSION_DAYS", SignInPolicy.session_days),
                per_email=_whole(env, "SIGN_IN_PER_EMAIL", SignInPolicy.per_email),
                per_address=_whole(env, "SIGN_IN_PER_ADDRESS", SignInPolicy.per_address),
            ),
        )
