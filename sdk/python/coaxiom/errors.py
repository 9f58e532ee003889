"""Typed errors: the server's `{"error", "code"}` and OpenAI-shaped bodies, each with its message."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any


class CoaxiomError(Exception):
    """Anything the SDK raises."""


class APIConnectionError(CoaxiomError):
    """The server could not be reached (or the connection broke)."""


class APIError(CoaxiomError):
    """An error answer from the server: `status`, the server's `message`, its `code` and `body`."""

    def __init__(
        self, message: str, status: int | None = None, code: Any = None, body: Any = None, headers: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.body = body
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.status}: {self.message}" if self.status else self.message


class BadRequestError(APIError):
    """400."""


class AuthenticationError(APIError):
    """401 (or a websocket refused for its key)."""


class PaymentRequiredError(APIError):
    """402: above the plan, or the balance cannot cover the request."""


class PermissionDeniedError(APIError):
    """403."""


class NotFoundError(APIError):
    """404: unknown model or provider."""


class RateLimitError(APIError):
    """429; `retry_after` is the server's Retry-After in seconds (None when absent)."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class InternalServerError(APIError):
    """5xx."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}

_BY_GRAPHQL_CODE: dict[str, type[APIError]] = {
    "BAD_USER_INPUT": BadRequestError,
    "UNAUTHENTICATED": AuthenticationError,
    "PAYMENT_REQUIRED": PaymentRequiredError,
    "FORBIDDEN": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "RATE_LIMITED": RateLimitError,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _message_and_code(body: Any, fallback: str) -> tuple[str, Any]:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # OpenAI shape
            return str(error.get("message") or fallback), error.get("code") or error.get("type")
        if isinstance(error, str):  # the REST shape {"error": "...", "code": N}
            return error, body.get("code")
        if isinstance(body.get("message"), str):
            return body["message"], body.get("code")
    return fallback, None


def from_response(status: int, text: str, headers: Any, secrets: list[str] | None = None) -> APIError:
    """The typed error for an error answer (the server's message kept; any of our keys masked)."""
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = None
    fallback = (text or "").strip()[:500] or f"HTTP {status}"
    message, code = _message_and_code(body, fallback)
    for secret in secrets or ():
        message = message.replace(secret, "[redacted]") if secret else message
    cls = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else APIError)
    if cls is RateLimitError:
        return RateLimitError(
            message, status, code, body, headers, retry_after=parse_retry_after(headers.get("retry-after"))
        )
    return cls(message, status, code, body, headers)


def from_graphql(errors: list[Any]) -> APIError:
    """The typed error for GraphQL `errors` (by their `extensions.code`)."""
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    message = str(first.get("message") or "GraphQL error")
    extensions = first.get("extensions") or {}
    code = extensions.get("code")
    cls = _BY_GRAPHQL_CODE.get(str(code), APIError)
    if cls is RateLimitError:
        retry = extensions.get("retryAfter")
        return RateLimitError(message, 429, code, errors, retry_after=float(retry) if retry is not None else None)
    status = {v: k for k, v in _BY_STATUS.items()}.get(cls)
    return cls(message, status, code, errors)
