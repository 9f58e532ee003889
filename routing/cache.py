"""Answers to public price reads, kept as the bytes they were sent as until the catalog changes.

A key is what makes two reads the same question (the path, the parameters in order, the caller's plan:
what it may see); an entry is good while the price book's snapshot is the one it was made from, so a
price or status event, from any process, retires every entry at once. Reads that hit still count against
the caller's quota; only the work of answering is saved. A request sent with `Cache-Control: no-cache`
is answered afresh (and its answer kept for the next).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping

MAX_ENTRIES = 2048


def wants_fresh(headers: Mapping[str, str]) -> bool:
    return "no-cache" in headers.get("cache-control", "").lower()


class ResponseCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, version: int) -> bytes | None:
        found = self.entries.get(key)
        if found is None or found[0] != version:
            self.misses += 1
            return None
        self.entries.move_to_end(key)
        self.hits += 1
        return found[1]

    def put(self, key: Hashable, version: int, body: bytes) -> None:
        self.entries[key] = (version, body)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
