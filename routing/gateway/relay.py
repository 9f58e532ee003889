"""Relaying a provider's stream to the client as it arrives, once its usage record is committed: events
are scanned for what they tell (usage, finish, errors), the `_coaxiom` block and `[DONE]` close it, and a
stream cut short ends with an error event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from datasources.pricing import TokenUse
from routing.gateway import charges, forward
from routing.gateway.errors import error_event
from routing.gateway.exchange import Exchange

log = logging.getLogger("pricegraph.gateway")


async def relay(x: Exchange, opened: forward.Opened, watcher: asyncio.Task[None]) -> None:
    """Pass the stream through; the client going away (`watcher` ends) cancels the upstream."""
    candidate = opened.candidate
    state = forward.StreamState()
    status = 200
    source: AsyncIterator[bytes] = opened.chunks
    reader: asyncio.Task[None] | None = None
    if x.recorded is not None and not x.recorded.done():  # keep reading while the record commits
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        reader = asyncio.create_task(_drain(opened.chunks, queue))
        source = _queued(queue)
    try:
        await charges.durable(x)
        relaying = asyncio.create_task(_pump(x, opened, state, source))
        done, _ = await asyncio.wait({relaying, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if relaying not in done:
            relaying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relaying
            status = 499
        else:
            status = relaying.result()
    finally:
        if reader is not None:
            reader.cancel()
        await forward.close(opened.response)
    estimated = state.usage is None
    use = state.usage or TokenUse(x.prompt_tokens, forward.count_unread(state))
    x.gateway.health.throughput(candidate.slug, use.completion, time.monotonic() - opened.first_byte_at)
    charges.settle(x, candidate.model_slug, status, candidate, use, estimated, bill=True)


async def _pump(x: Exchange, opened: forward.Opened, state: forward.StreamState, source: AsyncIterator[bytes]) -> int:
    candidate = opened.candidate
    await x.start(200, b"text/event-stream", {"cache-control": "no-cache", "x-accel-buffering": "no"})
    send = x.send
    out = forward.scan(state, opened.first)
    if out:
        await send({"type": "http.response.body", "body": out, "more_body": True})
    cut: str | None = None
    try:
        async with asyncio.timeout_at(forward.deadline(opened)):
            async for chunk in source:
                out = forward.scan(state, chunk)
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
    except TimeoutError:
        cut = f"{candidate.slug} did not finish the stream within {candidate.provider.timeouts.total:g} s"
    except forward.TransportError as exc:
        cut = f"{candidate.slug} cut the stream short ({type(exc).__name__})"
    tail = forward.scan_end(state)
    if cut is None and not state.done and not state.finished and state.usage is None:
        cut = f"{candidate.slug} ended the stream before it finished"
    if cut is None and state.upstream_error is not None:
        cut = "error"
    closing = tail + forward.coaxiom_chunk(state, candidate, opened.latency_ms)
    if cut is None:
        await send({"type": "http.response.body", "body": closing + forward.DONE})
        return 200
    if cut != "error":
        closing += error_event(cut, 502, "stream_interrupted")
        log.warning("request %s: %s", x.request_id, cut)
        x.gateway.health.failed(candidate.slug)
        x.gateway.observer.failed(candidate.slug, "stream_interrupted")
    await send({"type": "http.response.body", "body": closing})
    return 502


async def _drain(chunks: AsyncIterator[bytes], queue: asyncio.Queue[bytes | BaseException | None]) -> None:
    """Read an upstream stream into a queue (its end or its error last), while the client may not get it yet."""
    try:
        async for chunk in chunks:
            queue.put_nowait(chunk)
    except Exception as exc:  # noqa: BLE001 - handed to the reader of the queue
        queue.put_nowait(exc)
    else:
        queue.put_nowait(None)


async def _queued(queue: asyncio.Queue[bytes | BaseException | None]) -> AsyncIterator[bytes]:
    while (item := await queue.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item
