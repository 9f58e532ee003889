"""The pages a person opens in a browser: the live price board, model pages, sign-in and the console, and
GraphiQL; rendered on the server (Jinja2), with small scripts and vendored assets served from here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, request_response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from routing.web import console, pages, sign_in
from routing.web.browser import HERE


class Gzipped:
    """An ASGI app sent gzipped to browsers that take it (the board carries every offer); its own class, so
    that the web pages are told apart from other surfaces (`routing.metrics`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = GZipMiddleware(app, minimum_size=2048)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _compressed(endpoint: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    return Gzipped(request_response(endpoint))


def routes() -> list[BaseRoute]:
    post = ["POST"]
    return [
        Route("/", _compressed(pages.price_board), methods=["GET"]),
        Route("/models/{slug}", _compressed(pages.model_page), methods=["GET"]),
        Route("/signin", sign_in.sign_in_form, methods=["GET"]),
        Route("/signin", sign_in.ask_for_link, methods=post),
        Route("/signin/verify", sign_in.confirm_link, methods=["GET"]),
        Route("/signin/verify", sign_in.use_link, methods=post),
        Route("/signout", sign_in.sign_out, methods=post),
        Route("/console", console.console, methods=["GET"]),
        Route("/console/sign-out-everywhere", console.action("sign-out-everywhere"), methods=post),
        Route("/console/usage.csv", console.usage_csv, methods=["GET"]),
        Route("/console/keys", console.action("create-key"), methods=post),
        Route("/console/keys/{key_id}/revoke", console.action("revoke-key"), methods=post),
        Route("/console/topup", console.action("topup"), methods=post),
        Route("/console/budgets", console.action("set-budget"), methods=post),
        Route("/console/budgets/remove", console.action("remove-budget"), methods=post),
        Route("/console/webhooks", console.action("create-webhook"), methods=post),
        Route("/console/webhooks/{endpoint_id}/remove", console.action("remove-webhook"), methods=post),
        Route("/console/webhooks/{endpoint_id}/resend", console.action("resend"), methods=post),
        Mount("/static", Gzipped(StaticFiles(directory=HERE / "static")), name="static"),
    ]
