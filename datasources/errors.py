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
