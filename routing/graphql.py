"""`/graphql` over HTTP and websockets: the caller, and answers and requests kept within their caps."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types.execution import ExecutionResult

from datasources import callers
from datasources.callers import authenticate
from datasources.errors import DomainError
from routing import websocket
from routing.cache import wants_fresh
from routing.encoding import TooLarge, dismantle, encode, estimated_cost
from routing.web.browser import render
from schema.context import Context
from schema.guard import CACHEABLE
from schema.limits import GraphQLLimits
from schema.pacing import LARGE, LARGE_ANSWERS, Pacer


class _Encoded(dict[str, object]):
    """An answer already written as JSON (by `routing.encoding`), handed to `encode_json` as it is."""

    body: bytes


class RequestTooLarge(Exception):
    pass


class CachedAnswer(ExecutionResult):
    """A catalog query asked before by the same plan: its answer's bytes, from the response cache."""

    def __init__(self, body: bytes) -> None:
        super().__init__(data=None, errors=None)
        self.body = body


CACHE_KEY = "pricegraph.cache_key"  # the request scope's (key, catalog version) while it may be cached


def too_large_answer(error: TooLarge) -> dict[str, Any]:
    return {"data": None, "errors": [{"message": str(error), "extensions": {"code": "RESPONSE_TOO_LARGE"}}]}


async def encode_answer(answer: dict[str, Any], pacer: Pacer, limits: GraphQLLimits) -> bytes:
    try:
        return await encode(answer, pacer, limits.response_bytes)
    except TooLarge as error:
        return await encode(too_large_answer(error), pacer, limits.response_bytes)


def _capped(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise RequestTooLarge
        return message

    return capped


class GraphQLApp(GraphQL[Context, None]):
    websocket_adapter_class = websocket.WebSocketAdapter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            limit = scope["app"].state.graphql_limits.request_bytes
            declared = dict(scope["headers"]).get(b"content-length", b"0")
            try:
                if not declared.isdigit() or int(declared) > limit:
                    raise RequestTooLarge
                try:
                    await super().__call__(scope, _capped(receive, limit), send)
                finally:
                    for pacer in scope.pop(LARGE_ANSWERS, ()):  # the answer is out: its objects are gone
                        pacer.leave_large()
            except RequestTooLarge:
                message = f"the request body is larger than {limit:,} bytes"
                error = {"message": message, "extensions": {"code": "REQUEST_TOO_LARGE"}}
                await JSONResponse({"errors": [error]}, status_code=413)(scope, receive, send)
            return
        if scope["type"] != "websocket":
            return await super().__call__(scope, receive, send)
        try:
            await super().__call__(scope, receive, send)
        finally:
            websocket.release(WebSocket(scope, receive, send))

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL on the assets the service serves itself (`routing/web/static/vendor`): no CDN, no network."""
        return render(request, "graphiql.html", {})

    async def on_ws_connect(self, context: Context) -> None:
        await websocket.connect(context)

    async def get_context(self, request: Any, response: Any) -> Context:
        context = Context(request=request, response=response, sessionmaker=request.app.state.sessionmaker)
        client = request.client.host if request.client else "unknown"
        try:
            context.principal = await authenticate(
                request.app.state.keys, request.headers.get("authorization"), client, request.app.state.operator
            )
        except DomainError as exc:
            context.auth_error = exc
        return context

    async def execute_operation(
        self,
        request: Any,
        request_adapter: Any,
        request_data: Any,
        context: Context,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        """A catalog query (`schema.guard.cacheable`) asked again by the same plan is answered from the
        response cache while the catalog is the same; its quota is counted all the same."""
        if isinstance(request_data, GraphQLRequestData) and context.principal is not None and request_data.query:
            state = request.app.state
            key = (
                "graphql",
                request_data.query,
                json.dumps(request_data.variables, sort_keys=True, default=str),
                request_data.operation_name,
                context.principal.plan,
            )
            version = state.book.version
            hit = None if wants_fresh(request.headers) else state.response_cache.get(key, version)
            if hit is not None:
                try:
                    admission = await callers.admit(state.quotas, context.principal)
                except DomainError:
                    pass  # answered (refused) by the operation itself
                else:
                    sub_response.headers.update(callers.rate_limit_headers(admission))
                    sub_response.headers["X-Cache"] = "hit"
                    return CachedAnswer(hit)
            request.scope[CACHE_KEY] = (key, version)
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        if isinstance(result, CachedAnswer):
            cached = _Encoded()
            cached.body = result.body
            return cached  # type: ignore[return-value]  # strawberry types the result as its JSON TypedDict
        answer = await super().process_result(request, result)
        pacer: Pacer = request.app.state.pacer
        body = await encode_answer(dict(answer), pacer, request.app.state.graphql_limits)
        data, result.data = result.data, None  # the text is all that is needed from here on
        del answer
        estimate = estimated_cost({"extensions": result.extensions})
        if data is not None and (estimate is None or estimate > LARGE):
            await dismantle(data, pacer)
        keyed = request.scope.pop(CACHE_KEY, None)
        if keyed is not None and request.scope.pop(CACHEABLE, False):
            request.app.state.response_cache.put(keyed[0], keyed[1], body)
        encoded = _Encoded()
        encoded.body = body
        return encoded  # type: ignore[return-value]  # strawberry types the result as its JSON TypedDict

    def encode_json(self, data: object) -> str | bytes:
        if isinstance(data, _Encoded):
            return data.body
        return super().encode_json(data)
