"""The settings object: read once at start, every value checked, a bad one a one-line error naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL

from datasources.callers import OperatorToken
from routing.settings import Settings, SettingsError
from server import create_app
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_without_any_variable() -> None:
    settings = Settings.from_env(environ={})
    assert settings.database_url.get_backend_name() == "sqlite"
    assert settings.operator is None and settings.port == 8000 and settings.lease_ttl == 30.0
    assert settings.graphql.deadline == 10.0 and settings.websocket.queue_size == 1000
    assert settings.sources.kinds == ()


def test_every_variable_is_read_into_one_object(tmp_path: Path) -> None:
    providers = tmp_path / "providers.toml"
    providers.write_text('[providers.groq]\nbase_url = "http://127.0.0.1:9/v1"\napi_key = "gsk_platform"\n')
    settings = Settings.from_env(
        environ={
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
            "ADMIN_TOKEN": "an-operator-token-0123",
            "LEASE_TTL": "2.5",
            "GRAPHQL_DEADLINE": "3",
            "GRAPHQL_MAX_RESPONSE_BYTES": "4096",
            "GRAPHQL_MAX_REQUEST_BYTES": "2048",
            "WS_MAX_CONNECTIONS": "3",
            "WS_MAX_SUBSCRIPTIONS": "4",
            "WS_QUEUE_SIZE": "5",
            "WS_KEY_RECHECK_SECONDS": "0.5",
            "PROVIDERS_FILE": str(providers),
            "PRICE_SOURCES": "litellm",
            "POLL_INTERVAL": "60",
            "LOG_LEVEL": "warning",
            "HOST": "0.0.0.0",
            "PORT": "9000",
        }
    )
    assert settings.database_url.database == str(tmp_path / "x.db")
    assert settings.operator is not None and settings.operator.matches("an-operator-token-0123")
    assert not settings.operator.matches("an-operator-token-0124")
    assert (
        settings.lease_ttl,
        settings.graphql.deadline,
        settings.graphql.response_bytes,
        settings.graphql.request_bytes,
    ) == (2.5, 3.0, 4096, 2048)
    ws = settings.websocket
    assert (ws.connections_per_subject, ws.subscriptions_per_connection, ws.queue_size, ws.key_recheck_seconds) == (
        3,
        4,
        5,
        0.5,
    )
    assert settings.gateway.providers["groq"].configured
    assert settings.sources.kinds == ("litellm",) and settings.sources.interval == 60.0
    assert (settings.log_level, settings.host, settings.port) == ("WARNING", "0.0.0.0", 9000)
    # Secrets are kept out of what the settings show.
    assert "an-operator-token-0123" not in repr(settings) and "gsk_platform" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEASE_TTL", "soon"),
        ("LEASE_TTL", "-1"),
        ("GRAPHQL_DEADLINE", "0"),
        ("GRAPHQL_MAX_RESPONSE_BYTES", "1.5"),
        ("WS_MAX_CONNECTIONS", "many"),
        ("WS_QUEUE_SIZE", "nan"),
        ("WS_KEY_RECHECK_SECONDS", "inf"),
        ("PORT", "70000"),
        ("LOG_LEVEL", "LOUD"),
        ("DATABASE_URL", "mysql://root@localhost/x"),
        ("PRICE_SOURCES", "nosuch"),
        ("POLL_INTERVAL", "often"),
        ("PROVIDERS_FILE", "/nonexistent/providers.toml"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ={name: value})
    message = str(caught.value)
    assert name in message and "\n" not in message


def test_the_command_line_stops_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "WS_QUEUE_SIZE": "lots"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "migrate"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "WS_QUEUE_SIZE" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "x.db").exists()  # nothing was touched


async def test_the_environment_is_not_read_after_start(db_url: URL, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator token is the one the settings were built with: changing the variable later grants nothing."""
    settings = Settings(
        database_url=db_url,
        migrate_on_start=False,
        seed_on_start=False,
        operator=OperatorToken("the-token-at-start-0123456"),
    )
    with LiveServer(create_app(settings)) as server:
        monkeypatch.setenv("ADMIN_TOKEN", "a-token-set-later-0123456")
        query = {"query": "mutation { createAccount(plan: DEVELOPER) { secret } }"}

        def ask(token: str) -> dict[str, object]:
            return httpx.post(
                f"{server.url}/graphql", json=query, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ).json()

        assert "errors" not in ask("the-token-at-start-0123456")
        later = ask("a-token-set-later-0123456")
        assert later["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[gateway]\nflush_intervall = 1\n", "[gateway]: unknown field(s) flush_intervall"),
        ("[gateway]\nbreaker_failures = -1\n", "[gateway].breaker_failures must be a positive number"),
        ("[providers.groq]\napi_key = 12\n", "[providers.groq]: api_key must be a string"),
        ('[providers.nosuch]\napi_key = "secret-value"\n', "unknown provider slug 'nosuch'"),
        ("not toml at all", "is not valid TOML"),
    ],
)
def test_a_bad_providers_file_names_the_file_and_the_field(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "providers.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ={"PROVIDERS_FILE": str(path)})
    message = str(caught.value)
    assert str(path) in message and named in message and "\n" not in message
    assert "secret-value" not in message


# ---- BROKER_URL: events and the tick feed through NATS --------------------------------------------


def test_the_broker_is_nats_only_when_broker_url_is_set() -> None:
    assert Settings.from_env(environ={}).broker is None
    settings = Settings.from_env(
        environ={"BROKER_URL": " nats://user:s3cret@127.0.0.1:4222, tls://nats-2:4443 ", "BROKER_NAMESPACE": "staging"}
    )
    assert settings.broker is not None
    assert settings.broker.servers == ("nats://user:s3cret@127.0.0.1:4222", "tls://nats-2:4443")
    assert settings.broker.namespace == "staging" and settings.broker.stream == "PRICEGRAPH_TICKS_staging"
    assert "s3cret" not in repr(settings) and "127.0.0.1:4222" in repr(settings)
    default = Settings.from_env(environ={"BROKER_URL": "nats://127.0.0.1:4222"}).broker
    assert default is not None and (default.namespace, default.stream) == ("", "PRICEGRAPH_TICKS")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"BROKER_URL": "http://127.0.0.1:4222"}, "BROKER_URL"),
        ({"BROKER_URL": "127.0.0.1:4222"}, "BROKER_URL"),
        ({"BROKER_URL": "nats://127.0.0.1:99999"}, "BROKER_URL"),
        ({"BROKER_URL": "nats://"}, "BROKER_URL"),
        ({"BROKER_URL": ","}, "BROKER_URL"),
        ({"BROKER_URL": "nats://u:hunter2@host:4222/path"}, "BROKER_URL"),
        ({"BROKER_URL": "nats://127.0.0.1:4222", "BROKER_NAMESPACE": "a.b"}, "BROKER_NAMESPACE"),
        ({"BROKER_NAMESPACE": "staging"}, "BROKER_NAMESPACE"),
    ],
)
def test_a_bad_broker_setting_names_its_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ=environ)
    message = str(caught.value)
    assert message.startswith(f"{named}:") and "\n" not in message and "hunter2" not in message
