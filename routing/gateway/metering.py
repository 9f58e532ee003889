"""What a request uses and may cost: token estimates, the most a candidate can cost (what a
platform-key request holds before it is sent there), and what an answer reports it used. The prices
themselves are applied by datasources.pricing, the one place for cost."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from datasources import pricing
from datasources.pricing import TokenUse
from routing.gateway.select import Candidate

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4  # role and separators
TOKENS_PER_IMAGE = 765  # a 1024×1024 image at high detail in OpenAI's tiling; a fixed count per image part
TOKENS_PER_AUDIO = 200
DEFAULT_MAX_OUTPUT = 4096  # the cap a hold assumes when the body sets no max_tokens and the offer names none


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                kind = part.get("type")
                if kind == "image_url":
                    total += TOKENS_PER_IMAGE
                elif kind == "input_audio":
                    total += TOKENS_PER_AUDIO
                elif isinstance(part.get("text"), str):
                    total += text_tokens(part["text"])
            elif isinstance(part, str):
                total += text_tokens(part)
        return total
    return 0


def prompt_tokens(body: dict[str, Any]) -> int:
    """A deterministic estimate of the prompt's tokens: ~4 characters a token, a fixed count per image."""
    total = 3  # the reply's priming
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE + _content_tokens(message.get("content"))
        if message.get("tool_calls"):
            total += text_tokens(_compact(message["tool_calls"]))
        if isinstance(message.get("name"), str):
            total += text_tokens(message["name"])
    for name in ("tools", "functions", "response_format"):
        if body.get(name):
            total += text_tokens(_compact(body[name]))
    return total


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def max_output(body: dict[str, Any], candidate: Candidate) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return candidate.max_output_tokens or DEFAULT_MAX_OUTPUT


def max_cost(body: dict[str, Any], candidate: Candidate, prompt: int) -> Decimal:
    """The most a request can cost at this candidate: the prompt estimate and every output token allowed,
    at the candidate's dearest rates for the tier the prompt falls in."""
    return pricing.most(candidate.price, prompt, max_output(body, candidate))


class CompletionCounter:
    """Counts what an answer produced, for answers that report no usage: the text and tool calls."""

    def __init__(self) -> None:
        self.chars = 0

    def add_message(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        for name in ("content", "reasoning_content", "reasoning", "refusal"):
            value = message.get(name)
            if isinstance(value, str):
                self.chars += len(value)
            elif isinstance(value, list):
                self.chars += sum(
                    len(p.get("text", "")) for p in value if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                for name in ("name", "arguments"):
                    if isinstance(function.get(name), str):
                        self.chars += len(function[name])

    @property
    def tokens(self) -> int:
        return math.ceil(self.chars / CHARS_PER_TOKEN)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _details(usage: dict[str, Any], name: str) -> dict[str, Any]:
    value = usage.get(name)
    return value if isinstance(value, dict) else {}


def reported_usage(usage: Any) -> TokenUse | None:
    """What the provider's usage block says the request used, in either shape:

    - OpenAI's: `prompt_tokens` counts every prompt token, cached ones included
      (`prompt_tokens_details.cached_tokens`; a cache write as `cache_write_tokens` there, or Anthropic's
      `cache_creation_input_tokens` beside it; DeepSeek's `prompt_cache_hit_tokens`), and
      `completion_tokens` counts reasoning (`completion_tokens_details.reasoning_tokens`);
    - Anthropic's: `input_tokens` counts only the uncached prompt; `cache_read_input_tokens` and
      `cache_creation_input_tokens` (split into `cache_creation.ephemeral_5m/1h_input_tokens`) come on top.

    Web searches: `server_tool_use.web_search_requests`. None when the block gives no usable counts."""
    if not isinstance(usage, dict):
        return None
    prompt_details = _details(usage, "prompt_tokens_details")
    completion_details = _details(usage, "completion_tokens_details")
    creation = _details(usage, "cache_creation")
    written_1h = _count(creation.get("ephemeral_1h_input_tokens")) or 0
    searches = _count(_details(usage, "server_tool_use").get("web_search_requests")) or 0
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if prompt is not None and completion is not None:
        read = (
            _count(prompt_details.get("cached_tokens"))
            or _count(usage.get("cache_read_input_tokens"))
            or _count(usage.get("prompt_cache_hit_tokens"))
            or 0
        )
        written = _count(prompt_details.get("cache_write_tokens")) or _count(usage.get("cache_creation_input_tokens"))
        reasoning = _count(completion_details.get("reasoning_tokens")) or 0
        written = written or 0
        read, written = min(read, prompt), min(written, max(prompt - read, 0))
        written_1h = min(written_1h, written)
        return TokenUse(
            prompt=prompt,
            completion=completion,
            cache_read=read,
            cache_write=written - written_1h,
            cache_write_1h=written_1h,
            reasoning=min(reasoning, completion),
            searches=searches,
        )
    uncached, output = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if uncached is None or output is None:
        return None
    read = _count(usage.get("cache_read_input_tokens")) or 0
    written = _count(usage.get("cache_creation_input_tokens")) or 0
    written_1h = min(written_1h, written)
    return TokenUse(
        prompt=uncached + read + written,
        completion=output,
        cache_read=read,
        cache_write=written - written_1h,
        cache_write_1h=written_1h,
        searches=searches,
    )
