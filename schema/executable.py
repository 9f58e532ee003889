"""The executable schema: the limits every operation obeys (depth, aliases, tokens, cost, deadline) and the
extensions that enforce them, around whichever root types are given."""

from __future__ import annotations

import asyncio
from typing import Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types.graphql import OperationType

from schema.documents import CachedDocuments
from schema.guard import Guard
from schema.pacing import Pacing
from schema.usage import SCALARS as USAGE_SCALARS

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Errors are logged where they are coded (schema/guard.py): only unexpected ones, once."""

    async def _execute_operation(self, execution_context: Any, *args: Any, **kwargs: Any) -> Any:
        """A query (over HTTP or a websocket) that runs past the deadline is cancelled and answers one
        `DEADLINE_EXCEEDED` error; the pacer makes sure the loop gets to cancel it. Mutations run to
        their end: their input is bounded, and one cancelled after its commit would answer an error for
        a change that was made."""
        if execution_context.operation_type is not OperationType.QUERY:
            return await super()._execute_operation(execution_context, *args, **kwargs)
        deadline = execution_context.context.limits.deadline
        timeout = asyncio.timeout(deadline)
        try:
            async with timeout:
                return await super()._execute_operation(execution_context, *args, **kwargs)
        except TimeoutError:
            if not timeout.expired():
                raise
        message = f"the operation ran longer than {deadline:g} s and was stopped; ask for less"
        result = GraphQLExecutionResult(
            data=None, errors=[GraphQLError(message, extensions={"code": "DEADLINE_EXCEEDED"})]
        )
        execution_context.result = result
        return result


def build(query: type, mutation: type, subscription: type) -> Schema:
    return Schema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        extensions=[
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            CachedDocuments,
            Guard,
            Pacing,
        ],
        # strawberry types scalar_map values as its private ScalarWrapper, which strawberry.scalar() returns
        config=StrawberryConfig(scalar_map={**USAGE_SCALARS}),  # type: ignore[dict-item]
    )
