"""Long GraphQL work shares the event loop: it gives the loop back every few milliseconds.

Resolving a large answer is a long run of small synchronous steps (a field, then the next), and
awaiting a finished DataLoader future does not yield either, so without help one large query holds
the loop for seconds: health checks, REST, the gateway and every websocket would wait. The `Pacer`
(one per process, on the app's state) measures how long work has run since the loop last had a turn;
past its slice, every resolver (and the JSON writer, `routing/encoding.py`) waits for one shared
"breath" — a callback the loop runs on its next iteration, after it has read the sockets and served
what was waiting — and then carries on.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from inspect import isawaitable
from time import perf_counter
from typing import Any

from strawberry.extensions import SchemaExtension

SLICE_SECONDS = 0.005
PACED_LIST = 16  # longer lists are handed over item by item
LARGE = 100_000  # an answer estimated to hold more values than this pauses the collector's passes
LARGE_ANSWERS = "pricegraph.large_answers"  # the request scope's list of pacers to leave once answered


class Pacer:
    def __init__(self, slice_seconds: float = SLICE_SECONDS) -> None:
        self.slice = slice_seconds
        self.breaths = 0  # how many times work gave the loop back (for tests and metrics)
        self._started = perf_counter()
        self._active = 0
        self._breath: asyncio.Future[None] | None = None
        self._large = 0
        self._collecting = True

    def due(self) -> bool:
        """Whether work should give the loop back now (one is pending, or the slice is used up)."""
        return self._breath is not None or perf_counter() - self._started >= self.slice

    async def breathe(self) -> None:
        """Wait until the loop has had a full turn; everyone who asks meanwhile waits for the same one."""
        if self._breath is None:
            loop = asyncio.get_running_loop()
            self._breath = loop.create_future()
            loop.call_soon(self._release)
            self.breaths += 1
        await asyncio.shield(self._breath)  # a cancelled waiter must not cancel everyone's breath

    async def pause(self) -> None:
        if self.due():
            await self.breathe()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around a unit of work: the first one to start after the loop was idle starts a new slice."""
        if self._active == 0 and self._breath is None:
            self._started = perf_counter()
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1

    @contextmanager
    def large(self) -> Iterator[None]:
        """Around building or writing a large answer. Its hundreds of thousands of objects would make
        each of the collector's passes pause the loop for 50 to 80 ms, several times over; those passes
        wait until no large answer is in the making (at most the deadline) and run as usual after. An
        answer's objects are freed as soon as it is sent, so a pass after that has little to look at:
        HTTP requests leave only once their answer is out (`enter_large` / `leave_large`)."""
        self.enter_large()
        try:
            yield
        finally:
            self.leave_large()

    def enter_large(self) -> None:
        if self._large == 0:
            self._collecting = gc.isenabled()
            gc.disable()
        self._large += 1

    def leave_large(self) -> None:
        self._large -= 1
        if self._large == 0 and self._collecting:
            gc.enable()

    def _release(self) -> None:
        breath, self._breath = self._breath, None
        self._started = perf_counter()
        if breath is not None and not breath.done():
            breath.set_result(None)


class Pacing(SchemaExtension):
    """Lists are where an answer grows, so lists are where it pauses: a list longer than a few items,
    or any list once the slice is used up, is handed to the executor one item at a time, and the
    executor waits for a breath between items when one is due. Without that it walks a whole list,
    and everything under each item, in one go."""

    pacer: Pacer | None = None

    def on_execute(self) -> Iterator[None]:
        pacer: Pacer = self.execution_context.context.pacer
        self.pacer = pacer
        with pacer.running():
            yield

    def resolve(self, _next: Callable[..., Any], root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        result = _next(root, info, *args, **kwargs)
        pacer = self.pacer
        if pacer is None:
            return result
        if isinstance(result, list):
            return _paced(pacer, result) if len(result) > PACED_LIST or pacer.due() else result
        if isawaitable(result):
            return _paced_list_of(pacer, result)
        return result


async def _paced_list_of(pacer: Pacer, awaitable: Awaitable[Any]) -> Any:
    result = await awaitable
    if isinstance(result, list):
        return _paced(pacer, result)
    return result


async def _paced(pacer: Pacer, items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        if pacer.due():
            await pacer.breathe()
        yield item
