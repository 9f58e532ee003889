"""A fake OpenAI-compatible provider API: a real HTTP server on 127.0.0.1 (Starlette under uvicorn in a
thread). One server plays any number of providers, each under its own path prefix
(`{url}/{provider}/v1/chat/completions`), with faults injected per provider, and records every request
(body and headers) it receives."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from routing.gateway.metering import prompt_tokens
from tests.conftest import LiveServer


@dataclass
class Behaviour:
    status: int = 200  # an error status answers an OpenAI error body
    retry_after: str | None = None  # with 429
    first_byte_delay: float = 0.0  # before the first byte of the answer body
    chunk_delay: float = 0.0  # between stream chunks (and before the second half of a plain answer)
    cut_after: int | None = None  # stream: drop the connection after this many chunks
    usage: bool = True  # report usage (in the last stream chunk only when include_usage is asked)
    usage_block: dict[str, Any] | None = None  # the usage block to report, as given (any provider's shape)
    reply: str = "Hello from the fake provider."
    pieces: int = 4  # stream content chunks
    tool_call: bool = False  # answer with a tool call when the body has tools
    error_message: str = "fake upstream error"


@dataclass
class Seen:
    provider: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class FakeProvider:
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # providers whose stream the client abandoned
    sent_chunks: list[tuple[str, float]] = field(default_factory=list)  # (provider, time) per stream chunk

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[Route("/{provider}/v1/chat/completions", self.chat, methods=["POST"])])
        self.server = LiveServer(self.app)
        self.url = self.server.url
        self.lock = threading.Lock()

    def __enter__(self) -> FakeProvider:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def base_url(self, provider: str) -> str:
        return f"{self.url}/{provider}/v1"

    def set(self, provider: str, **changes: Any) -> Behaviour:
        self.behaviours[provider] = Behaviour(**changes)
        return self.behaviours[provider]

    def reset(self) -> None:
        self.behaviours.clear()
        self.requests.clear()
        self.cancelled.clear()
        self.sent_chunks.clear()

    def seen(self, provider: str | None = None) -> list[Seen]:
        return [r for r in self.requests if provider is None or r.provider == provider]

    def order(self) -> list[str]:
        return [r.provider for r in self.requests]

    # ---- the fake API --------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        body = await request.json()
        self.requests.append(Seen(provider, body, dict(request.headers), time.monotonic()))
        b = self.behaviours.get(provider, Behaviour())
        if b.status != 200:
            headers = {"retry-after": b.retry_after} if b.retry_after else None
            kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(b.status, "server_error")
            return JSONResponse(
                {"error": {"message": b.error_message, "type": kind, "code": kind}},
                status_code=b.status,
                headers=headers,
            )
        completion_id = "chatcmpl-" + uuid.uuid4().hex[:12]
        usage = self.usage(body, b)
        if body.get("stream"):
            return StreamingResponse(
                self.stream(provider, body, b, completion_id, usage), media_type="text/event-stream"
            )
        message: dict[str, Any] = {"role": "assistant", "content": b.reply}
        finish = "stop"
        if b.tool_call and body.get("tools"):
            message = {"role": "assistant", "content": None, "tool_calls": [self.tool_call(body)]}
            finish = "tool_calls"
        answer: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        }
        if b.usage:
            answer["usage"] = usage
        raw = json.dumps(answer).encode()
        if b.first_byte_delay or b.chunk_delay:

            async def slow() -> Any:
                await asyncio.sleep(b.first_byte_delay)
                yield raw[:10]
                await asyncio.sleep(b.chunk_delay)
                yield raw[10:]

            return StreamingResponse(slow(), media_type="application/json")
        return Response(raw, media_type="application/json")

    def usage(self, body: dict[str, Any], b: Behaviour) -> dict[str, Any]:
        """Prompt tokens by the gateway's own estimator; completion = max_tokens when given; or the
        behaviour's own usage block."""
        if b.usage_block is not None:
            return b.usage_block
        prompt = prompt_tokens(body)
        completion = body.get("max_completion_tokens") or body.get("max_tokens") or len(b.reply.split())
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    @staticmethod
    def tool_call(body: dict[str, Any]) -> dict[str, Any]:
        name = body["tools"][0]["function"]["name"]
        return {
            "id": "call_" + uuid.uuid4().hex[:8],
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"summary": "a red square"})},
        }

    async def stream(
        self, provider: str, body: dict[str, Any], b: Behaviour, completion_id: str, usage: dict[str, Any]
    ) -> Any:
        base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_fake",
        }

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

        events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
        if b.tool_call and body.get("tools"):
            call = self.tool_call(body)
            events.append(chunk([{"index": 0, "delta": {"tool_calls": [{"index": 0, **call}]}, "finish_reason": None}]))
            finish = "tool_calls"
        else:
            size = max(1, len(b.reply) // b.pieces)
            for i in range(0, len(b.reply), size):
                events.append(chunk([{"index": 0, "delta": {"content": b.reply[i : i + size]}, "finish_reason": None}]))
            finish = "stop"
        events.append(chunk([{"index": 0, "delta": {}, "finish_reason": finish}]))
        if b.usage and (body.get("stream_options") or {}).get("include_usage"):
            events.append(chunk([], usage=usage))
        events.append(b"data: [DONE]\n\n")
        finished = False
        try:
            await asyncio.sleep(b.first_byte_delay)
            for index, event in enumerate(events):
                if b.cut_after is not None and index >= b.cut_after:
                    raise ConnectionAbortedError("the fake provider cuts the stream")
                if index:
                    await asyncio.sleep(b.chunk_delay)
                self.sent_chunks.append((provider, time.monotonic()))
                yield event
            finished = True
        finally:
            if not finished and b.cut_after is None:
                self.cancelled.append(provider)


def providers_toml(
    fake_url: str,
    providers: dict[str, str | None],
    gateway: dict[str, float] | None = None,
    base_urls: dict[str, str] | None = None,
) -> str:
    """A PROVIDERS_FILE pointing each provider at the fake (or at `base_urls`), with its platform key."""
    lines = []
    if gateway:
        lines.append("[gateway]")
        lines += [f"{k} = {v}" for k, v in gateway.items()]
    for slug, key in providers.items():
        lines.append(f"[providers.{slug}]")
        lines.append(f'base_url = "{(base_urls or {}).get(slug, f"{fake_url}/{slug}/v1")}"')
        if key:
            lines.append(f'api_key = "{key}"')
    return "\n".join(lines) + "\n"
