"""Usage and money: token estimates, the hold a platform-key request takes before it is sent, and the
batched writer that turns finished requests into usage records, ledger rows and events off the
request path (one transaction per batch)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources import ledger
from datasources.db.models import UsageRecord
from datasources.events import BalanceChanged, Broker, Event, UsageRecorded
from datasources.money import ONE_MILLION, price
from routing.gateway.select import Candidate

log = logging.getLogger("pricegraph.gateway.metering")

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


def hold_amount(body: dict[str, Any], candidates: Iterable[Candidate], prompt: int) -> Decimal:
    """The most any platform-key candidate may cost (fallback may route to the dearest)."""
    return max((cost(c, prompt, max_output(body, c)) for c in candidates if c.key_source == "platform"),
               default=Decimal(0))


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
                self.chars += sum(len(p.get("text", "")) for p in value if isinstance(p, dict)
                                  and isinstance(p.get("text"), str))
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


@dataclass
class Usage:
    """A finished request, to be written: what was used, what it cost, and the hold to settle."""

    account_id: int
    api_key_id: str | None
    model_slug: str
    endpoint: str
    status: int
    request_id: str
    provider_slug: str | None = None
    variant: str | None = None
    key_source: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    latency_ms: int | None = None
    estimated: bool = False
    held: Decimal = Decimal(0)
    charge: bool = False  # platform key: the cost is taken from the balance
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class UsageWriter:
    """Collects finished requests and writes them in batches: every `interval` seconds or `batch` records."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], broker: Broker,
                 interval: float = 0.05, batch: int = 200) -> None:
        self.sessionmaker = sessionmaker
        self.broker = broker
        self.interval = interval
        self.batch = batch
        self.pending: list[Usage] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.written = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def submit(self, usage: Usage) -> None:
        self.pending.append(usage)
        self.idle.clear()
        if len(self.pending) >= self.batch:
            self.wake.set()

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="gateway-usage-writer")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        while self.pending:  # what is left is written before the process goes
            await self._flush()

    async def drained(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is written (tests, shutdown)."""
        await asyncio.wait_for(self.idle.wait(), timeout)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.interval)
            self.wake.clear()
            while self.pending:
                await self._flush()
            self.idle.set()

    async def _flush(self) -> None:
        batch, self.pending = self.pending[: self.batch], self.pending[self.batch:]
        for attempt in range(5):
            try:
                await self._write(batch)
                self.written += len(batch)
                return
            except asyncio.CancelledError:
                self.pending[:0] = batch
                raise
            except Exception as exc:  # noqa: BLE001 - the batch is kept and retried
                log.warning("writing %d usage records failed (%s), attempt %d", len(batch),
                            type(exc).__name__, attempt + 1)
                await asyncio.sleep(0.05 * 2 ** attempt)
        log.error("dropped %d usage records after 5 failed attempts; holds stay reserved", len(batch))

    async def _write(self, batch: Sequence[Usage]) -> None:
        # One account row at a time, in id order: concurrent batches never wait on each other in a cycle.
        ordered = sorted(batch, key=lambda u: u.account_id)
        events: list[Event] = []
        async with self.sessionmaker() as session, session.begin():
            for usage in ordered:
                record_id = (await session.execute(insert(UsageRecord).values(
                    account_id=usage.account_id, api_key_id=usage.api_key_id, model_slug=usage.model_slug,
                    provider_slug=usage.provider_slug, endpoint=usage.endpoint,
                    prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                    cost=usage.cost, latency_ms=usage.latency_ms, status=usage.status,
                    key_source=usage.key_source, created_at=usage.created_at, request_id=usage.request_id,
                    variant=usage.variant, estimated=usage.estimated,
                ).returning(UsageRecord.id))).scalar_one()
                events.append(UsageRecorded(
                    usage_id=record_id, account_id=usage.account_id, api_key_id=usage.api_key_id,
                    model=usage.model_slug, provider=usage.provider_slug, endpoint=usage.endpoint,
                    prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                    cost=usage.cost, status=usage.status, estimated=usage.estimated, created_at=usage.created_at,
                ))
                if usage.charge and usage.cost > 0:
                    settled = await ledger.settle(session, usage.account_id, usage.held, usage.cost,
                                                  f"{usage.model_slug} via {usage.provider_slug}", record_id)
                    events.append(BalanceChanged(
                        account_id=usage.account_id, transaction_id=settled.transaction_id, type="usage",
                        amount=-settled.charged, balance=settled.balance, created_at=usage.created_at,
                    ))
                    if settled.unbilled:
                        log.warning("request %s cost %s USD more than the balance covered", usage.request_id,
                                    settled.unbilled)
                elif usage.held:
                    await ledger.release(session, usage.account_id, usage.held)
            await self.broker.publish(session, events)
