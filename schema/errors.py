"""GraphQL errors carry an `extensions.code` the client can branch on."""

from __future__ import annotations

from graphql import GraphQLError


def bad_input(field: str, message: str) -> GraphQLError:
    return GraphQLError(f"{field}: {message}", extensions={"code": "BAD_USER_INPUT", "field": field})
