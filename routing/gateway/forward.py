"""Calling one provider: the shared aiohttp client, one attempt with its
first-byte and total deadlines, the answer's classification (success, fall back, or relay the
refusal), SSE passthrough, and the `_coaxiom` block.

Chunk bytes go to the client as they arrive and unchanged; the only bytes added are the `_coaxiom`
chunk before `data: [DONE]` (and an error event when the upstream cuts a stream short).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from datasources.pricing import TokenUse
from routing.gateway.errors import GatewayError
from routing.gateway.health import parse_retry_after
from routing.gateway.keys import redact
from routing.gateway.metering import CompletionCounter, reported_usage
from routing.gateway.select import Candidate
from routing.wire import dumps

VERSION = "1.0"
MAX_ERROR_BODY = 65_536
NO_FALLBACK = frozenset({400, 401, 402, 403, 413, 422})  # the request's (or its key's) own fault
BREAKER_STATUSES = frozenset({408, 500, 502, 503, 504})
_BOUNDARY = re.compile(rb"\r?\n\r?\n")


def make_client(max_connections: int = 1000) -> aiohttp.ClientSession:
    """The one upstream client of a process: aiohttp's HTTP/1.1 keep-alive pool, no cookies, no redirects."""
    connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=30.0, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5.0),
    )


TransportError = (aiohttp.ClientError, OSError)  # a connection refused, reset or cut short


@dataclass
class Failure:
    """One candidate that did not answer usefully: what it answered (never its key)."""

    provider: str
    reason: str
    status: int | None = None
    retry_after: float | None = None
    breaker: bool = True  # counts towards the provider's circuit breaker
    kind: str = "other"  # a short, fixed name for the reason: timeout, connection, http_503, rate_limited, ...

    def describe(self) -> dict[str, Any]:
        return {"provider": self.provider, "status": self.status, "error": self.reason}


@dataclass
class Opened:
    """A 2xx answer whose first bytes arrived: from here on there is no fallback."""

    candidate: Candidate
    response: aiohttp.ClientResponse
    chunks: AsyncIterator[bytes]
    first: bytes
    started: float
    first_byte_at: float

    @property
    def latency_ms(self) -> int:
        return round((self.first_byte_at - self.started) * 1000)


def upstream_body(body: dict[str, Any], candidate: Candidate, stream: bool) -> bytes:
    """The client's body for this provider: its own model id, our `provider` preferences removed, and
    usage asked for in a stream's last chunk."""
    out = {k: v for k, v in body.items() if k != "provider"}
    out["model"] = candidate.provider_model_id
    if stream:
        options = out.get("stream_options")
        out["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()


def _headers(candidate: Candidate, stream: bool, request_id: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "accept-encoding": "identity",  # bytes are relayed as they come, and read for usage
        "x-request-id": request_id,
        **candidate.provider.auth_headers(candidate.key),
    }


async def open_attempt(
    client: aiohttp.ClientSession, candidate: Candidate, payload: bytes, stream: bool, request_id: str
) -> Opened | Failure | GatewayError:
    """Send, and wait for the first byte of the answer within the first-byte deadline."""
    timeouts = candidate.provider.timeouts
    started = time.monotonic()
    response: aiohttp.ClientResponse | None = None
    try:
        async with asyncio.timeout(min(timeouts.first_byte, timeouts.total)):
            response = await client.post(
                candidate.provider.chat_url(),
                data=payload,
                headers=_headers(candidate, stream, request_id),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
            )
            if not 200 <= response.status < 300:
                return await _refused(candidate, response)
            chunks = response.content.iter_any()
            first = b""
            while not first:  # skip empty reads; an empty answer is a failure
                try:
                    first = await chunks.__anext__()
                except StopAsyncIteration:
                    response.release()
                    return Failure(candidate.slug, "empty answer", response.status, kind="empty")
        return Opened(candidate, response, chunks, first, started, time.monotonic())
    except TimeoutError:
        limit = min(timeouts.first_byte, timeouts.total)
        await close(response)
        return Failure(candidate.slug, f"timeout: no first byte within {limit:g} s", kind="timeout")
    except TransportError as exc:
        await close(response)
        return Failure(candidate.slug, f"connection failed ({type(exc).__name__})", kind="connection")
    except BaseException:
        await close(response)
        raise


async def close(response: aiohttp.ClientResponse | None) -> None:
    """Give the connection back; one whose answer was not read to the end is closed instead."""
    if response is not None:
        try:
            if response.content.at_eof():
                response.release()
            else:
                response.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass


def _message(data: Any) -> tuple[str | None, Any]:
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail")
            return (message if isinstance(message, str) else None), error.get("code")
        if isinstance(error, str):
            return error, None
    return None, None


async def _refused(candidate: Candidate, response: aiohttp.ClientResponse) -> Failure | GatewayError:
    """A non-2xx answer: fall back (429, 5xx, ...) or relay it (400, 401, 402, ...)."""
    status = response.status
    try:
        raw = b""
        async for chunk in response.content.iter_any():
            raw += chunk
            if len(raw) > MAX_ERROR_BODY:
                break
    except TransportError:
        pass
    finally:
        await close(response)
    try:
        message, code = _message(json.loads(raw))
    except ValueError:
        message, code = None, None
    secrets = [candidate.key]
    if status == 429:
        return Failure(
            candidate.slug,
            "rate limited",
            status,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            breaker=False,
            kind="rate_limited",
        )
    if status not in NO_FALLBACK:
        return Failure(
            candidate.slug, f"HTTP {status}", status, breaker=status in BREAKER_STATUSES, kind=f"http_{status}"
        )
    if status in (401, 403):
        whose = "your key from X-Provider-Keys" if candidate.key_source == "customer" else "the platform key"
        text = f"{candidate.slug} refused {whose} (HTTP {status})"
        if candidate.key_source == "platform":
            return GatewayError(502, text, "provider_auth_failed", metadata={"provider": candidate.slug})
    else:
        text = f"{candidate.slug}: " + redact(message or f"HTTP {status}", secrets)[:2000]
    return GatewayError(
        status, text, code if isinstance(code, str) else f"upstream_{status}", metadata={"provider": candidate.slug}
    )


def coaxiom(candidate: Candidate, latency_ms: int) -> dict[str, Any]:
    return {
        "provider": candidate.slug,
        "provider_name": candidate.provider.name,
        "model_slug": candidate.model_slug,
        "provider_model_id": candidate.provider_model_id,
        "routed_by_price": candidate.routed_by_price,
        "price_per_1m_usd": candidate.blended,
        "latency_ms": latency_ms,
        "key_source": candidate.key_source,
        "version": VERSION,
    }


@dataclass
class Answer:
    """A non-streamed answer, read whole: its bytes with `_coaxiom`, and what it used."""

    body: bytes
    usage: TokenUse | None
    completion_estimate: int


async def read_answer(opened: Opened) -> Answer | Failure:
    """The rest of a non-streamed answer within the total deadline; nothing has reached the client yet,
    so a failure here still falls back."""
    candidate = opened.candidate
    parts = [opened.first]
    try:
        async with asyncio.timeout_at(deadline(opened)):
            async for chunk in opened.chunks:
                parts.append(chunk)
    except TimeoutError:
        limit = candidate.provider.timeouts.total
        return Failure(candidate.slug, f"timeout: answer not complete within {limit:g} s", kind="timeout")
    except TransportError as exc:
        return Failure(candidate.slug, f"answer cut short ({type(exc).__name__})", kind="cut_short")
    finally:
        await close(opened.response)
    raw = b"".join(parts)
    try:
        data = json.loads(raw)
    except ValueError:
        return Failure(candidate.slug, "the answer is not JSON", opened.response.status, kind="invalid_answer")
    if not isinstance(data, dict):
        return Failure(candidate.slug, "the answer is not a JSON object", opened.response.status, kind="invalid_answer")
    counter = CompletionCounter()
    for choice in data.get("choices") or []:
        if isinstance(choice, dict):
            counter.add_message(choice.get("message"))
    block = dumps(coaxiom(candidate, opened.latency_ms))
    stripped = raw.rstrip()
    if data and stripped.endswith(b"}"):  # splice: the upstream's bytes stay as they were
        body = stripped[:-1] + b',"_coaxiom":' + block + b"}"
    else:
        body = dumps({**data, "_coaxiom": coaxiom(candidate, opened.latency_ms)})
    return Answer(body, reported_usage(data.get("usage")), counter.tokens)


def deadline(opened: Opened) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + max(0.0, opened.started + opened.candidate.provider.timeouts.total - time.monotonic())


@dataclass
class StreamState:
    """What a relayed stream produced so far: enough to bill it if it stops at any point."""

    counter: CompletionCounter = field(default_factory=CompletionCounter)
    usage: TokenUse | None = None
    done: bool = False  # the upstream sent [DONE]
    finished: bool = False  # some choice reached a finish_reason
    upstream_error: str | None = None
    chunk_id: str | None = None
    created: int | None = None
    model: str | None = None
    tail: bytes = b""
    unread: list[bytes] = field(default_factory=list)  # content chunks, counted only if usage never comes


def scan(state: StreamState, data: bytes) -> bytes:
    """Feed upstream bytes; returns the bytes to relay now: whole events, as they came, minus [DONE]."""
    buffer = state.tail + data if state.tail else data
    cut = 0
    for match in _BOUNDARY.finditer(buffer):
        cut = match.end()
    if cut == 0:
        state.tail = buffer
        return b""
    complete, state.tail = buffer[:cut], buffer[cut:]
    if b"[DONE]" not in complete:
        _read_events(state, complete)
        return complete
    kept = []
    start = 0
    for match in _BOUNDARY.finditer(complete):
        event = complete[start : match.end()]
        start = match.end()
        if _is_done(event):
            state.done = True
        else:
            _read_events(state, event)
            kept.append(event)
    return b"".join(kept)


def scan_end(state: StreamState) -> bytes:
    """The bytes left after the upstream's last chunk (an event without its blank line)."""
    tail, state.tail = state.tail, b""
    if not tail.strip():
        return b""
    if _is_done(tail):
        state.done = True
        return b""
    _read_events(state, tail)
    return tail if tail.endswith(b"\n\n") else tail.rstrip(b"\r\n") + b"\n\n"


def _is_done(event: bytes) -> bool:
    return any(line.strip() in (b"data: [DONE]", b"data:[DONE]") for line in event.splitlines())


_NOT_FINISHED = re.compile(rb'"finish_reason"\s*:\s*null')


def _telling(line: bytes, state: StreamState) -> bool:
    """Whether an event line says more than content: the first (its id), usage, an error, a finish."""
    if state.chunk_id is None or b'"usage"' in line or b'"error"' in line:
        return True
    return b"finish_reason" in line and _NOT_FINISHED.search(line) is None


def _read_events(state: StreamState, events: bytes) -> None:
    """Read what billing needs. Content chunks are only kept: their text is counted only when the
    upstream reports no usage (`count_unread`), so a stream with usage parses almost nothing."""
    for line in events.splitlines():
        if not line.startswith(b"data:"):
            continue
        if not _telling(line, state):
            state.unread.append(line)
            continue
        _read_line(state, line)


def _read_line(state: StreamState, line: bytes) -> None:
    try:
        data = json.loads(line[5:])
    except ValueError:
        return
    if not isinstance(data, dict):
        return
    if data.get("error") is not None:
        message, _ = _message(data)
        state.upstream_error = message or "error event"
        return
    if state.chunk_id is None and isinstance(data.get("id"), str):
        state.chunk_id = data["id"]
        state.created = data.get("created") if isinstance(data.get("created"), int) else None
        state.model = data.get("model") if isinstance(data.get("model"), str) else None
    usage = reported_usage(data.get("usage"))
    if usage is not None:
        state.usage = usage
    for choice in data.get("choices") or ():
        if isinstance(choice, dict):
            state.counter.add_message(choice.get("delta"))
            if choice.get("finish_reason"):
                state.finished = True


def count_unread(state: StreamState) -> int:
    """The completion tokens of a stream without usage, counted from every content chunk it relayed."""
    lines, state.unread = state.unread, []
    for line in lines:
        _read_line(state, line)
    return state.counter.tokens


def coaxiom_chunk(state: StreamState, candidate: Candidate, latency_ms: int) -> bytes:
    """The last chunk before [DONE]: OpenAI's usage-chunk shape (`choices: []`) carrying `_coaxiom`."""
    chunk = {
        "id": state.chunk_id or "chatcmpl-coaxiom",
        "object": "chat.completion.chunk",
        "created": state.created or int(time.time()),
        "model": state.model or candidate.provider_model_id,
        "choices": [],
        "_coaxiom": coaxiom(candidate, latency_ms),
    }
    return b"data: " + dumps(chunk) + b"\n\n"


DONE = b"data: [DONE]\n\n"
