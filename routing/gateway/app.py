"""The gateway's routes: `POST /api/v1/route/chat/completions` and `POST /v1/chat/completions` (one
pure ASGI application), and `GET /api/v1/route/models`. `install(app)` is all a Starlette app needs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from datasources import errors, ledger
from datasources.db.models import Model, Offer, OfferStatus, Provider
from datasources.events import Broker
from datasources.money import price
from datasources.plans import Feature, require
from datasources.quotas import Admission
from routing import limits
from routing.auth import Principal
from routing.gateway import forward, metering
from routing.gateway.auth_cache import KeyCache
from routing.gateway.errors import GatewayError, error_event
from routing.gateway.health import Health
from routing.gateway.keys import HEADER as KEYS_HEADER
from routing.gateway.keys import parse_provider_keys
from routing.gateway.providers import GatewayConfig
from routing.gateway.select import Candidate, parse_preferences, select_candidates
from routing.rest.endpoint import Call, endpoint

log = logging.getLogger("pricegraph.gateway")

MAX_BODY = 32 * 1024 * 1024  # images travel inline as base64


@dataclass
class Gateway:
    """What the gateway keeps for the life of the app (`app.state.gateway`)."""

    config: GatewayConfig
    sessionmaker: async_sessionmaker[AsyncSession]
    broker: Broker
    client: httpx.AsyncClient
    health: Health
    keys: KeyCache
    writer: metering.UsageWriter

    @classmethod
    async def start(cls, config: GatewayConfig, sessionmaker: async_sessionmaker[AsyncSession],
                    broker: Broker) -> Gateway:
        writer = metering.UsageWriter(sessionmaker, broker, config.flush_interval, config.flush_records)
        gateway = cls(config, sessionmaker, broker, forward.make_client(),
                      Health(config.breaker_failures, config.breaker_cooldown),
                      KeyCache(sessionmaker, config.auth_cache_ttl), writer)
        await writer.start()
        return gateway

    async def stop(self) -> None:
        await self.writer.stop()
        await self.client.aclose()


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
            gateway = await Gateway.start(app.state.gateway_config, app.state.sessionmaker, app.state.broker)
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
    request_id: str = field(default_factory=lambda: "req_" + secrets.token_hex(12))
    started: float = field(default_factory=time.monotonic)
    principal: Principal | None = None
    admission: Admission | None = None
    held: Decimal = Decimal(0)
    body: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    prompt_tokens: int = 0
    response_started: bool = False

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
        exchange = Exchange(scope, receive, send, scope["app"].state.gateway)
        try:
            await self.handle(exchange)
        except GatewayError as exc:
            await self.refuse(exchange, exc)
        except errors.DomainError as exc:
            await self.refuse(exchange, GatewayError.from_domain(exc))
        except _Gone:
            return
        except asyncio.CancelledError:
            if exchange.held and exchange.principal is not None and exchange.principal.account_id is not None:
                self.record(exchange, str(exchange.body.get("model", "")), 499, None)
            raise
        except Exception:
            log.exception("gateway request %s failed", exchange.request_id)
            await self.refuse(exchange, GatewayError(500, "internal error in the gateway", "internal_error"))

    async def refuse(self, exchange: Exchange, error: GatewayError) -> None:
        if exchange.held:
            await self.release(exchange)
        if not exchange.response_started:
            await exchange.fail(error)

    async def release(self, exchange: Exchange) -> None:
        held, exchange.held = exchange.held, Decimal(0)
        assert exchange.principal is not None and exchange.principal.account_id is not None
        async with exchange.gateway.sessionmaker() as session, session.begin():
            await ledger.release(session, exchange.principal.account_id, held)

    async def handle(self, x: Exchange) -> None:
        gateway = x.gateway
        raw = await _read_body(x.receive)
        headers = _headers(x.scope)
        client_ip = _client_ip(x.scope)
        principal = await gateway.keys.principal(headers.get("authorization"), client_ip)
        if principal.account_id is None:
            raise GatewayError(401, "API key required: send Authorization: Bearer cxm_... (routing needs the "
                                    "developer plan or higher)", "unauthenticated", {"www-authenticate": "Bearer"})
        x.principal = principal
        require(principal.rules, Feature.ROUTING)
        x.body = _parse_body(raw)
        x.stream = x.body.get("stream") is True
        customer_keys = parse_provider_keys(headers.get(KEYS_HEADER))
        preferences = parse_preferences(x.body.get("provider"))
        async with gateway.sessionmaker() as session:
            selection = await select_candidates(session, x.body["model"], preferences, customer_keys,
                                                gateway.config, gateway.health)
        candidates = selection.candidates
        if not candidates:
            wait = max(1, round(min(selection.skipped.values()) - time.monotonic())) if selection.skipped else 1
            cooling = ", ".join(sorted(selection.skipped))
            raise GatewayError(503, f"every provider of {selection.model.slug} is cooling down after failures "
                                    f"or rate limits ({cooling}); retry after {wait} s", "providers_unavailable",
                               {"retry-after": str(wait)})
        x.prompt_tokens = metering.prompt_tokens(x.body)
        candidates = await self.hold(x, candidates)
        try:
            x.admission = await limits.admit(gateway.sessionmaker, principal)
        except errors.QuotaExceeded:
            if x.held:
                await self.release(x)
            raise
        await self.route(x, candidates, selection.model.slug)

    async def hold(self, x: Exchange, candidates: list[Candidate]) -> list[Candidate]:
        """Reserve what the dearest platform-key candidate may cost; without the balance for it, only the
        customer's own keys may serve, and with none of those the request is refused (402)."""
        amount = metering.hold_amount(x.body, candidates, x.prompt_tokens)
        if not any(c.key_source == "platform" for c in candidates):
            return candidates
        assert x.principal is not None and x.principal.account_id is not None
        try:
            async with x.gateway.sessionmaker() as session, session.begin():
                await ledger.hold(session, x.principal.account_id, amount)
            x.held = price(amount)
            return candidates
        except errors.InsufficientBalance as exc:
            own = [c for c in candidates if c.key_source == "customer"]
            if own:
                return own
            raise GatewayError(402, f"insufficient balance for a request through Coaxiom's provider keys: {exc}; "
                                    "top up, or send your own provider keys in X-Provider-Keys",
                               "insufficient_balance") from None

    async def route(self, x: Exchange, candidates: list[Candidate], model_slug: str) -> None:
        gateway = x.gateway
        failures: list[forward.Failure] = []
        watcher = asyncio.create_task(_disconnected(x.receive))
        try:
            for candidate in candidates:
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
        await x.answer(200, answer.body)
        self.record(x, candidate.model_slug, 200, candidate, prompt, completion, estimated, bill=True)

    async def relay(self, x: Exchange, opened: forward.Opened, watcher: asyncio.Task[None]) -> None:
        """Pass the stream through as it arrives; the client going away cancels the upstream."""
        candidate = opened.candidate
        state = forward.StreamState()
        status = 200
        relaying = asyncio.create_task(self._pump(x, opened, state))
        done, _ = await asyncio.wait({relaying, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if relaying not in done:
            relaying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relaying
            status = 499
        else:
            status = relaying.result()
        await forward._close(opened.response)
        if state.usage is not None:
            (prompt, completion), estimated = state.usage, False
        else:
            prompt, completion, estimated = x.prompt_tokens, state.counter.tokens, True
        x.gateway.health.throughput(candidate.slug, completion, time.monotonic() - opened.first_byte_at)
        self.record(x, candidate.model_slug, status, candidate, prompt, completion, estimated, bill=True)

    async def _pump(self, x: Exchange, opened: forward.Opened, state: forward.StreamState) -> int:
        candidate = opened.candidate
        await x.start(200, b"text/event-stream", {"cache-control": "no-cache", "x-accel-buffering": "no"})
        send = x.send
        out = forward.scan(state, opened.first)
        if out:
            await send({"type": "http.response.body", "body": out, "more_body": True})
        cut: str | None = None
        try:
            async with asyncio.timeout_at(forward._deadline(opened)):
                async for chunk in opened.chunks:
                    out = forward.scan(state, chunk)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
        except TimeoutError:
            cut = f"{candidate.slug} did not finish the stream within {candidate.provider.timeouts.total:g} s"
        except httpx.TransportError as exc:
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
        """Hand the request to the batched writer; its hold is settled (billed) or released there."""
        assert x.principal is not None and x.principal.account_id is not None
        cost = metering.cost(candidate, prompt, completion) if bill and candidate is not None else Decimal(0)
        charge = candidate is not None and candidate.key_source == "platform" and bill
        held, x.held = x.held, Decimal(0)  # the writer owns the hold now
        x.gateway.writer.submit(metering.Usage(
            account_id=x.principal.account_id, api_key_id=x.principal.key_id, model_slug=model_slug,
            endpoint=x.scope["path"], status=status, request_id=x.request_id,
            provider_slug=candidate.slug if candidate else None, variant=candidate.variant if candidate else None,
            key_source=candidate.key_source if candidate else None,
            prompt_tokens=prompt if bill else 0, completion_tokens=completion if bill else 0,
            cost=cost, latency_ms=round((time.monotonic() - x.started) * 1000),
            estimated=estimated and bill, held=held, charge=charge,
        ))


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
    async with call.sessionmaker() as session:
        rows = (await session.execute(
            select(Model.slug, Provider.slug, Offer.provider_model_id, Offer.input_per_1m, Offer.output_per_1m)
            .join(Offer, Offer.model_id == Model.id).join(Provider, Offer.provider_id == Provider.id)
            .where(Offer.status == OfferStatus.LIVE)
        )).all()
    by_model: dict[str, dict[str, tuple[Decimal, str]]] = {}
    for model, provider, model_id, inp, out in rows:
        conf = config.provider(provider)
        if conf is None or not conf.routable:
            continue
        offers = by_model.setdefault(model, {})
        if provider not in offers or inp + out < offers[provider][0]:
            offers[provider] = (inp + out, model_id)
    models = [
        {"slug": slug, "providers": [
            {"provider": p, "model_id": model_id, "configured": config.providers[p].configured}
            for p, (_, model_id) in sorted(offers.items(), key=lambda item: (item[1][0], item[0]))
        ]}
        for slug, offers in sorted(by_model.items())
    ]
    return {"models": models, "count": len(models)}
