"""A local price file, re-read on every poll: LiteLLM's price map or an OpenRouter models/endpoints file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from datasources.catalog.entries import OfferEntry
from datasources.catalog.litellm import parse_litellm
from datasources.sources.base import json_parser, parse, read_text
from datasources.sources.openrouter import parse_any_openrouter

FORMATS = ("litellm", "openrouter")


@dataclass
class PriceFile:
    path: Path
    format: str = "litellm"
    interval: float = 300.0
    stale_after: float = 900.0
    timeout: float = 30.0
    name: str = "file"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown price file format {self.format!r}: use {' or '.join(FORMATS)}")

    async def fetch(self, client: httpx.AsyncClient) -> list[OfferEntry]:
        text = await read_text(self.path)
        if self.format == "litellm":
            return await parse(json_parser(parse_litellm), text, str(self.path))
        return await parse(parse_any_openrouter, text, str(self.path))
