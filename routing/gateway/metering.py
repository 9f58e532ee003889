"""What a request uses and may cost: token estimates, the most a candidate can cost (what a
platform-key request holds before it is sent there), and the real cost from what the answer used."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from datasources.money import ONE_MILLION, price
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


def cost(candidate: Candidate, prompt: int, completion: int) -> Decimal:
    return price((prompt * candidate.input_per_1m + completion * candidate.output_per_1m) / ONE_MILLION)


def max_cost(body: dict[str, Any], candidate: Candidate, prompt: int) -> Decimal:
    """The most a request can cost at this candidate: the prompt estimate and every output token allowed."""
    return cost(candidate, prompt, max_output(body, candidate))


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


def reported_usage(usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 and completion >= 0:
        return prompt, completion
    return None
