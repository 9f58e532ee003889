"""What a GraphQL operation may cost, estimated from its document before any resolver runs.

The cost is an upper bound on the number of values the answer can hold: every field counts one for
each object it is selected on, scalars and objects alike, and a list field counts once per item it
may return — its bound (`schema/bounds.py`: `first`, `days`, ...) multiplied through the nesting.
Every selection counts, each alias and each fragment spread separately, even where the answer would
merge them. Introspection is counted exactly, over the schema itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_abstract_type,
    is_list_type,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.type.introspection import TypeMetaFieldDef

from schema.bounds import Bound

CEILING = 10**15  # estimates stop growing here; any budget is far below
UNBOUNDED = 10_000  # a list field without a bound (a test keeps the schema free of them)
INTROSPECTION = ("__schema", "__type")


@dataclass(frozen=True)
class Cost:
    estimate: int
    limit: int

    @property
    def exceeded(self) -> bool:
        return self.estimate > self.limit

    def as_extension(self) -> dict[str, int]:
        return {"estimate": self.estimate, "limit": self.limit}


def bound_of(field: GraphQLField) -> Bound | None:
    definition = (field.extensions or {}).get("strawberry-definition")
    for extension in getattr(definition, "extensions", None) or ():
        if isinstance(extension, Bound):
            return extension
    return None


def estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int | None:
    """The operation's cost, or None when it cannot run at all (no such operation, bad variables):
    execution then answers the error itself, before any resolver."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    coerced = get_variable_values(schema, operation.variable_definitions or (), dict(variables or {}))
    if isinstance(coerced, list):
        return None
    return _Estimate(schema, document, coerced).selections(operation.selection_set, root)


class _Estimate:
    """One walk over a document. Each (selection set, type) pair is costed once, so fragments that
    spread each other many times cost the walk no more than their text."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: Any) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.memo: dict[tuple[int, str], int] = {}
        self.introspected: dict[tuple[int, int], int] = {}

    # ---- the schema's own types --------------------------------------------------------------------

    def selections(self, node: SelectionSetNode, parent: GraphQLNamedType) -> int:
        key = (id(node), parent.name)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = CEILING  # a fragment cycle (validation refuses them) would cost everything
        total = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, inner or parent)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    inner = self.schema.get_type(fragment.type_condition.name.value)
                    total += self.selections(fragment.selection_set, inner or parent)
            total = min(total, CEILING)
        self.memo[key] = total
        return total

    def field(self, node: FieldNode, parent: GraphQLNamedType) -> int:
        name = node.name.value
        if name == "__typename":
            return 1
        if name in INTROSPECTION:
            return self.introspection(node)
        if not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)) or name not in parent.fields:
            return 1
        definition = parent.fields[name]
        bound = bound_of(definition)
        if bound is not None:
            size = bound.size(self._arguments(definition, node))
        elif is_list_type(get_nullable_type(definition.type)):
            size = UNBOUNDED
        else:
            size = 1
        inner = self.selections(node.selection_set, get_named_type(definition.type)) if node.selection_set else 0
        return min(max(size, 1) * (1 + inner), CEILING)

    def _arguments(self, definition: GraphQLField, node: FieldNode) -> dict[str, Any]:
        try:
            return get_argument_values(definition, node, self.variables)
        except GraphQLError:
            return {}  # execution refuses the field itself

    # ---- introspection, counted over the schema's real types ----------------------------------------

    def introspection(self, node: FieldNode) -> int:
        if node.name.value == "__schema":
            return 1 + self.introspect(node.selection_set, self.schema)
        name = self._arguments(TypeMetaFieldDef, node).get("name")
        found = self.schema.get_type(name) if isinstance(name, str) else None
        return 1 + (self.introspect(node.selection_set, found) if found is not None else 0)

    def introspect(self, node: SelectionSetNode | None, value: object) -> int:
        if node is None:
            return 0
        key = (id(node), id(value))
        if key in self.introspected:
            return self.introspected[key]
        self.introspected[key] = CEILING
        total = 0
        for field in self._fields(node, set()):
            name = field.name.value
            children = _CHILDREN.get(name)
            found = children(self.schema, value) if children is not None else None
            if isinstance(found, list):  # as everywhere, each item counts and an empty list counts one
                total += max(1, sum(1 + self.introspect(field.selection_set, item) for item in found))
            elif found is not None:
                total += 1 + self.introspect(field.selection_set, found)
            else:
                total += 1
            total = min(total, CEILING)
        self.introspected[key] = total
        return total

    def _fields(self, node: SelectionSetNode, seen: set[str]) -> Iterator[FieldNode]:
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from self._fields(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    yield from self._fields(fragment.selection_set, seen | {selection.name.value})


def _listed(value: object, attribute: str) -> list[object] | None:
    items = getattr(value, attribute, None)
    if isinstance(items, Mapping):
        return list(items.values())
    return list(items) if isinstance(items, (list, tuple)) else None


def _type_fields(schema: GraphQLSchema, value: object) -> list[object] | None:
    if isinstance(value, (GraphQLObjectType, GraphQLInterfaceType)):
        return _listed(value, "fields")
    return None


def _input_fields(schema: GraphQLSchema, value: object) -> list[object] | None:
    return _listed(value, "fields") if isinstance(value, GraphQLInputObjectType) else None


def _possible_types(schema: GraphQLSchema, value: object) -> list[object] | None:
    if isinstance(value, GraphQLNamedType) and is_abstract_type(value):
        return list(schema.get_possible_types(value))
    return None


def _enum_values(schema: GraphQLSchema, value: object) -> list[object] | None:
    return _listed(value, "values") if isinstance(value, GraphQLEnumType) else None


def _of_type(schema: GraphQLSchema, value: object) -> object | None:
    return value.of_type if isinstance(value, (GraphQLList, GraphQLNonNull)) else None


def _types(schema: GraphQLSchema, value: object) -> list[object] | None:
    return list(schema.type_map.values()) if value is schema else None


def _root(operation: str) -> Any:
    def root(schema: GraphQLSchema, value: object) -> object | None:
        return getattr(schema, operation) if value is schema else None

    return root


def _attribute(name: str) -> Any:
    def get(schema: GraphQLSchema, value: object) -> object | None:
        return None if value is schema else getattr(value, name, None)

    return get


# Introspection fields whose values are objects or lists (everything else is one scalar).
_CHILDREN: dict[str, Any] = {
    "types": _types,
    "queryType": _root("query_type"),
    "mutationType": _root("mutation_type"),
    "subscriptionType": _root("subscription_type"),
    "directives": lambda schema, value: list(schema.directives) if value is schema else None,
    "fields": _type_fields,
    "inputFields": _input_fields,
    "interfaces": lambda schema, value: (
        _listed(value, "interfaces") if isinstance(value, (GraphQLObjectType, GraphQLInterfaceType)) else None
    ),
    "possibleTypes": _possible_types,
    "enumValues": _enum_values,
    "ofType": _of_type,
    "args": lambda schema, value: _listed(value, "args") if value is not schema else None,
    "type": _attribute("type"),
    "locations": lambda schema, value: _listed(value, "locations") if value is not schema else None,
}
