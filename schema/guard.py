"""Every GraphQL operation: authenticate, bound its cost, count it against the plan's quota, and give
each error a code.

The cost (`schema/cost.py`) is estimated before anything runs and refused above the plan's budget with
`QUERY_TOO_COMPLEX`, using no quota; every answer carries the estimate in `extensions.cost`. Domain
errors keep their message and get their `extensions.code`; anything unexpected is logged and answered
as `INTERNAL_SERVER_ERROR` without details. Unauthenticated callers get no field suggestions.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from graphql import DocumentNode, FieldNode, GraphQLError, OperationDefinitionNode
from graphql import ExecutionResult as GraphQLExecutionResult
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.utils.str_converters import to_camel_case

from datasources import callers
from datasources.errors import DomainError, QuotaExceeded
from datasources.plans import PlanRules
from datasources.quotas import Admission
from schema import cost
from schema.pacing import LARGE, LARGE_ANSWERS

log = logging.getLogger("pricegraph.graphql")
CACHEABLE = "pricegraph.cacheable"  # set on an HTTP request's scope when its answer may be cached
CATALOG_ROOTS = frozenset(
    {"models", "model", "providers", "provider", "prices", "compare", "__typename", "__schema", "__type"}
)
REFUSALS = {"PAYMENT_REQUIRED", "BAD_USER_INPUT", "UNAUTHENTICATED", "FORBIDDEN", "QUERY_TOO_COMPLEX"}
SUGGESTION = re.compile(r"\s*Did you mean .*\?$")


class QueryTooComplex(DomainError):
    code = "QUERY_TOO_COMPLEX"
    status = 400

    def __init__(self, found: cost.Cost, plan: str) -> None:
        super().__init__(
            f"query cost {found.estimate:,} exceeds the {plan} plan's limit of {found.limit:,} (the cost is the "
            "most values the answer could hold): ask for smaller pages (first) or fewer nested lists"
        )
        self.cost = found


def _code(error: GraphQLError) -> str:
    if error.message.startswith("Syntax Error") or "Parsing aborted" in error.message:
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable '$"):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


def _with(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def coded(error: GraphQLError, suggestions: bool) -> GraphQLError:
    original = error.original_error
    if isinstance(original, DomainError):
        extensions: dict[str, object] = {"code": original.code}
        if isinstance(original, QuotaExceeded):
            extensions["retryAfter"] = original.retry_after
        if isinstance(original, QueryTooComplex):
            extensions["cost"] = original.cost.as_extension()
        return _with(error, original.describe(to_camel_case), extensions)
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


def catalog_only(document: DocumentNode) -> bool:
    """Whether every root field reads the catalog and no field anywhere is `candles`."""
    roots: set[str] = set()
    names: set[str] = set()
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            roots.update(s.name.value for s in definition.selection_set.selections if isinstance(s, FieldNode))
            if any(not isinstance(s, FieldNode) for s in definition.selection_set.selections):
                return False  # fragments at the root: not worth following
        _field_names(definition, names)
    return roots <= CATALOG_ROOTS and "candles" not in names


def _field_names(node: Any, names: set[str]) -> None:
    selection_set = getattr(node, "selection_set", None)
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            names.add(selection.name.value)
        _field_names(selection, names)


class Guard(SchemaExtension):
    admission: Admission | None = None
    cost: cost.Cost | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        with contextlib.ExitStack() as stack:
            await self._admit(context, stack)
            yield

    async def _admit(self, context: Any, stack: contextlib.ExitStack) -> None:
        response = context.response if isinstance(context.response, Response) else None
        try:
            self._bound(context.caller.rules)
            if self.cost is not None and self.cost.estimate > LARGE and not self.cost.exceeded:
                self._large(context, stack)
            self.admission = admission = await callers.admit(context.quotas, context.caller)
            if response is not None:
                response.headers.update(callers.rate_limit_headers(admission))
        except DomainError as exc:
            if self.execution_context.operation_type is OperationType.SUBSCRIPTION:
                raise  # the stream answers it as its one error result
            self.execution_context.result = GraphQLExecutionResult(
                data=None, errors=[GraphQLError(str(exc), original_error=exc)]
            )
            if isinstance(exc, QuotaExceeded) and response is not None:
                response.status_code = 429
                response.headers.update(callers.refusal_headers(exc))

    @staticmethod
    def _large(context: Any, stack: contextlib.ExitStack) -> None:
        """Pause the collector's passes while this answer is built, and over HTTP until it is sent."""
        pacer = context.pacer
        pacer.enter_large()
        if isinstance(context.request, Request):
            context.request.scope.setdefault(LARGE_ANSWERS, []).append(pacer)
        else:
            stack.callback(pacer.leave_large)

    def _bound(self, rules: PlanRules) -> None:
        execution = self.execution_context
        document = execution.graphql_document
        if document is None:
            return
        found = cost.estimate(execution.schema._schema, document, execution.operation_name, execution.variables)
        if found is None:
            return  # execution answers why it cannot run, before any resolver
        self.cost = cost.Cost(found, rules.query_cost)
        if self.cost.exceeded:
            raise QueryTooComplex(self.cost, rules.plan.value)

    def get_results(self) -> dict[str, object]:
        if self.cost is None or self.execution_context.operation_type is OperationType.SUBSCRIPTION:
            return {}
        return {"cost": self.cost.as_extension()}

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        result = self.execution_context.result
        self._code(result)
        self._mark_cacheable(result)
        if self.admission is not None and _refused(result):
            context = self.execution_context.context
            self.admission = callers.refund(context.quotas, self.admission)
            if isinstance(context.response, Response):
                context.response.headers.update(callers.rate_limit_headers(self.admission))

    def _mark_cacheable(self, result: object) -> None:
        """A query of the catalog alone (no candles: history moves with the clock), answered without an
        error, is the same answer for the same plan until the catalog changes."""
        context = self.execution_context.context
        request = getattr(context, "request", None)
        document = self.execution_context.graphql_document
        if not isinstance(request, Request) or document is None:
            return
        if self.execution_context.operation_type is not OperationType.QUERY:
            return
        if not isinstance(result, (GraphQLExecutionResult, ExecutionResult)) or result.errors or result.data is None:
            return
        if catalog_only(document):
            request.scope[CACHEABLE] = True

    def on_stream_result(self, result: object) -> Iterator[None]:
        self._code(result)
        yield

    def _code(self, result: object) -> None:
        if isinstance(result, (GraphQLExecutionResult, ExecutionResult)) and result.errors:
            principal = getattr(self.execution_context.context, "principal", None)
            suggestions = principal is not None and principal.authenticated
            result.errors = [coded(error, suggestions) for error in result.errors]
