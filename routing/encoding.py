"""JSON answers written without holding the event loop, and never larger than a cap.

One `json.dumps` of a large answer holds the loop for as long as it takes (about 190 ms for half a
million values). Answers whose estimated cost is small are written that way; larger ones are written
piece by piece: each container of up to a couple of thousand values in one C-speed call, the
containers around them by hand, with a pause on the pacer between pieces. Either way an answer over the cap stops at the
cap and raises `TooLarge`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from schema.pacing import LARGE, Pacer

SMALL = 20_000  # estimated values below which one json.dumps is quick (a few milliseconds)
PIECE = 2_000  # values written by one json.dumps call when an answer is written piece by piece
_encode = json.JSONEncoder(separators=(",", ":")).encode
_CONTAINERS = (dict, list, tuple)


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit:,} bytes; ask for smaller pages or fewer fields")
        self.limit = limit


def estimated_cost(message: Any) -> int | None:
    """The cost estimate an answer carries in `extensions.cost` (or a websocket message's payload)."""
    if not isinstance(message, dict):
        return None
    payload = message.get("payload", message)
    extensions = payload.get("extensions") if isinstance(payload, dict) else None
    found = extensions.get("cost") if isinstance(extensions, dict) else None
    estimate = found.get("estimate") if isinstance(found, dict) else None
    return estimate if isinstance(estimate, int) else None


async def encode(value: Any, pacer: Pacer, limit: int) -> bytes:
    estimate = estimated_cost(value)
    if estimate is not None and estimate <= SMALL:
        text = _encode(value)
        if len(text) > limit:
            raise TooLarge(limit)
        return text.encode()
    parts: list[str] = []
    size = 0
    large = pacer.large() if estimate is None or estimate > LARGE else contextlib.nullcontext()
    with pacer.running(), large:
        for piece in _pieces(value):
            parts.append(piece)
            size += len(piece)
            if size > limit:
                raise TooLarge(limit)
            if pacer.due():
                await pacer.breathe()
    return "".join(parts).encode()


async def dismantle(value: Any, pacer: Pacer) -> None:
    """Take a large answer apart a piece at a time, pausing when a breath is due. Dropping it whole
    frees its hundreds of thousands of objects in one go, which holds the loop about as long as
    writing it did."""
    stack = [value]
    while stack:
        item = stack[-1]
        if isinstance(item, list) and item:
            child = item.pop()
        elif isinstance(item, dict) and item:
            child = item.popitem()[1]
        else:
            stack.pop()
            continue
        if isinstance(child, _CONTAINERS) and not _small(child):
            stack.append(child)
        del child  # a small piece is freed here
        if pacer.due():
            await pacer.breathe()


def _small(value: Any, limit: int = PIECE) -> bool:
    """Whether `value` holds at most `limit` values; stops counting past the limit."""
    stack = [value]
    count = 0
    while stack:
        item = stack.pop()
        count += len(item)
        if count > limit:
            return False
        for inner in item.values() if isinstance(item, dict) else item:
            if isinstance(inner, _CONTAINERS):
                stack.append(inner)
    return True


def _pieces(value: Any) -> Iterator[str]:
    """The JSON text of `value` (ASCII, compact) in pieces of at most `PIECE` values each."""
    if not isinstance(value, _CONTAINERS) or _small(value):
        yield _encode(value)
    elif isinstance(value, dict):
        separator = "{"
        for key, item in value.items():
            yield separator + _encode(str(key)) + ":"
            separator = ","
            yield from _pieces(item)
        yield "}"
    else:
        separator = "["
        for item in value:
            yield separator
            separator = ","
            yield from _pieces(item)
        yield "]"
