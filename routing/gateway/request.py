"""Reading a chat completion request off the wire: its body (bounded), headers and client, and the
checks its fields must pass before anything is routed."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Receive, Scope

from routing.gateway.errors import GatewayError

MAX_BODY = 32 * 1024 * 1024  # images travel inline as base64


class Gone(Exception):
    """The client went away before its request was read."""


async def read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Gone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise GatewayError(
                413, f"the request body is larger than {MAX_BODY // (1024 * 1024)} MB", "request_too_large"
            )
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def parse_body(raw: bytes) -> dict[str, Any]:
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


REQUESTABLE_TIERS = {None: None, "auto": None, "default": None, "flex": "flex", "priority": "priority"}


def service_tier(body: dict[str, Any]) -> str | None:
    """The service tier a request asks for (OpenAI's `service_tier`): None for the standard one; `flex`
    and `priority` are routed to those variants and billed at their rates."""
    value = body.get("service_tier")
    if not isinstance(value, str | None) or value not in REQUESTABLE_TIERS:
        names = ", ".join(str(k) for k in REQUESTABLE_TIERS if k)
        raise GatewayError(400, f"service_tier must be one of {names}, got {value!r}", "invalid_request")
    return REQUESTABLE_TIERS[value]
