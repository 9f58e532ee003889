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
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType
from strawberry.types.execution import ExecutionResult

from datasources.errors import DomainError, QuotaExceeded
from datasources.quotas import Admission
from routing import limits

log = logging.getLogger("pricegraph.graphql")
REFUSALS = {"PAYMENT_REQUIRED", "BAD_USER_INPUT", "UNAUTHENTICATED", "FORBIDDEN"}
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
    if original is not None and not isinstance(original, GraphQLError):
        log.error("unexpected error in %s", error.path, exc_info=original)
        return _with(error, "internal server error", {"code": "INTERNAL_SERVER_ERROR"})
    if error.extensions and "code" in error.extensions:
        return error
    message = error.message if suggestions else SUGGESTION.sub("", error.message)
    return _with(error, message, {"code": _code(error)})


def _refused(result: object) -> bool:
    """Nothing answered and every error is a refusal (plan, input, key): such an operation uses no quota."""
    if not isinstance(result, (GraphQLExecutionResult, ExecutionResult)) or not result.errors:
        return False
    answered = result.data is not None and any(value is not None for value in result.data.values())
    codes = {(error.extensions or {}).get("code") for error in result.errors}
    return not answered and codes <= REFUSALS


class Guard(SchemaExtension):
    admission: Admission | None = None

    async def on_execute(self) -> Iterator[None]:  # type: ignore[override]
        context = self.execution_context.context
        response = context.response if isinstance(context.response, Response) else None
        try:
            self.admission = admission = await limits.admit(context.sessionmaker, context.caller)
            if response is not None:
                response.headers.update(limits.rate_limit_headers(admission))
        except DomainError as exc:
            if self.execution_context.operation_type is OperationType.SUBSCRIPTION:
                raise  # the stream answers it as its one error result
            self.execution_context.result = GraphQLExecutionResult(
                data=None, errors=[GraphQLError(str(exc), original_error=exc)]
            )
            if isinstance(exc, QuotaExceeded) and response is not None:
                response.status_code = 429
                response.headers.update(limits.refusal_headers(exc))
        yield

    async def on_operation(self) -> Iterator[None]:  # type: ignore[override]
        yield
        result = self.execution_context.result
        self._code(result)
        if self.admission is not None and _refused(result):
            context = self.execution_context.context
            self.admission = await limits.refund(context.sessionmaker, self.admission)
            if isinstance(context.response, Response):
                context.response.headers.update(limits.rate_limit_headers(self.admission))

    def on_stream_result(self, result: object) -> Iterator[None]:
        self._code(result)
        yield

    def _code(self, result: object) -> None:
        if isinstance(result, (GraphQLExecutionResult, ExecutionResult)) and result.errors:
            principal = getattr(self.execution_context.context, "principal", None)
            suggestions = principal is not None and principal.authenticated
            result.errors = [coded(error, suggestions) for error in result.errors]
