"""The gateway's routes: `POST /api/v1/route/chat/completions` and `POST /v1/chat/completions` (one
pure ASGI application), and `GET /api/v1/route/models`. `install(app)` is all a Starlette app needs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from datasources import errors
from datasources.credit import CreditBook, Hold
from datasources.db.models import OfferStatus
from datasources.keytable import KeyTable
from datasources.plans import Feature, require
from datasources.pricebook import PriceBook
from datasources.quotas import Admission, QuotaBook
from datasources.recorder import Finished, Pending, Recorder
from routing import limits
from routing.auth import Principal, authenticate
from routing.gateway import forward, metering
from routing.gateway.errors import GatewayError, error_event
from routing.gateway.health import Health
from routing.gateway.keys import HEADER as KEYS_HEADER
from routing.gateway.keys import parse_provider_keys
from routing.gateway.providers import GatewayConfig
from routing.gateway.select import Candidate, parse_preferences, select_candidates
from routing.rest.endpoint import Call, endpoint

log = logging.getLogger("pricegraph.gateway")

MAX_BODY = 32 * 1024 * 1024  # images travel inline as base64
RECORD_TIMEOUT = 10.0  # seconds an answer may wait for its pending usage record to be committed


def _request_ids() -> Iterator[str]:
    """Unique across processes (a random prefix per process) and cheap: no system call per request."""
    prefix = "req_" + secrets.token_hex(6)
    return (f"{prefix}{n:012x}" for n in itertools.count(1))


@dataclass
class Gateway:
    """What the gateway keeps for the life of the app (`app.state.gateway`); the money and the keys it
    works with are the app's (`keys`, `quotas`, `credit`, `recorder`, `book`)."""

    config: GatewayConfig
    client: aiohttp.ClientSession
    health: Health
    keys: KeyTable
    quotas: QuotaBook
    credit: CreditBook
    recorder: Recorder
    book: PriceBook
    request_ids: Iterator[str] = field(default_factory=lambda: _request_ids())

    @classmethod
    def start(cls, config: GatewayConfig, state: Any) -> Gateway:
        return cls(config, forward.make_client(), Health(config.breaker_failures, config.breaker_cooldown),
                   state.keys, state.quotas, state.credit, state.recorder, state.book)

    async def stop(self) -> None:
        await self.client.close()


def install(app: Starlette, config: GatewayConfig | None = None) -> None:
    """Put the gateway's routes ahead of the app's own (`/api/v1`, `/v1` mounts) and start and stop its
    state (`app.state.gateway`) inside the app's lifespan, after the database and broker are up.
    The configuration is read from PROVIDERS_FILE when not given. Installing again only replaces the
    configuration (tests install their own over the one server.py installed)."""
    installed = getattr(app.state, "gateway_config", None) is not None
    app.state.gateway_config = config or GatewayConfig.from_env()
    if installed:
        return
    app.router.routes[0:0] = routes()
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Any]:
        async with inner(app) as state:
            gateway = Gateway.start(app.state.gateway_config, app.state)
            app.state.gateway = gateway
            try:
                yield state
            finally:
                await gateway.stop()

    app.router.lifespan_context = lifespan


def routes() -> list[BaseRoute]:
    chat = ChatCompletions()
    return [
        Route("/api/v1/route/chat/completions", chat, methods=["POST"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/api/v1/route/models", route_models, methods=["GET"]),
    ]


# ---- the chat completions application --------------------------------------------------------------


@dataclass
class Exchange:
    """One request at the gateway, from its bytes to its usage record."""

    scope: Scope
    receive: Receive
    send: Send
    gateway: Gateway
    request_id: str
    started: float = field(default_factory=time.monotonic)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    principal: Principal | None = None
    admission: Admission | None = None
    hold: Hold | None = None  # what a platform-key attempt may cost, reserved on the account's lease
    recorded: asyncio.Future[None] | None = None  # the pending usage record's commit
    body: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    prompt_tokens: int = 0
    response_started: bool = False
    finished: bool = False

    @property
    def account_id(self) -> int:
        assert self.principal is not None and self.principal.account_id is not None
        return self.principal.account_id

    def headers(self, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
        values = {"x-request-id": self.request_id, **(extra or {})}
        if self.admission is not None:
            values.update({k.lower(): v for k, v in limits.rate_limit_headers(self.admission).items()})
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in values.items()]

    async def start(self, status: int, content_type: bytes, extra: dict[str, str] | None = None) -> None:
        self.response_started = True
        await self.send({"type": "http.response.start", "status": status,
                         "headers": [(b"content-type", content_type), *self.headers(extra)]})

    async def answer(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        await self.start(status, b"application/json", {**(extra or {}), "content-length": str(len(body))})
        await self.send({"type": "http.response.body", "body": body})

    async def fail(self, error: GatewayError) -> None:
        await self.answer(error.status, error.encode(), error.headers)


class ChatCompletions:
    """OpenAI's `POST /chat/completions`, routed: a pure ASGI application."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway: Gateway = scope["app"].state.gateway
        exchange = Exchange(scope, receive, send, gateway, next(gateway.request_ids))
        try:
            await self.handle(exchange)
        except GatewayError as exc:
            await self.refuse(exchange, exc)
        except errors.DomainError as exc:
            await self.refuse(exchange, GatewayError.from_domain(exc))
        except _Gone:
            self.release(exchange)
            return
        except asyncio.CancelledError:
            if exchange.recorded is not None and not exchange.finished:
                self.record(exchange, str(exchange.body.get("model", "")), 499, None)
            self.release(exchange)
            raise
        except Exception:
            log.exception("gateway request %s failed", exchange.request_id)
            await self.refuse(exchange, GatewayError(500, "internal error in the gateway", "internal_error"))

    async def refuse(self, exchange: Exchange, error: GatewayError) -> None:
        if exchange.recorded is not None and not exchange.finished:
            self.record(exchange, str(exchange.body.get("model", "")), error.status, None)
        self.release(exchange)
        if not exchange.response_started:
            await exchange.fail(error)

    @staticmethod
    def release(exchange: Exchange) -> None:
        if exchange.hold is not None:
            exchange.gateway.credit.release(exchange.hold)
            exchange.hold = None

    async def handle(self, x: Exchange) -> None:
        gateway = x.gateway
        raw = await _read_body(x.receive)
        headers = _headers(x.scope)
        principal = await authenticate(gateway.keys, headers.get("authorization"), _client_ip(x.scope))
        if principal.account_id is None:
            raise GatewayError(401, "API key required: send Authorization: Bearer cxm_... (routing needs the "
                                    "developer plan or higher)", "unauthenticated", {"www-authenticate": "Bearer"})
        x.principal = principal
        require(principal.rules, Feature.ROUTING)
        x.body = _parse_body(raw)
        x.stream = x.body.get("stream") is True
        customer_keys = parse_provider_keys(headers.get(KEYS_HEADER))
        preferences = parse_preferences(x.body.get("provider"))
        selection = select_candidates(gateway.book.catalog, x.body["model"], preferences, customer_keys,
                                      gateway.config, gateway.health)
        candidates = selection.candidates
        if not candidates:
            wait = max(1, round(min(selection.skipped.values()) - time.monotonic())) if selection.skipped else 1
            cooling = ", ".join(sorted(selection.skipped))
            raise GatewayError(503, f"every provider of {selection.model.slug} is cooling down after failures "
                                    f"or rate limits ({cooling}); retry after {wait} s", "providers_unavailable",
                               {"retry-after": str(wait)})
        x.prompt_tokens = metering.prompt_tokens(x.body)
        first = await self.first_affordable(x, candidates)
        x.admission = await limits.admit(gateway.quotas, principal)
        await self.route(x, candidates[first:], selection.model.slug)

    async def first_affordable(self, x: Exchange, candidates: list[Candidate]) -> int:
        """The first candidate the request can be sent to: the customer's own key, or a platform key
        whose most possible cost the account can hold. Without one, the request is refused (402)."""
        shortfall: errors.InsufficientBalance | None = None
        for index, candidate in enumerate(candidates):
            if candidate.key_source != "platform":
                return index
            try:
                x.hold = await x.gateway.credit.hold(x.account_id, metering.max_cost(x.body, candidate,
                                                                                      x.prompt_tokens))
                return index
            except errors.InsufficientBalance as exc:
                shortfall = exc
        raise GatewayError(402, f"insufficient balance for a request through Coaxiom's provider keys: {shortfall}; "
                                "top up, or send your own provider keys in X-Provider-Keys",
                           "insufficient_balance") from None

    async def afford(self, x: Exchange, candidate: Candidate) -> bool:
        """Before a fallback to `candidate`: its own key needs nothing; a platform key needs the hold raised
        to its most possible cost (and the pending record to say so)."""
        if candidate.key_source != "platform":
            return True
        amount = metering.max_cost(x.body, candidate, x.prompt_tokens)
        if x.hold is None:
            try:
                x.hold = await x.gateway.credit.hold(x.account_id, amount)
            except errors.InsufficientBalance:
                return False
        elif not await x.gateway.credit.top_up(x.hold, amount):
            return False
        if x.recorded is not None:
            x.recorded = x.gateway.recorder.adjust(x.request_id, x.hold.amount, x.hold.lease_id)
        return True

    def begin(self, x: Exchange, candidate: Candidate, model_slug: str) -> None:
        """The pending usage record, queued before the first upstream call; its commit overlaps it."""
        x.recorded = x.gateway.recorder.begin(Pending(
            request_id=x.request_id, account_id=x.account_id,
            api_key_id=x.principal.key_id if x.principal else None, model_slug=model_slug,
            endpoint=x.scope["path"], held=x.hold.amount if x.hold else Decimal(0),
            lease_id=x.hold.lease_id if x.hold else None, provider_slug=candidate.slug, variant=candidate.variant,
            key_source=candidate.key_source, created_at=x.created_at,
        ))

    async def durable(self, x: Exchange) -> None:
        """Nothing of an answer reaches the client before its pending usage record is committed."""
        if x.recorded is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(x.recorded), RECORD_TIMEOUT)
        except TimeoutError:
            raise GatewayError(503, "the request could not be recorded (the database does not answer); it was "
                                    "not delivered and is not charged", "recording_unavailable") from None

    async def route(self, x: Exchange, candidates: list[Candidate], model_slug: str) -> None:
        gateway = x.gateway
        failures: list[forward.Failure] = []
        watcher = asyncio.create_task(_disconnected(x.receive))
        try:
            for candidate in candidates:
                if not await self.afford(x, candidate):
                    failures.append(forward.Failure(candidate.slug, "skipped: the balance cannot cover its price",
                                                    402, breaker=False))
                    continue
                if x.recorded is None:
                    self.begin(x, candidate, model_slug)
                payload = forward.upstream_body(x.body, candidate, x.stream)
                gateway.health.begin(candidate.slug)
                outcome = await _unless_gone(watcher, forward.open_attempt(
                    gateway.client, candidate, payload, x.stream, x.request_id))
                if outcome is None:
                    gateway.health.abandoned(candidate.slug)
                    return self.record(x, model_slug, 499, candidate)
                if isinstance(outcome, forward.Failure):
                    self.note_failure(gateway.health, outcome)
                    failures.append(outcome)
                    log.info("request %s: %s failed (%s), falling back", x.request_id, candidate.slug, outcome.reason)
                    continue
                if isinstance(outcome, GatewayError):
                    gateway.health.succeeded(candidate.slug)  # it answered; the request was at fault
                    self.record(x, model_slug, outcome.status, candidate)
                    await self.durable(x)
                    return await self.refuse(x, outcome)
                gateway.health.succeeded(candidate.slug, outcome.latency_ms)
                if x.stream:
                    return await self.relay(x, outcome, watcher)
                answer = await _unless_gone(watcher, forward.read_answer(outcome))
                if answer is None:
                    return self.record(x, model_slug, 499, candidate)
                if isinstance(answer, forward.Failure):
                    self.note_failure(gateway.health, answer)
                    failures.append(answer)
                    continue
                await self.plain(x, outcome, answer)
                return
            await self.all_failed(x, model_slug, failures)
        finally:
            watcher.cancel()

    @staticmethod
    def note_failure(health: Health, failure: forward.Failure) -> None:
        if failure.status == 429:
            health.rate_limited(failure.provider, failure.retry_after or 1.0)
        elif failure.breaker:
            health.failed(failure.provider)
        else:
            health.abandoned(failure.provider)

    async def plain(self, x: Exchange, opened: forward.Opened, answer: forward.Answer) -> None:
        candidate = opened.candidate
        if answer.usage is not None:
            (prompt, completion), estimated = answer.usage, False
        else:
            prompt, completion, estimated = x.prompt_tokens, answer.completion_estimate, True
        x.gateway.health.throughput(candidate.slug, completion, time.monotonic() - opened.started)
        await self.durable(x)
        await x.answer(200, answer.body)
        self.record(x, candidate.model_slug, 200, candidate, prompt, completion, estimated, bill=True)

    async def relay(self, x: Exchange, opened: forward.Opened, watcher: asyncio.Task[None]) -> None:
        """Pass the stream through as it arrives; the client going away cancels the upstream."""
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
            await self.durable(x)
            relaying = asyncio.create_task(self._pump(x, opened, state, source))
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
            await forward._close(opened.response)
        if state.usage is not None:
            (prompt, completion), estimated = state.usage, False
        else:
            prompt, completion, estimated = x.prompt_tokens, forward.count_unread(state), True
        x.gateway.health.throughput(candidate.slug, completion, time.monotonic() - opened.first_byte_at)
        self.record(x, candidate.model_slug, status, candidate, prompt, completion, estimated, bill=True)

    async def _pump(self, x: Exchange, opened: forward.Opened, state: forward.StreamState,
                    source: AsyncIterator[bytes]) -> int:
        candidate = opened.candidate
        await x.start(200, b"text/event-stream", {"cache-control": "no-cache", "x-accel-buffering": "no"})
        send = x.send
        out = forward.scan(state, opened.first)
        if out:
            await send({"type": "http.response.body", "body": out, "more_body": True})
        cut: str | None = None
        try:
            async with asyncio.timeout_at(forward._deadline(opened)):
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
        await send({"type": "http.response.body", "body": closing})
        return 502

    async def all_failed(self, x: Exchange, model_slug: str, failures: list[forward.Failure]) -> None:
        tried = "; ".join(f"{f.provider}: {f.reason}" for f in failures)
        attempts = [f.describe() for f in failures]
        if failures and all(f.status == 429 for f in failures):
            wait = max(1, round(min(f.retry_after or 1 for f in failures)))
            error = GatewayError(429, f"every provider rate-limited the request ({tried})", "providers_rate_limited",
                                 {"retry-after": str(wait)}, {"attempts": attempts})
        elif not failures:
            error = GatewayError(503, "no provider could be tried", "providers_unavailable", {"retry-after": "1"})
        else:
            error = GatewayError(502, f"every provider failed: {tried}", "upstream_failed", None,
                                 {"attempts": attempts})
        self.record(x, model_slug, error.status, None)
        await self.refuse(x, error)

    def record(self, x: Exchange, model_slug: str, status: int, candidate: Candidate | None,
               prompt: int = 0, completion: int = 0, estimated: bool = False, bill: bool = False) -> None:
        """Settle the pending usage record: what was used and cost; a platform key's cost is charged from
        the hold (and, past it, from what the lease has free), or the hold goes back unused."""
        if x.finished:
            return
        x.finished = True
        cost = metering.cost(candidate, prompt, completion) if bill and candidate is not None else Decimal(0)
        from_lease, beyond = Decimal(0), Decimal(0)
        if x.hold is not None:
            if candidate is not None and candidate.key_source == "platform" and bill:
                from_lease, beyond = x.gateway.credit.spend(x.hold, cost)
            else:
                x.gateway.credit.release(x.hold)
            x.hold = None
        x.gateway.recorder.finish(Finished(
            request_id=x.request_id, account_id=x.account_id, model_slug=model_slug, status=status,
            api_key_id=x.principal.key_id if x.principal else None, endpoint=x.scope["path"],
            created_at=x.created_at, provider_slug=candidate.slug if candidate else None,
            variant=candidate.variant if candidate else None, key_source=candidate.key_source if candidate else None,
            prompt_tokens=prompt if bill else 0, completion_tokens=completion if bill else 0, cost=cost,
            latency_ms=round((time.monotonic() - x.started) * 1000), estimated=estimated and bill,
            from_lease=from_lease, beyond=beyond,
        ))


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


class _Gone(Exception):
    """The client went away before its request was read."""


async def _unless_gone(watcher: asyncio.Task[None], work: Any) -> Any:
    """Run `work` unless the client disconnects first (then cancel it and return None)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise GatewayError(413, f"the request body is larger than {MAX_BODY // (1024 * 1024)} MB",
                               "request_too_large")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise GatewayError(400, "the request body is not valid JSON", "invalid_json") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "the request body must be a JSON object", "invalid_request")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(400, "missing required parameter: model", "missing_model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise GatewayError(400, "messages must be a non-empty list", "invalid_messages")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise GatewayError(400, "stream must be true or false", "invalid_request")
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise GatewayError(400, f"{name} must be a positive integer", "invalid_request")
    return body


# ---- GET /api/v1/route/models ----------------------------------------------------------------------


@endpoint
async def route_models(call: Call) -> dict[str, Any]:
    """Routable models: live offers at providers the gateway can call, and whether a platform key is set."""
    await call.admit(Feature.ROUTING)
    config: GatewayConfig = call.request.app.state.gateway.config
    catalog = call.catalog
    by_model: dict[str, dict[str, tuple[Decimal, str]]] = {}
    for offer in catalog.prices_sorted:
        if offer.status is not OfferStatus.LIVE:
            continue
        provider = catalog.providers[offer.provider_id].slug
        conf = config.provider(provider)
        if conf is None or not conf.routable:
            continue
        offers = by_model.setdefault(catalog.models[offer.model_id].slug, {})
        total = offer.input_per_1m + offer.output_per_1m
        if provider not in offers or total < offers[provider][0]:
            offers[provider] = (total, offer.provider_model_id)
    models = [
        {"slug": slug, "providers": [
            {"provider": p, "model_id": model_id, "configured": config.providers[p].configured}
            for p, (_, model_id) in sorted(offers.items(), key=lambda item: (item[1][0], item[0]))
        ]}
        for slug, offers in sorted(by_model.items())
    ]
    return {"models": models, "count": len(models)}
