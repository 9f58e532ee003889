"""Every GraphQL operation: authenticate, count against the plan's quota, and give each error a code.

Domain errors keep their message and get their `extensions.code`; anything unexpected is logged and
answered as `INTERNAL_SERVER_ERROR` without details. Unauthenticated callers get no field suggestions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult

from datasources.errors import DomainError, QuotaExceeded
from routing import limits

log = logging.getLogger("pricegraph.graphql")
SUGGESTION = re.compile(r"\s*Did you mean .*\?$")


def _code(error: GraphQLError) -> str:
    if error.message.startswith("Syntax Error") or "Parsing aborted" in error.message:
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable '$"):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


def _with(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    return GraphQLError(message, nodes=error.nodes, source=error.source, positions=error.positions,
                        path=error.path, original_error=None, extensions=extensions)


def coded(error: GraphQLError, suggestions: bool) -> GraphQLError:
    original = error.original_error
    if isinstance(original, DomainError):
        extensions: dict[str, object] = {"code": original.code}
        if isinstance(original, QuotaExceeded):
            extensions["retryAfter"] = original.retry_after
        return _with(error, str(original), extensions)
    if isinstance(original, GraphQLError):
        return coded(original, suggestions)
    if original is not None:
        log.error("unexpected error in %s", error.path, exc_info=original)
        return _with(error, "internal server error", {"code": "INTERNAL_SERVER_ERROR"})
    if error.extensions and "code" in error.extensions:
        return error
    message = error.message if suggestions else SUGGESTION.sub("", error.message)
    return _with(error, message, {"code": _code(error)})


class Guard(SchemaExtension):
    async def on_execute(self) -> Iterator[None]:  # type: ignore[override]
        context = self.execution_context.context
        response = getattr(context, "response", None)
        try:
            admission = await limits.admit(context.sessionmaker, context.caller)
            if response is not None and hasattr(response, "headers"):
                response.headers.update(limits.rate_limit_headers(admission))
        except DomainError as exc:
            self.execution_context.result = GraphQLExecutionResult(
                data=None, errors=[GraphQLError(str(exc), original_error=exc)]
            )
            if isinstance(exc, QuotaExceeded) and response is not None and hasattr(response, "headers"):
                response.status_code = 429
                response.headers["Retry-After"] = str(exc.retry_after)
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, (GraphQLExecutionResult, ExecutionResult)) and result.errors:
            principal = getattr(self.execution_context.context, "principal", None)
            suggestions = principal is not None and principal.authenticated
            result.errors = [coded(error, suggestions) for error in result.errors]
