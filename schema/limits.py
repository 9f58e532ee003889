"""How long a GraphQL operation may run and how large its request and answer may be."""

from __future__ import annotations

import os
from dataclasses import dataclass


class LimitsConfigError(ValueError):
    pass


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise LimitsConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise LimitsConfigError(f"{name}: must be above 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class GraphQLLimits:
    deadline: float = 10.0  # seconds an operation may run before it is stopped
    response_bytes: int = 32 * 1024 * 1024  # the largest answer, over HTTP or in one websocket message
    request_bytes: int = 1024 * 1024  # the largest request body or websocket message

    @classmethod
    def from_env(cls) -> GraphQLLimits:
        return cls(
            deadline=_number("GRAPHQL_DEADLINE", cls.deadline),
            response_bytes=int(_number("GRAPHQL_MAX_RESPONSE_BYTES", cls.response_bytes)),
            request_bytes=int(_number("GRAPHQL_MAX_REQUEST_BYTES", cls.request_bytes)),
        )
