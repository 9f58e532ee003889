"""The gateway's routes: `POST /api/v1/route/chat/completions` and `POST /v1/chat/completions` (one
pure ASGI application), and `GET /api/v1/route/models`. `install(app, config)` is all a Starlette app needs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route

from routing.gateway.chat import ChatCompletions
from routing.gateway.providers import GatewayConfig
from routing.gateway.routable import route_models
from routing.gateway.state import Gateway


def install(app: Starlette, config: GatewayConfig) -> None:
    """Put the gateway's routes ahead of the app's own (`/api/v1`, `/v1` mounts) and start and stop its
    state (`app.state.gateway`) inside the app's lifespan, after the database and broker are up.
    Installing again only replaces the configuration (a test installs its own over the app's)."""
    installed = getattr(app.state, "gateway_config", None) is not None
    app.state.gateway_config = config
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
