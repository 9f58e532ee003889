"""Live subscriptions: price ticks and offer status moves, from the broker.

A subscriber's own operation checks its arguments, then joins the group of everyone subscribed to the
same operation (`routing.fanout`): the group executes it once per event and writes to every member. The
member's operation waits meanwhile, re-checking its key every WS_KEY_RECHECK_SECONDS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from decimal import Decimal

from starlette.websockets import WebSocket

from datasources.callers import authenticate
from datasources.errors import BadInput, DomainError
from datasources.events import Event, PriceChanged, SlowConsumer, StatusChanged
from routing import fanout
from routing.websocket import CLOSE_SLOW_CONSUMER, CLOSE_UNAUTHENTICATED, close
from schema.context import Context, Info
from schema.subscriptions import OfferStatusChange
from schema.ticks import PriceTick


def _slugs(context: Context, model: str | None, provider: str | None) -> tuple[str | None, str | None]:
    catalog = context.catalog
    model_slug = catalog.find_model(model).slug if model else None
    provider_slug = catalog.find_provider(provider).slug if provider else None
    return model_slug, provider_slug


async def _still_authorized(context: Context) -> bool:
    if context.authorization is None:
        return True
    ws = context.request
    try:
        await authenticate(
            context.keys, context.authorization, ws.client.host if ws.client else "unknown", ws.app.state.operator
        )
    except DomainError:
        return False
    return True


async def _events(context: Context, accepts: Callable[[Event], bool]) -> AsyncGenerator[Event, None]:
    """Events for one subscription until the client goes, falls too far behind, or loses its key (or, for
    a group's shared execution, until its last member leaves or the group falls too far behind)."""
    if isinstance(context, fanout.SharedContext):
        async for event in context.events(accepts):
            yield event
        return
    ws = context.request
    if not isinstance(ws, WebSocket):
        raise BadInput("subscriptions are served over websockets (graphql-transport-ws or graphql-ws)")
    limits = ws.app.state.ws_limits
    listener = context.broker.listen(accepts, limits.queue_size)
    slow = f"slow consumer: fell more than {limits.queue_size} events behind"

    def cut_off() -> None:
        asyncio.get_running_loop().create_task(close(ws, CLOSE_SLOW_CONSUMER, slow))

    listener.on_overflow = cut_off
    try:
        while True:
            try:
                event = await asyncio.wait_for(anext(listener), limits.key_recheck_seconds)
            except TimeoutError:
                if not await _still_authorized(context):
                    await close(ws, CLOSE_UNAUTHENTICATED, "the API key was revoked")
                    return
                continue
            except SlowConsumer:
                await close(ws, CLOSE_SLOW_CONSUMER, slow)
                return
            yield event
    finally:
        listener.close()


async def _shared(context: Context, member: fanout.Member) -> None:
    """A member's own operation: wait while the group writes to it; leave when it ends or is stopped."""
    ws = context.request
    recheck = ws.app.state.ws_limits.key_recheck_seconds
    try:
        while not member.done.done():
            try:
                await asyncio.wait_for(asyncio.shield(member.done), recheck)
            except TimeoutError:
                if not await _still_authorized(context):
                    assert isinstance(ws, WebSocket)
                    await close(ws, CLOSE_UNAUTHENTICATED, "the API key was revoked")
                    return
        member.done.result()  # the group's error, if it ended with one
    finally:
        member.leave()


async def price_changed(
    info: Info, model: str | None = None, provider: str | None = None, min_change_pct: Decimal | None = None
) -> AsyncGenerator[PriceTick, None]:
    context = info.context
    if min_change_pct is not None and (not min_change_pct.is_finite() or min_change_pct < 0):
        raise BadInput(f"minChangePct: must be a non-negative percentage, got {min_change_pct}")
    model_slug, provider_slug = _slugs(context, model, provider)
    member = fanout.join(info)
    if member is not None:
        await _shared(context, member)
        return

    def accepts(event: Event) -> bool:
        if not isinstance(event, PriceChanged):
            return False
        if (model_slug and event.model != model_slug) or (provider_slug and event.provider != provider_slug):
            return False
        if min_change_pct is None:
            return True
        change = event.change_pct
        return change is not None and abs(change) >= min_change_pct

    async for event in _events(context, accepts):
        assert isinstance(event, PriceChanged)
        yield PriceTick(row=event)


async def offer_status_changed(
    info: Info, model: str | None = None, provider: str | None = None
) -> AsyncGenerator[OfferStatusChange, None]:
    context = info.context
    model_slug, provider_slug = _slugs(context, model, provider)
    member = fanout.join(info)
    if member is not None:
        await _shared(context, member)
        return

    def accepts(event: Event) -> bool:
        return (
            isinstance(event, StatusChanged)
            and (not model_slug or event.model == model_slug)
            and (not provider_slug or event.provider == provider_slug)
        )

    async for event in _events(context, accepts):
        assert isinstance(event, StatusChanged)
        yield OfferStatusChange(row=event)
