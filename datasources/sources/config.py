"""Which price sources poll, read from the environment; a bad value is a one-line error naming it.

| variable | default | meaning |
|---|---|---|
| PRICE_SOURCES | (none) | comma list of openrouter, openrouter-endpoints, litellm, file, replay |
| OPENROUTER_MODELS_URL | https://openrouter.ai/api/v1/models | the models list |
| OPENROUTER_ENDPOINTS_URLS | (none; needed by openrouter-endpoints) | comma list of per-model endpoint URLs |
| LITELLM_PRICES_URL | LiteLLM's price map on GitHub | a URL or a path |
| PRICE_FILE, PRICE_FILE_FORMAT | (none; needed by file), litellm | a local file re-read each poll; litellm or openrouter |
| REPLAY_FILE, REPLAY_SPEED, REPLAY_LOOP | (none; needed by replay), 3600, false | a price history CSV |
| POLL_INTERVAL | 300 | seconds between polls of each source |
| STALE_AFTER | 3 × POLL_INTERVAL | seconds without confirmation before an offer is stale |
| POLL_TIMEOUT | 30 | seconds a fetch may take |
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasources.sources.base import Source, is_url
from datasources.sources.file import FORMATS, PriceFile
from datasources.sources.litellm import DEFAULT_URL as LITELLM_URL
from datasources.sources.litellm import LiteLLMPrices
from datasources.sources.openrouter import DEFAULT_MODELS_URL, OpenRouterEndpoints, OpenRouterModels
from datasources.sources.replay import Replay

KINDS = ("openrouter", "openrouter-endpoints", "litellm", "file", "replay")
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class SourceConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SourcesConfig:
    kinds: tuple[str, ...] = ()
    openrouter_models_url: str = DEFAULT_MODELS_URL
    openrouter_endpoints_urls: tuple[str, ...] = ()
    litellm_prices: str = LITELLM_URL
    price_file: Path | None = None
    price_file_format: str = "litellm"
    replay_file: Path | None = None
    replay_speed: float = 3600.0
    replay_loop: bool = False
    interval: float = 300.0
    stale_after: float = 900.0
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SourcesConfig:
        kinds = tuple(_list(env, "PRICE_SOURCES"))
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise SourceConfigError(f"PRICE_SOURCES: unknown source {unknown[0]!r} (use {', '.join(KINDS)})")
        if len(set(kinds)) != len(kinds):
            raise SourceConfigError("PRICE_SOURCES: a source is named twice")
        interval = _seconds(env, "POLL_INTERVAL", 300.0)
        config = cls(
            kinds=kinds,
            openrouter_models_url=_url(env, "OPENROUTER_MODELS_URL", DEFAULT_MODELS_URL),
            openrouter_endpoints_urls=tuple(
                _url_value("OPENROUTER_ENDPOINTS_URLS", u) for u in _list(env, "OPENROUTER_ENDPOINTS_URLS", lower=False)
            ),
            litellm_prices=env.get("LITELLM_PRICES_URL", "").strip() or LITELLM_URL,
            price_file=_path(env, "PRICE_FILE"),
            price_file_format=env.get("PRICE_FILE_FORMAT", "").strip().lower() or "litellm",
            replay_file=_path(env, "REPLAY_FILE"),
            replay_speed=_seconds(env, "REPLAY_SPEED", 3600.0),
            replay_loop=_bool(env, "REPLAY_LOOP"),
            interval=interval,
            stale_after=_seconds(env, "STALE_AFTER", 3 * interval),
            timeout=_seconds(env, "POLL_TIMEOUT", 30.0),
        )
        if config.price_file_format not in FORMATS:
            raise SourceConfigError(f"PRICE_FILE_FORMAT: {config.price_file_format!r} is not litellm or openrouter")
        if "openrouter-endpoints" in kinds and not config.openrouter_endpoints_urls:
            raise SourceConfigError("OPENROUTER_ENDPOINTS_URLS: openrouter-endpoints needs at least one URL")
        if "file" in kinds and config.price_file is None:
            raise SourceConfigError("PRICE_FILE: the file source needs a path")
        if "replay" in kinds and config.replay_file is None:
            raise SourceConfigError("REPLAY_FILE: the replay source needs a price history CSV")
        return config

    def build(self) -> list[Source | Replay]:
        timing: dict[str, Any] = {"interval": self.interval, "stale_after": self.stale_after, "timeout": self.timeout}
        sources: list[Source | Replay] = []
        for kind in self.kinds:
            if kind == "openrouter":
                sources.append(OpenRouterModels(self.openrouter_models_url, **timing))
            elif kind == "openrouter-endpoints":
                sources.append(OpenRouterEndpoints(self.openrouter_endpoints_urls, **timing))
            elif kind == "litellm":
                sources.append(LiteLLMPrices(self.litellm_prices, **timing))
            elif kind == "file":
                assert self.price_file is not None
                sources.append(PriceFile(self.price_file, self.price_file_format, **timing))
            else:
                assert self.replay_file is not None
                sources.append(Replay(self.replay_file, self.replay_speed, self.replay_loop))
        return sources


def _list(env: Mapping[str, str], name: str, lower: bool = True) -> list[str]:
    raw = env.get(name, "")
    items = [item.strip() for item in raw.split(",") if item.strip()]
    return [item.lower() for item in items] if lower else items


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SourceConfigError(f"{name}: {raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise SourceConfigError(f"{name}: must be a positive number, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise SourceConfigError(f"{name}: {raw!r} is not true or false")


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip()
    return _url_value(name, raw) if raw else default


def _url_value(name: str, raw: str) -> str:
    if not is_url(raw):
        raise SourceConfigError(f"{name}: {raw!r} is not an http:// or https:// URL")
    return raw


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


def load_sources(env: Mapping[str, str]) -> list[Source | Replay]:
    """The configured sources; raises SourceConfigError with a one-line message."""
    return SourcesConfig.from_env(env).build()
