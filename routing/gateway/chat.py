"""`POST /chat/completions`, routed: a pure ASGI application that admits the request, picks the cheapest
live candidates and tries them in order, falling back on failures, until one answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.types import Receive, Scope, Send

from datasources import callers, errors
from datasources.callers import authenticate
from datasources.plans import Feature, require
from datasources.pricing import TokenUse
from routing.gateway import charges, forward, metering, request
from routing.gateway.errors import GatewayError
from routing.gateway.exchange import Exchange
from routing.gateway.health import Health
from routing.gateway.keys import HEADER as KEYS_HEADER
from routing.gateway.keys import parse_provider_keys
from routing.gateway.relay import relay
from routing.gateway.select import Candidate, parse_preferences, select_candidates
from routing.gateway.state import Gateway

log = logging.getLogger("pricegraph.gateway")


class ChatCompletions:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway: Gateway = scope["app"].state.gateway
        exchange = Exchange(scope, receive, send, gateway, next(gateway.request_ids))
        try:
            await self.handle(exchange)
        except GatewayError as exc:
            await self.refuse(exchange, exc)
        except errors.DomainError as exc:
            await self.refuse(exchange, GatewayError.from_domain(exc))
        except request.Gone:
            charges.release(exchange)
            return
        except asyncio.CancelledError:
            if exchange.recorded is not None and not exchange.finished:
                charges.settle(exchange, exchange.model_asked, 499, None)
            charges.release(exchange)
            raise
        except Exception:
            log.exception("gateway request %s failed", exchange.request_id)
            await self.refuse(exchange, GatewayError(500, "internal error in the gateway", "internal_error"))

    async def refuse(self, x: Exchange, error: GatewayError) -> None:
        if x.recorded is not None and not x.finished:
            charges.settle(x, x.model_asked, error.status, None)
        charges.release(x)
        if not x.response_started:
            await x.fail(error)

    async def handle(self, x: Exchange) -> None:
        gateway = x.gateway
        raw = await request.read_body(x.receive)
        headers = request.headers(x.scope)
        principal = await authenticate(
            gateway.keys, headers.get("authorization"), request.client_ip(x.scope), gateway.operator
        )
        if principal.account_id is None:
            raise GatewayError(
                401,
                "API key required: send Authorization: Bearer cxm_... (routing needs the developer plan or higher)",
                "unauthenticated",
                {"www-authenticate": "Bearer"},
            )
        x.principal = principal
        require(principal.rules, Feature.ROUTING)
        x.body = request.parse_body(raw)
        x.stream = x.body.get("stream") is True
        customer_keys = parse_provider_keys(headers.get(KEYS_HEADER))
        preferences = parse_preferences(x.body.get("provider"))
        selection = select_candidates(
            gateway.book.catalog,
            x.body["model"],
            preferences,
            customer_keys,
            gateway.config,
            gateway.health,
            request.service_tier(x.body),
        )
        candidates = selection.candidates
        if not candidates:
            wait = max(1, round(min(selection.skipped.values()) - time.monotonic())) if selection.skipped else 1
            cooling = ", ".join(sorted(selection.skipped))
            raise GatewayError(
                503,
                f"every provider of {selection.model.slug} is cooling down after failures "
                f"or rate limits ({cooling}); retry after {wait} s",
                "providers_unavailable",
                {"retry-after": str(wait)},
            )
        x.prompt_tokens = metering.prompt_tokens(x.body)
        first = await charges.first_affordable(x, candidates)
        x.admission = await callers.admit(gateway.quotas, principal)
        await self.route(x, candidates[first:], selection.model.slug)

    async def route(self, x: Exchange, candidates: list[Candidate], model_slug: str) -> None:
        gateway = x.gateway
        observer = gateway.observer
        failures: list[forward.Failure] = []
        failed: str | None = None  # the provider of the last failed attempt, which this one falls back from
        watcher = asyncio.create_task(_disconnected(x.receive))
        try:
            for candidate in candidates:
                if not await charges.afford(x, candidate):
                    failures.append(
                        forward.Failure(
                            candidate.slug,
                            "skipped: the balance cannot cover its price",
                            402,
                            breaker=False,
                            kind="unaffordable",
                        )
                    )
                    continue
                if x.recorded is None:
                    charges.begin(x, candidate, model_slug)
                payload = forward.upstream_body(x.body, candidate, x.stream)
                if failed is not None:
                    observer.fell_back(failed)
                    failed = None
                gateway.health.begin(candidate.slug)
                sent = time.monotonic()
                outcome = await _unless_gone(
                    watcher, forward.open_attempt(gateway.client, candidate, payload, x.stream, x.request_id)
                )
                if outcome is None:
                    gateway.health.abandoned(candidate.slug)
                    return charges.settle(x, model_slug, 499, candidate)
                observer.upstream(candidate.slug, time.monotonic() - sent)
                if isinstance(outcome, forward.Failure):
                    note_failure(gateway.health, outcome)
                    observer.failed(candidate.slug, outcome.kind)
                    failed = candidate.slug
                    failures.append(outcome)
                    log.info("request %s: %s failed (%s), falling back", x.request_id, candidate.slug, outcome.reason)
                    continue
                if isinstance(outcome, GatewayError):
                    gateway.health.succeeded(candidate.slug)  # it answered; the request was at fault
                    charges.settle(x, model_slug, outcome.status, candidate)
                    await charges.durable(x)
                    return await self.refuse(x, outcome)
                gateway.health.succeeded(candidate.slug, outcome.latency_ms)
                if x.stream:
                    return await relay(x, outcome, watcher)
                answer = await _unless_gone(watcher, forward.read_answer(outcome))
                if answer is None:
                    return charges.settle(x, model_slug, 499, candidate)
                if isinstance(answer, forward.Failure):
                    note_failure(gateway.health, answer)
                    observer.failed(candidate.slug, answer.kind)
                    failed = candidate.slug
                    failures.append(answer)
                    continue
                await self.plain(x, outcome, answer)
                return
            await self.all_failed(x, model_slug, failures)
        finally:
            watcher.cancel()

    async def plain(self, x: Exchange, opened: forward.Opened, answer: forward.Answer) -> None:
        candidate = opened.candidate
        use = answer.usage or TokenUse(x.prompt_tokens, answer.completion_estimate)
        x.gateway.health.throughput(candidate.slug, use.completion, time.monotonic() - opened.started)
        await charges.durable(x)
        await x.answer(200, answer.body)
        charges.settle(x, candidate.model_slug, 200, candidate, use, answer.usage is None, bill=True)

    async def all_failed(self, x: Exchange, model_slug: str, failures: list[forward.Failure]) -> None:
        tried = "; ".join(f"{f.provider}: {f.reason}" for f in failures)
        attempts = [f.describe() for f in failures]
        if failures and all(f.status == 429 for f in failures):
            wait = max(1, round(min(f.retry_after or 1 for f in failures)))
            error = GatewayError(
                429,
                f"every provider rate-limited the request ({tried})",
                "providers_rate_limited",
                {"retry-after": str(wait)},
                {"attempts": attempts},
            )
        elif not failures:
            error = GatewayError(503, "no provider could be tried", "providers_unavailable", {"retry-after": "1"})
        else:
            error = GatewayError(
                502, f"every provider failed: {tried}", "upstream_failed", None, {"attempts": attempts}
            )
        charges.settle(x, model_slug, error.status, None)
        await self.refuse(x, error)


def note_failure(health: Health, failure: forward.Failure) -> None:
    if failure.status == 429:
        health.rate_limited(failure.provider, failure.retry_after or 1.0)
    elif failure.breaker:
        health.failed(failure.provider)
    else:
        health.abandoned(failure.provider)


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
