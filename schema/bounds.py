"""How many items each list field may return, declared on the field and read by the cost analysis.

Every list in the schema carries one bound (a test walks the schema to check): a `Page` for lists the
caller pages through with `first` and `offset` (a default and a maximum), or a `Sized` for lists whose
length follows from other arguments (`days` of candles, the `models` to compare) or is fixed. A bound on
a field that is not itself a list (a connection, a mutation's result) multiplies everything under it;
the list inside then declares `Sized.BY_PARENT`.

Bounds take no part in resolution: resolvers validate and apply their page with `Page.take`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from strawberry.extensions.field_extension import FieldExtension

from datasources.errors import BadInput

T = TypeVar("T")
Arguments = Mapping[str, Any]


class Bound(FieldExtension):
    """The most items a field's list can hold, given its (coerced) arguments."""

    def size(self, arguments: Arguments) -> int:
        raise NotImplementedError


class Page(Bound):
    """`first` (from 1 to `maximum`, default `default`) items after skipping `offset`."""

    def __init__(self, default: int, maximum: int) -> None:
        assert 1 <= default <= maximum
        self.default = default
        self.maximum = maximum

    def size(self, arguments: Arguments) -> int:
        first = arguments.get("first", self.default)
        return min(first, self.maximum) if isinstance(first, int) and first > 0 else self.maximum

    def check(self, first: int, offset: int = 0) -> None:
        if not 1 <= first <= self.maximum:
            raise BadInput(f"first: must be from 1 to {self.maximum}, got {first}")
        if offset < 0:
            raise BadInput(f"offset: must not be negative, got {offset}")

    def take(self, items: Sequence[T], first: int, offset: int = 0) -> list[T]:
        self.check(first, offset)
        return list(items[offset : offset + first])

    def __repr__(self) -> str:
        return f"Page(default={self.default}, maximum={self.maximum})"


class Sized(Bound):
    """A length that follows from other arguments, or a fixed one."""

    BY_PARENT: Sized

    def __init__(self, size: Callable[[Arguments], int], why: str) -> None:
        self._size = size
        self.why = why

    @classmethod
    def fixed(cls, count: int, why: str) -> Sized:
        return cls(lambda _: count, why)

    def size(self, arguments: Arguments) -> int:
        return self._size(arguments)

    def __repr__(self) -> str:
        return f"Sized({self.why})"


Sized.BY_PARENT = Sized.fixed(1, "counted by the field above it")
