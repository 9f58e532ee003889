"""Errors in the shape the OpenAI clients understand: `{"error": {"message", "type", "code", "param"}}`."""

from __future__ import annotations

import json
from typing import Any

from datasources import callers, errors

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    500: "api_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


class GatewayError(Exception):
    """A refusal or failure with its HTTP status, an OpenAI error `code`, and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.metadata = metadata

    @classmethod
    def from_domain(cls, exc: errors.DomainError) -> GatewayError:
        status = exc.status
        headers = callers.refusal_headers(exc) if isinstance(exc, errors.QuotaExceeded) else {}
        if isinstance(exc, errors.Unauthenticated):
            headers["www-authenticate"] = "Bearer"
        return cls(status, exc.describe(), exc.code.lower(), headers)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": TYPES.get(self.status, "api_error"),
            "code": self.code,
            "param": None,
        }
        if self.metadata:
            error["metadata"] = self.metadata
        return {"error": error}

    def encode(self) -> bytes:
        return json.dumps(self.body(), ensure_ascii=False, separators=(",", ":")).encode()


def error_event(message: str, status: int, code: str) -> bytes:
    """An SSE event the OpenAI clients raise on (`data: {"error": ...}`) for a stream cut after it began."""
    body = {"error": {"message": message, "type": TYPES.get(status, "api_error"), "code": code, "param": None}}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
