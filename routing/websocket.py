"""GraphQL over websockets: the key in `connection_init`, connection caps, and clean closes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from json import JSONDecodeError
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)

from datasources.callers import Principal, authenticate
from datasources.errors import DomainError
from routing.encoding import TooLarge, encode

if TYPE_CHECKING:
    from schema.context import Context

# Close codes: the graphql-transport-ws ones are sent by Strawberry (4400 bad message, 4401 subscribe
# before ack, 4403 rejected init, 4408 init timeout, 4409 duplicate id, 4429 repeated init); these are ours.
CLOSE_UNAUTHENTICATED = 4403
CLOSE_TOO_MANY_CONNECTIONS = 4429
CLOSE_SLOW_CONSUMER = 1013  # "try again later"
CLOSE_MESSAGE_TOO_BIG = 1009
TRANSPORT_WS = "graphql-transport-ws"


@dataclass(frozen=True)
class Subscribing:
    """The subscribe (graphql-transport-ws) or start (graphql-ws) message an operation answers."""

    id: str
    protocol: str
    query: str
    variables: object
    operation_name: object


# Set while the protocol handler takes in a subscribe message: the operation's task, created right then,
# starts with a copy of it, so a resolver knows which operation id (and protocol) it is answering.
SUBSCRIBING: ContextVar[Subscribing | None] = ContextVar("pricegraph_subscribing", default=None)


def note_subscribe(message: object) -> None:
    if not isinstance(message, dict) or message.get("type") not in ("subscribe", "start"):
        return
    payload, id_ = message.get("payload"), message.get("id")
    if not isinstance(id_, str) or not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        SUBSCRIBING.set(None)
        return
    protocol = TRANSPORT_WS if message["type"] == "subscribe" else "graphql-ws"
    SUBSCRIBING.set(
        Subscribing(id_, protocol, payload["query"], payload.get("variables"), payload.get("operationName"))
    )


@dataclass(frozen=True)
class Limits:
    connections_per_subject: int = 20  # WS_MAX_CONNECTIONS
    subscriptions_per_connection: int = 50  # WS_MAX_SUBSCRIPTIONS
    queue_size: int = 1000  # WS_QUEUE_SIZE: events a subscription may fall behind
    key_recheck_seconds: float = 10.0  # WS_KEY_RECHECK_SECONDS


class Connections:
    """Open websocket connections per subject (an account, or a keyless client address), in this process,
    and which API key each authenticated with: a revoked key's connections close at once (4403)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()
        self.by_key: dict[str, set[WebSocket]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def admit(self, subject: str) -> bool:
        if self.open[subject] >= self.limit:
            return False
        self.open[subject] += 1
        return True

    def release(self, subject: str) -> None:
        self.open[subject] -= 1
        if self.open[subject] <= 0:
            del self.open[subject]

    def track(self, key_id: str, ws: WebSocket) -> None:
        self.by_key.setdefault(key_id, set()).add(ws)

    def untrack(self, key_id: str, ws: WebSocket) -> None:
        sockets = self.by_key.get(key_id)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self.by_key[key_id]

    def revoked(self, key_ids: set[str]) -> None:
        """The key table's callback: close every connection opened with one of these keys."""
        loop = asyncio.get_running_loop()
        for key_id in key_ids:
            for ws in self.by_key.pop(key_id, set()):
                task = loop.create_task(close(ws, CLOSE_UNAUTHENTICATED, "the API key was revoked"))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)


class WebSocketAdapter(ASGIWebSocketAdapter):
    """Messages within the size caps, written without holding the loop; tolerates a connection we
    already closed with our own code and reason."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object, None]:
        limit = self.ws.app.state.graphql_limits.request_bytes
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                try:
                    text = await self.ws.receive_text()
                except WebSocketDisconnect:
                    return
                if len(text) > limit:
                    await close(self.ws, CLOSE_MESSAGE_TOO_BIG, f"a message is larger than {limit:,} bytes")
                    return
                try:
                    message = self.view.decode_json(text)
                except JSONDecodeError as exc:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from exc
                    continue
                note_subscribe(message)
                yield message
        except KeyError as exc:
            raise NonTextMessageReceived from exc

    async def send_json(self, message: Mapping[str, object]) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            raise WebSocketDisconnected
        state = self.ws.app.state
        try:
            data = await encode(message, state.pacer, state.graphql_limits.response_bytes)
        except TooLarge as error:
            data = await encode(
                {
                    **message,
                    "payload": {
                        "data": None,
                        "errors": [{"message": str(error), "extensions": {"code": "RESPONSE_TOO_LARGE"}}],
                    },
                },
                state.pacer,
                state.graphql_limits.response_bytes,
            )
        try:
            await self.ws.send_text(data.decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            await super().close(code, reason)


async def close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state != WebSocketState.DISCONNECTED:
        await ws.close(code=code, reason=reason)


def init_authorization(payload: object) -> str | None:
    """`{"Authorization": "Bearer cxm_…"}` from a connection_init payload (any key case)."""
    if not isinstance(payload, dict):
        return None
    for key, value in payload.items():
        if isinstance(key, str) and key.lower() == "authorization" and isinstance(value, str):
            return value
    return None


async def connect(context: Context) -> None:
    """Authenticate the connection from its init payload (or handshake header) and take a slot."""
    ws = context.request
    assert isinstance(ws, WebSocket)
    header = init_authorization(context.connection_params) or ws.headers.get("authorization")
    client = ws.client.host if ws.client else "unknown"
    try:
        principal: Principal = await authenticate(ws.app.state.keys, header, client, ws.app.state.operator)
    except DomainError as exc:
        await close(ws, CLOSE_UNAUTHENTICATED, str(exc))
        raise ConnectionRejectionError({"message": str(exc)}) from None
    connections: Connections = ws.app.state.ws_connections
    if not connections.admit(principal.subject):
        reason = f"too many connections: at most {connections.limit} per API key or client address"
        await close(ws, CLOSE_TOO_MANY_CONNECTIONS, reason)
        raise ConnectionRejectionError({"message": reason})
    context.principal, context.auth_error = principal, None
    context.authorization = header
    ws.state.connection_slot = principal.subject
    if principal.key_id is not None:
        connections.track(principal.key_id, ws)
        ws.state.tracked = (principal.key_id, ws)


def release(ws: WebSocket) -> None:
    """Give back the connection's slot when it ends."""
    subject = getattr(ws.state, "connection_slot", None)
    if subject is not None:
        ws.app.state.ws_connections.release(subject)
        ws.state.connection_slot = None
    tracked = getattr(ws.state, "tracked", None)  # the state is the scope's: shared by every wrapper of it
    if tracked is not None:
        ws.app.state.ws_connections.untrack(*tracked)
        ws.state.tracked = None
