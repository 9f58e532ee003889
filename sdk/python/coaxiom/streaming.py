"""Streamed chat answers: server-sent events into chunks; the final `_coaxiom` block kept aside."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from coaxiom._http import loads
from coaxiom.errors import APIError
from coaxiom.types import ChatCompletionChunk, CoaxiomMeta


class _StreamState:
    def __init__(self) -> None:
        self.coaxiom: CoaxiomMeta | None = None
        self.usage: dict[str, Any] | None = None
        self.text_parts: list[str] = []
        self.done = False

    def feed(self, line: str) -> ChatCompletionChunk | None:
        """One SSE line: a chunk to yield, or None (comments, blank lines, metadata, [DONE])."""
        if not line.startswith("data:"):
            return None
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return None
        body = loads(data)
        if isinstance(body, dict) and "error" in body:
            error = body["error"] if isinstance(body["error"], dict) else {"message": str(body["error"])}
            raise APIError(str(error.get("message") or "stream failed"), None, error.get("code"), body)
        chunk = ChatCompletionChunk(body)
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("_coaxiom"), dict):
            self.coaxiom = CoaxiomMeta.from_dict(chunk["_coaxiom"])
            if not chunk.choices:  # the metadata-only last chunk: exposed as `.coaxiom`, not yielded
                return None
        self.text_parts.append(chunk.delta)
        return chunk


class ChatStream:
    """Iterate for chunks; afterwards `.coaxiom`, `.usage` and `.text` hold the totals."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._state = _StreamState()

    @property
    def coaxiom(self) -> CoaxiomMeta | None:
        return self._state.coaxiom

    @property
    def usage(self) -> dict[str, Any] | None:
        return self._state.usage

    @property
    def text(self) -> str:
        return "".join(self._state.text_parts)

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        try:
            for line in self._response.iter_lines():
                chunk = self._state.feed(line)
                if chunk is not None:
                    yield chunk
                if self._state.done:
                    break
        finally:
            self.close()

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncChatStream:
    """`async for` chunks; afterwards `.coaxiom`, `.usage` and `.text` hold the totals."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._state = _StreamState()

    @property
    def coaxiom(self) -> CoaxiomMeta | None:
        return self._state.coaxiom

    @property
    def usage(self) -> dict[str, Any] | None:
        return self._state.usage

    @property
    def text(self) -> str:
        return "".join(self._state.text_parts)

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            async for line in self._response.aiter_lines():
                chunk = self._state.feed(line)
                if chunk is not None:
                    yield chunk
                if self._state.done:
                    break
        finally:
            await self.close()

    async def close(self) -> None:
        await self._response.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
