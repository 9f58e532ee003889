"""Domain errors. Each carries its GraphQL `code` and HTTP `status`; each surface (CLI, GraphQL, REST,
gateway) turns them into its own shape in one place."""

from __future__ import annotations

from collections.abc import Callable


class DomainError(Exception):
    code = "INTERNAL"
    status = 500

    def __init__(self, message: str = "", field: str | None = None) -> None:
        super().__init__(message)
        # The input it concerns, by its domain name (`days`, `credit`): a message with a field says what is
        # wrong without naming it, and each surface names it in its own words (`describe`).
        self.field = field

    def describe(self, name: Callable[[str], str] = lambda field: field, style: str = "{field}: {message}") -> str:
        if self.field is None:
            return str(self)
        return style.format(field=name(self.field), message=self)


class NotFound(DomainError):
    code = "NOT_FOUND"
    status = 404


class BadInput(DomainError):
    code = "BAD_USER_INPUT"
    status = 400


class InsufficientBalance(DomainError):
    code = "PAYMENT_REQUIRED"
    status = 402


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(DomainError):
    code = "FORBIDDEN"
    status = 403


class PlanRequired(DomainError):
    """The caller's plan does not include what was asked; it used no quota."""

    code = "PAYMENT_REQUIRED"
    status = 402


class QuotaExceeded(DomainError):
    code = "RATE_LIMITED"
    status = 429

    def __init__(self, message: str, limit: int, retry_after: int, reset_at: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after
        self.reset_at = reset_at


class BudgetExceeded(DomainError):
    """A request would pass a spend cap (an account's or a key's monthly budget)."""

    code = "BUDGET_EXCEEDED"
    status = 402


class Unavailable(DomainError):
    """Something the request needs is not configured or does not answer (a payment provider)."""

    code = "UNAVAILABLE"
    status = 503
