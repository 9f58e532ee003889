"""Parsed and validated documents, by their text: dashboards and clients send the same few again and
again, and parsing and validating one costs more than answering it from memory.

One cache per process (`app.state.documents`), bounded, of texts up to `MAX_TEXT` characters; a text
seen before skips both steps and reuses its document (documents are never changed once parsed) and the
errors its validation found.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

MAX_ENTRIES = 512
MAX_TEXT = 20_000


@dataclass
class _Known:
    document: DocumentNode
    errors: list[GraphQLError] | None = None  # None: not validated yet


class DocumentCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, _Known] = OrderedDict()
        self.hits = 0

    def get(self, text: str) -> _Known | None:
        known = self.entries.get(text)
        if known is not None:
            self.entries.move_to_end(text)
            self.hits += 1
        return known

    def put(self, text: str, document: DocumentNode) -> _Known | None:
        if len(text) > MAX_TEXT:
            return None
        known = self.entries[text] = _Known(document)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return known


class CachedDocuments(SchemaExtension):
    known: _Known | None = None

    def on_parse(self) -> Iterator[None]:
        execution = self.execution_context
        cache: DocumentCache = execution.context.request.app.state.documents
        text = execution.query
        if text is not None and execution.graphql_document is None:
            self.known = cache.get(text)
            if self.known is None:
                try:
                    document = parse(text, **execution.parse_options)
                except GraphQLError:
                    document = None  # parsed again below, which reports why it fails
                if document is not None:
                    self.known = cache.put(text, document)
                    execution.graphql_document = document
            else:
                execution.graphql_document = self.known.document
        yield

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        known = self.known
        if known is not None and execution.graphql_document is known.document:
            if known.errors is None:
                known.errors = validate_document(execution.schema._schema, known.document, execution.validation_rules)
            execution.pre_execution_errors = known.errors
        yield
