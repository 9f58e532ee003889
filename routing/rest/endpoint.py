"""What every REST endpoint shares: the caller, admission, parameters, and `{"error", "code"}` errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from datasources import callers, errors
from datasources.callers import Principal, authenticate
from datasources.plans import Feature
from datasources.pricebook import Catalog, PriceBook
from datasources.quotas import Admission
from routing.cache import wants_fresh
from routing.wire import dumps

log = logging.getLogger("pricegraph.rest")
MAX_BODY_BYTES = 64 * 1024


class JSON(JSONResponse):
    """JSON with Decimal money written as exact numbers (`routing.wire`)."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSON({"error": message, "code": status}, status_code=status, headers=headers)


# Fields the REST documents spell otherwise than the domain (and GraphQL) do.
PARAMETER_NAMES = {"after": "starting_after"}


def parameter_name(field: str) -> str:
    return PARAMETER_NAMES.get(field, field)


def error_for(exc: errors.DomainError, headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    if isinstance(exc, errors.QuotaExceeded):
        headers.update(callers.refusal_headers(exc))
    if isinstance(exc, errors.Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    return error(exc.status, exc.describe(parameter_name, style="invalid parameter {field}: {message}"), headers)


@dataclass
class Call:
    request: Request
    principal: Principal
    sessionmaker: async_sessionmaker[AsyncSession]
    admission: Admission | None = field(default=None)
    status: int = 200  # a handler that creates something answers 201

    @property
    def catalog(self) -> Catalog:
        """The price book's current snapshot."""
        book: PriceBook = self.request.app.state.book
        return book.catalog

    async def caught_up(self) -> None:
        """Before reading the caller's own balance or usage: every request this process already answered
        for the account is settled in the database (read your writes)."""
        if self.principal.account_id is not None:
            await self.request.app.state.recorder.caught_up(self.principal.account_id)

    async def admit(self, feature: Feature | None, history_days: int | None = None) -> None:
        """Count the request against the plan's quota; `feature=None` gates on no plan feature."""
        self.admission = await callers.admit(self.request.app.state.quotas, self.principal, feature, history_days)

    # -- parameters -------------------------------------------------------------------------

    async def body(self) -> dict[str, Any]:
        """The JSON object the request carries (400 when it is not one)."""
        raw = await self.request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise errors.BadInput(f"the request body is larger than {MAX_BODY_BYTES} bytes")
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw, parse_float=Decimal)
        except ValueError as exc:
            raise errors.BadInput(f"the request body is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise errors.BadInput("the request body must be a JSON object")
        return value

    def text(self, name: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.request.query_params.get(name)
        if value is None or not value.strip():
            if required:
                raise errors.BadInput(f"missing required parameter: {name}")
            return default
        return value.strip()

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise errors.BadInput(f"invalid parameter {name}: {raw!r} is not an integer") from None
        if not low <= value <= high:
            raise errors.BadInput(f"invalid parameter {name}: must be from {low} to {high}, got {value}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default)
        assert value is not None
        if value not in choices:
            raise errors.BadInput(f"invalid parameter {name}: must be one of {', '.join(choices)}, got {value!r}")
        return value


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


async def principal_for(request: Request) -> Principal:
    client = request.client.host if request.client else "unknown"
    return await authenticate(
        request.app.state.keys, request.headers.get("authorization"), client, request.app.state.operator
    )


def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, let the handler parse and admit, answer JSON; domain errors become their status."""
    return _endpoint(handler, cached=False)


def catalog_endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint whose answer follows from the catalog alone: answered again from the response cache
    (`routing.cache`) until the catalog changes, its quota still counted."""
    return _endpoint(handler, cached=True)


def _endpoint(handler: Handler, cached: bool) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        call: Call | None = None
        try:
            call = Call(request, await principal_for(request), request.app.state.sessionmaker)
            if cached:
                state = request.app.state
                key = (request.url.path, tuple(request.query_params.multi_items()), call.principal.plan)
                version = state.book.version
                hit = None if wants_fresh(request.headers) else state.response_cache.get(key, version)
                if hit is not None:  # the same question from the same plan answered before: only the quota
                    await call.admit(None)
                    assert call.admission is not None
                    return Response(
                        hit,
                        media_type="application/json",
                        headers={**callers.rate_limit_headers(call.admission), "X-Cache": "hit"},
                    )
            body = await handler(call)
            if call.admission is None:
                raise RuntimeError(f"{handler.__name__} answered without admitting the request")
            headers = callers.rate_limit_headers(call.admission)
            response = JSON(
                body, status_code=call.status, headers={**headers, "X-Cache": "miss"} if cached else headers
            )
            if cached:
                state.response_cache.put(key, version, bytes(response.body))
            return response
        except errors.DomainError as exc:
            admitted = call.admission if call is not None and call.admission is not None else None
            return error_for(exc, callers.rate_limit_headers(admitted) if admitted else None)

    run.__name__ = handler.__name__
    return run
