"""The provider registry: where each provider's OpenAI-compatible API lives, how it authenticates,
and the platform keys. Built from the catalog's providers, overridden by the TOML file PROVIDERS_FILE:

    [gateway]                          # optional, every field optional
    connect_timeout = 5.0              # seconds
    first_byte_timeout = 60.0          # until the first byte of the answer
    total_timeout = 600.0              # the whole answer
    breaker_failures = 5               # consecutive failures that open a provider's circuit
    breaker_cooldown = 30.0            # seconds before an open circuit lets one probe through

    [providers.groq]
    base_url = "http://127.0.0.1:9101/v1"
    api_key = "gsk_..."                # the platform key ("configured"); never logged or echoed
    auth = "bearer"                    # bearer | api-key | x-api-key
    first_byte_timeout = 20.0          # per-provider timeouts override the [gateway] ones
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from datasources.catalog.providers import PROVIDERS

PROVIDERS_FILE_ENV = "PROVIDERS_FILE"
AUTH_STYLES = ("bearer", "api-key", "x-api-key")


class ProvidersFileError(ValueError):
    pass


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    first_byte: float = 60.0
    total: float = 600.0


@dataclass(frozen=True)
class ProviderConfig:
    slug: str
    name: str
    base_url: str | None
    api_key: str | None = field(default=None, repr=False)
    auth: str = "bearer"
    timeouts: Timeouts = Timeouts()

    @property
    def routable(self) -> bool:
        return self.base_url is not None

    @property
    def configured(self) -> bool:
        """A platform key is set: Coaxiom can call this provider without the customer's key."""
        return self.routable and bool(self.api_key)

    def auth_headers(self, key: str) -> dict[str, str]:
        if self.auth == "api-key":
            return {"api-key": key}
        if self.auth == "x-api-key":
            return {"x-api-key": key}
        return {"authorization": f"Bearer {key}"}

    def chat_url(self) -> str:
        assert self.base_url is not None
        return self.base_url.rstrip("/") + "/chat/completions"


@dataclass(frozen=True)
class GatewayConfig:
    providers: dict[str, ProviderConfig]
    timeouts: Timeouts = Timeouts()
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0

    def provider(self, slug: str) -> ProviderConfig | None:
        return self.providers.get(slug)

    @classmethod
    def defaults(cls) -> GatewayConfig:
        return cls(providers={slug: ProviderConfig(slug, info.name, info.base_url) for slug, info in PROVIDERS.items()})

    @classmethod
    def from_file(cls, path: Path) -> GatewayConfig:
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ProvidersFileError(f"{PROVIDERS_FILE_ENV}: cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ProvidersFileError(f"{PROVIDERS_FILE_ENV}: {path} is not valid TOML: {exc}") from None
        return cls.from_mapping(data, str(path))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str = "providers file") -> GatewayConfig:
        base = cls.defaults()
        gateway = data.get("gateway", {})
        if not isinstance(gateway, dict):
            raise ProvidersFileError(f"{where}: [gateway] must be a table")
        timeouts = _timeouts(gateway, Timeouts(), f"{where}: [gateway]")
        options: dict[str, Any] = {}
        unknown = set(gateway) - {
            "breaker_failures",
            "breaker_cooldown",
            "connect_timeout",
            "first_byte_timeout",
            "total_timeout",
        }
        if unknown:
            raise ProvidersFileError(f"{where}: [gateway]: unknown field(s) {', '.join(sorted(unknown))}")
        for name, kind in (("breaker_failures", int), ("breaker_cooldown", float)):
            if name in gateway:
                options[name] = _number(gateway[name], kind, f"{where}: [gateway].{name}")
        providers = {slug: replace(p, timeouts=timeouts) for slug, p in base.providers.items()}
        tables = data.get("providers", {})
        if not isinstance(tables, dict):
            raise ProvidersFileError(f"{where}: [providers] must be a table of provider tables")
        for slug, table in tables.items():
            label = f"{where}: [providers.{slug}]"
            if slug not in PROVIDERS:
                raise ProvidersFileError(f"{label}: unknown provider slug {slug!r}")
            if not isinstance(table, dict):
                raise ProvidersFileError(f"{label} must be a table")
            unknown = set(table) - {
                "base_url",
                "api_key",
                "auth",
                "connect_timeout",
                "first_byte_timeout",
                "total_timeout",
                "name",
            }
            if unknown:
                raise ProvidersFileError(f"{label}: unknown field(s) {', '.join(sorted(unknown))}")
            current = providers[slug]
            for name in ("base_url", "api_key", "auth", "name"):  # the key's value never goes in a message
                if name in table and not isinstance(table[name], str):
                    raise ProvidersFileError(f"{label}: {name} must be a string")
            auth = table.get("auth", current.auth)
            if auth not in AUTH_STYLES:
                raise ProvidersFileError(f"{label}: auth must be one of {', '.join(AUTH_STYLES)}, got {auth!r}")
            base_url = table.get("base_url", current.base_url)
            if base_url is not None and not base_url.startswith(("http://", "https://")):
                raise ProvidersFileError(f"{label}: base_url must be an http(s) URL")
            providers[slug] = replace(
                current,
                base_url=base_url,
                api_key=table.get("api_key") or None,
                auth=auth,
                name=table.get("name", current.name),
                timeouts=_timeouts(table, timeouts, label),
            )
        return replace(base, providers=providers, timeouts=timeouts, **options)


def _number(value: Any, kind: type, label: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ProvidersFileError(f"{label} must be a positive number")
    return kind(value)


def _timeouts(table: dict[str, Any], default: Timeouts, label: str) -> Timeouts:
    values = {}
    for name in ("connect", "first_byte", "total"):
        key = f"{name}_timeout"
        values[name] = _number(table[key], float, f"{label}.{key}") if key in table else getattr(default, name)
    return Timeouts(**values)
