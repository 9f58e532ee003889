"""The cost of a GraphQL operation, estimated from its document: the most values its answer can hold.

These run the estimator on the real schema; `tests/test_query_limits.py` checks what the server does
with the estimate, and that real answers never hold more values than estimated.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from graphql import (
    GraphQLInterfaceType,
    GraphQLObjectType,
    get_introspection_query,
    get_nullable_type,
    graphql,
    is_list_type,
    parse,
)

from resolvers.root import schema
from schema.bounds import Page, Sized
from schema.catalog import MODEL_OFFERS, PROVIDER_OFFERS
from schema.cost import bound_of, estimate

SCHEMA = schema._schema


def cost(query: str, **variables: Any) -> int | None:
    return estimate(SCHEMA, parse(query), None, variables)


def values(answer: Any) -> int:
    """The values an answer holds, counted as the estimate counts them: each field's value one (an empty
    list too), each item of a list one, plus what each object holds."""
    if isinstance(answer, dict):
        return sum(_field(value) for value in answer.values())
    return 0


def _field(value: Any) -> int:
    if isinstance(value, list):  # an empty list is one value
        return max(1, sum(1 + values(item) for item in value))
    return 1 + values(value)


def test_a_page_counts_each_item_and_what_it_holds() -> None:
    assert cost("{ models(first: 3) { slug } }") == 3 * (1 + 1)
    assert cost("{ models(first: 3) { slug displayName family } }") == 3 * (1 + 3)
    assert cost("{ models { slug } }") == 100 * 2  # the declared default page
    assert cost("query ($n: Int!) { models(first: $n) { slug } }", n=7) == 7 * 2


def test_nested_pages_multiply() -> None:
    default = MODEL_OFFERS.default
    assert cost('{ model(slug: "x") { offers { id } } }') == 1 + default * 2
    assert cost('{ model(slug: "x") { offers(first: 4) { id provider { slug } } } }') == 1 + 4 * (1 + 1 + 2)
    deeper = "{ models(first: 10) { offers(first: 4) { provider { offers(first: 3) { id } } } } }"
    assert cost(deeper) == 10 * (1 + 4 * (1 + 1 + 3 * 2))
    assert cost("{ providers { offers { id } } }") == 100 * (1 + PROVIDER_OFFERS.default * 2)


def test_aliases_and_fragment_spreads_count_each_time() -> None:
    one = cost("{ models(first: 2) { slug } }")
    assert one is not None
    assert cost("{ a: models(first: 2) { slug } b: models(first: 2) { slug } }") == 2 * one
    assert cost("fragment F on Model { slug } { models(first: 2) { ...F ...F } }") == 2 * (1 + 2)
    assert cost("{ models(first: 2) { ... on Model { slug family } } }") == 2 * (1 + 2)
    # fragments that spread each other many times are costed once per (fragment, type)
    chain = " ".join(f"fragment F{i} on Model {{ ...F{i + 1} ...F{i + 1} }}" for i in range(20))
    document = f"{chain} fragment F20 on Model {{ slug }} {{ models(first: 1) {{ ...F0 }} }}"
    assert cost(document) == 1 + 2**20


def test_candles_count_a_day_or_an_hour_each() -> None:
    daily = '{ candles(model: "m", provider: "p", days: 7) { close } }'
    assert cost(daily) == (7 + 1) * 2
    hourly = '{ candles(model: "m", provider: "p", days: 7, interval: HOUR) { close open } }'
    assert cost(hourly) == (7 * 24 + 1) * 3
    assert cost("{ prices(first: 5) { candles(days: 30) { close } } }") == 5 * (1 + 31 * 2)


def test_compare_and_mutations_are_sized_by_their_input() -> None:
    assert cost('{ compare(models: ["a", "b", "c"]) { providerCount } }') == 3 * 2
    assert cost('{ compare(models: ["a", "b", "c", "d", "e", "f", "g"]) { providerCount } }') == 5 * 2
    record = "mutation ($p: [PriceInput!]!) { recordPrices(prices: $p) { unchanged ticks { model } } }"
    one = {"model": "m", "provider": "p", "inputPer1m": "1", "outputPer1m": "1"}
    assert cost(record, p=[one] * 4) == 4 * (1 + 1 + 2)


def test_a_subscription_is_costed_per_event() -> None:
    assert cost('subscription { priceChanged(model: "m") { model provider blendedPer1m } }') == 1 + 3
    assert cost("subscription { usageRecorded { id cost } }") == 1 + 2


def test_an_operation_that_cannot_run_has_no_estimate() -> None:
    assert cost("query ($n: Int!) { models(first: $n) { slug } }") is None  # a required variable is missing
    assert cost("query ($n: Int!) { models(first: $n) { slug } }", n="seven") is None
    assert estimate(SCHEMA, parse("query A { __typename } query B { __typename }"), "C", {}) is None


def test_introspection_is_counted_exactly() -> None:
    """GraphiQL's introspection query costs what its answer really holds, far below a keyless budget."""
    query = get_introspection_query(descriptions=True)
    answer = asyncio.run(graphql(SCHEMA, query))
    assert answer.errors is None
    assert cost(query) == values(answer.data)
    named = '{ __type(name: "Price") { name fields { name args { name } type { name kind ofType { name } } } } }'
    answer = asyncio.run(graphql(SCHEMA, named))
    assert cost(named) == values(answer.data)
    assert cost('{ __type(name: "NoSuchType") { name } }') == 1


def test_every_list_in_the_schema_is_bounded() -> None:
    unbounded = []
    for type_ in SCHEMA.type_map.values():
        if type_.name.startswith("__") or not isinstance(type_, (GraphQLObjectType, GraphQLInterfaceType)):
            continue
        for name, field in type_.fields.items():
            if is_list_type(get_nullable_type(field.type)) and bound_of(field) is None:  # type: ignore[arg-type]
                unbounded.append(f"{type_.name}.{name}")
            bound = bound_of(field)
            if isinstance(bound, Page):  # a page's arguments are the schema's, defaults included
                assert "first" in field.args and field.args["first"].default_value == bound.default, name
    assert unbounded == []


@pytest.mark.parametrize("bound", [Page(10, 50), Sized.fixed(5, "five")])
def test_bounds_size(bound: Page | Sized) -> None:
    if isinstance(bound, Page):
        assert bound.size({}) == 10 and bound.size({"first": 20}) == 20 and bound.size({"first": 500}) == 50
    else:
        assert bound.size({}) == 5
