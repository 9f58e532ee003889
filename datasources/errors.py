"""Domain errors. Each surface (CLI, GraphQL, REST, gateway) maps them once to its own shape."""

from __future__ import annotations


class DomainError(Exception):
    code = "INTERNAL"


class NotFound(DomainError):
    code = "NOT_FOUND"


class BadInput(DomainError):
    code = "BAD_USER_INPUT"


class InsufficientBalance(DomainError):
    code = "PAYMENT_REQUIRED"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class PlanRequired(DomainError):
    """The caller's plan does not include what was asked; it used no quota."""

    code = "PAYMENT_REQUIRED"


class QuotaExceeded(DomainError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, limit: int, retry_after: int, reset_at: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after
        self.reset_at = reset_at
