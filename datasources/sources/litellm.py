"""LiteLLM's price map (`model_prices_and_context_window.json`) at a URL or a path."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from datasources.catalog.entries import OfferEntry
from datasources.catalog.litellm import parse_litellm
from datasources.sources.base import get_text, is_url, json_parser, parse, read_text

DEFAULT_URL = "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"


@dataclass
class LiteLLMPrices:
    location: str = DEFAULT_URL
    interval: float = 300.0
    stale_after: float = 900.0
    timeout: float = 30.0
    name: str = "litellm"

    async def fetch(self, client: httpx.AsyncClient) -> list[OfferEntry]:
        if is_url(self.location):
            text = await get_text(client, self.location, self.timeout)
        else:
            text = await read_text(self.location)
        return await parse(json_parser(parse_litellm), text, self.location)
