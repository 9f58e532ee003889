"""What a polled price source is, and the failures a poll reports instead of raising."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import httpx

from datasources.catalog.entries import CatalogFormatError, OfferEntry

TextParser = Callable[[str, str], list[OfferEntry]]


class SourceError(Exception):
    """A fetch or parse failure: a timeout, an HTTP error, broken JSON, an unreadable or malformed catalog."""


@runtime_checkable
class Source(Protocol):
    """A source that answers with a full snapshot of its offers on every fetch."""

    name: str
    interval: float
    stale_after: float
    timeout: float

    async def fetch(self, client: httpx.AsyncClient) -> list[OfferEntry]: ...


def raise_if_cancelled() -> None:
    """For `except Exception` blocks: a cancelled task stops even if a library turned the cancellation
    into another exception on its way out (e.g. an error raised while rolling back)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


async def get_text(client: httpx.AsyncClient, url: str, timeout: float) -> str:
    try:
        response = await client.get(url, timeout=timeout, follow_redirects=True)
    except httpx.TimeoutException:
        raise SourceError(f"{url}: timed out after {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"{url}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise SourceError(f"{url}: HTTP {response.status_code}")
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{url}: not UTF-8: {exc}") from None


async def read_text(path: str | Path) -> str:
    try:
        return await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None


def loads(text: str, where: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def json_parser(parser: Callable[[object, str], list[OfferEntry]]) -> TextParser:
    """A catalog parser of decoded JSON (`parse_litellm`, `parse_openrouter`) as a parser of text."""
    return lambda text, where: parser(loads(text, where), where)


async def parse(parser: TextParser, text: str, where: str) -> list[OfferEntry]:
    """Decode and parse off the event loop; an empty snapshot is refused (it would delist everything)."""

    def work() -> list[OfferEntry]:
        try:
            return parser(text, where)
        except CatalogFormatError as exc:
            raise SourceError(str(exc)) from None

    offers = await asyncio.to_thread(work)
    if not offers:
        raise SourceError(f"{where}: no offers in the snapshot")
    return offers
