"""Where the API lives, and the headers every request carries (keys kept out of every repr)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_BASE_URL = "https://coaxiom.io/api/v1/"
BASE_URL_ENV = "COAXIOM_BASE_URL"
API_KEY_ENV = "COAXIOM_API_KEY"
DEFAULT_TIMEOUT = 60.0
VERSION = "0.1.0"


def encode_provider_keys(keys: Mapping[str, str]) -> str:
    """The `X-Provider-Keys` value as the document builds it: base64 of the JSON object."""
    return base64.b64encode(json.dumps(dict(keys)).encode("utf-8")).decode("ascii")


def split_base_url(base_url: str | None) -> tuple[str, str]:
    """(origin, price API root) from `https://host/api/v1/` or `https://host`."""
    raw = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).strip().rstrip("/")
    origin = raw[: -len("/api/v1")] if raw.endswith("/api/v1") else raw
    return origin, origin + "/api/v1"


@dataclass(frozen=True)
class Config:
    origin: str
    api_key: str | None = field(repr=False)
    provider_keys: Mapping[str, str] = field(repr=False)
    timeout: float
    max_retries: int

    @classmethod
    def build(
        cls,
        api_key: str | None,
        provider_keys: Mapping[str, str] | None,
        base_url: str | None,
        timeout: float,
        max_retries: int,
    ) -> Config:
        origin, _ = split_base_url(base_url)
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        return cls(origin, key or None, dict(provider_keys or {}), timeout, max(0, max_retries))

    @property
    def api_root(self) -> str:
        return self.origin + "/api/v1"

    @property
    def route_root(self) -> str:
        return self.origin + "/api/v1/route"

    @property
    def ws_url(self) -> str:
        scheme, rest = self.origin.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/graphql"

    def headers(self) -> dict[str, str]:
        headers = {"user-agent": f"coaxiom-python/{VERSION}", "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        if self.provider_keys:
            headers["x-provider-keys"] = encode_provider_keys(self.provider_keys)
        return headers

    def secrets(self) -> list[str]:
        return [s for s in (self.api_key, *self.provider_keys.values()) if s]

    def describe(self, name: str) -> str:
        key = "set" if self.api_key else "none"
        providers = sorted(self.provider_keys)
        return f"{name}(base_url={self.api_root!r}, api_key={key}, provider_keys={providers})"


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "[redacted]")
    return text
