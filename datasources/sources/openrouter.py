"""OpenRouter: the model list (`/api/v1/models`) and per-model endpoint lists (per-provider prices).

An endpoints URL may answer with the frontend stats record our data holds (`{"model_slug", "variant",
"endpoints": [...]}`, one object or JSON lines of them) or the public
`/api/v1/models/{author}/{slug}/endpoints` shape (`{"data": {"id", "architecture", "endpoints": [...]}}`),
whose endpoints name their host by `tag` (`deepinfra/fp4`) rather than `provider_slug`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from datasources.catalog.entries import OfferEntry
from datasources.catalog.litellm import merge_duplicates
from datasources.catalog.openrouter import parse_openrouter, parse_openrouter_endpoints
from datasources.sources.base import SourceError, get_text, json_parser, loads, parse

DEFAULT_MODELS_URL = "https://openrouter.ai/api/v1/models"


@dataclass
class OpenRouterModels:
    url: str = DEFAULT_MODELS_URL
    interval: float = 300.0
    stale_after: float = 900.0
    timeout: float = 30.0
    name: str = "openrouter"

    async def fetch(self, client: httpx.AsyncClient) -> list[OfferEntry]:
        text = await get_text(client, self.url, self.timeout)
        return await parse(json_parser(parse_openrouter), text, self.url)


@dataclass
class OpenRouterEndpoints:
    """Every URL must answer for a poll to count: a partial snapshot would delist the missing models."""

    urls: Sequence[str] = field(default_factory=tuple)
    interval: float = 300.0
    stale_after: float = 900.0
    timeout: float = 30.0
    name: str = "openrouter-endpoints"

    async def fetch(self, client: httpx.AsyncClient) -> list[OfferEntry]:
        offers: list[OfferEntry] = []
        for url in self.urls:
            text = await get_text(client, url, self.timeout)
            offers.extend(await parse(parse_endpoints_text, text, url))
        return merge_duplicates(offers)


def parse_endpoints_text(text: str, where: str) -> list[OfferEntry]:
    return parse_openrouter_endpoints([_record(r) for r in _json_or_lines(text, where)], where)


def parse_any_openrouter(text: str, where: str) -> list[OfferEntry]:
    """A models list (`{"data": [...]}`) or endpoint records, told apart by shape."""
    records = _json_or_lines(text, where)
    if len(records) == 1 and isinstance(records[0], dict) and isinstance(records[0].get("data"), list):
        return parse_openrouter(records[0], where)
    return parse_openrouter_endpoints([_record(r) for r in records], where)


def _json_or_lines(text: str, where: str) -> list[object]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise SourceError(f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        return [loads(line, f"{where} line {n}") for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    return data if isinstance(data, list) else [data]


def _record(record: object) -> object:
    """A public `{"data": {"id", "endpoints"}}` answer as the frontend record the catalog parser reads."""
    if not isinstance(record, dict) or not isinstance(record.get("data"), dict):
        return record
    model = record["data"]
    if not isinstance(model.get("id"), str) or not isinstance(model.get("endpoints"), list):
        return record
    slug, _, tag = model["id"].partition(":")
    architecture = model.get("architecture") if isinstance(model.get("architecture"), dict) else {}
    inner = {"input_modalities": architecture.get("input_modalities") or []}
    endpoints = [
        {
            **e,
            "provider_slug": e.get("provider_slug") or e.get("tag") or _slug(e.get("provider_name")),
            "model": e.get("model") or inner,
        }
        if isinstance(e, dict)
        else e
        for e in model["endpoints"]
    ]
    return {"model_slug": slug, "variant": tag or None, "endpoints": endpoints}


def _slug(name: object) -> object:
    return name.strip().lower().replace(" ", "-") if isinstance(name, str) else name
