"""How long a GraphQL operation may run and how large its request and answer may be."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GraphQLLimits:
    deadline: float = 10.0  # seconds an operation may run before it is stopped
    response_bytes: int = 32 * 1024 * 1024  # the largest answer, over HTTP or in one websocket message
    request_bytes: int = 1024 * 1024  # the largest request body or websocket message
