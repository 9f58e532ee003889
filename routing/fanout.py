"""Shared fan-out of public subscriptions: one execution per event for every subscriber of the same thing.

Subscribers whose operation has the same document (as printed from its parsed form), variables, operation
name and visibility (the caller's plan, and whether it is authenticated) form a group. Each subscriber's
own operation is admitted as before (validation, cost against its plan, its quota, its arguments), then
joins the group and waits; the group runs the operation once, on one broker listener, and writes each
result, encoded once, to every member: the member's operation id is spliced into the pre-encoded frame
(`{"id":…,"type":"next","payload":…}` for graphql-transport-ws, `"type":"data"` for graphql-ws).

Each member has its own bounded queue of frames and its own writer; a member more than `WS_QUEUE_SIZE`
frames behind is cut off (1013) and nobody waits for it. The group's listener is bounded the same way:
a group that falls behind (a burst larger than the queue) cuts off all its members, as each of their own
listeners would have. The registry is the app's (`app.state.fanout`); an empty group stops at once.

Private subscriptions (`usageRecorded`, `balanceChanged`) stay one execution per subscriber.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from graphql import parse, print_ast
from starlette.types import Message
from starlette.websockets import WebSocket
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from datasources.callers import Principal
from datasources.db.models import Plan
from datasources.events import Event, SlowConsumer
from datasources.plans import PlanRules
from datasources.quotas import UNLIMITED, Admission, QuotaBook
from routing.graphql import encode_answer
from routing.websocket import CLOSE_SLOW_CONSUMER, SUBSCRIBING, TRANSPORT_WS, Subscribing, close
from schema.context import Context, Info

log = logging.getLogger("pricegraph.fanout")
NORMALIZED_TEXTS = 512  # query texts whose printed form is remembered


@dataclass(frozen=True)
class GroupKey:
    document: str
    variables: str
    operation_name: str | None
    plan: str
    authenticated: bool


class _Unmetered:
    """A group's execution is nobody's request: each member used its own quota when it subscribed."""

    async def admit(self, subject: str, rules: PlanRules) -> Admission:
        return UNLIMITED

    def refund(self, admission: Admission) -> Admission:
        return admission


_UNMETERED = _Unmetered()


@dataclass
class SharedContext(Context):
    """The context a group's one execution runs in: the app's parts, the members' plan, no socket."""

    group: Group | None = None

    @property
    def quotas(self) -> QuotaBook:
        return cast(QuotaBook, _UNMETERED)

    async def events(self, accepts: Callable[[Event], bool]) -> AsyncGenerator[Event, None]:
        group = self.group
        assert group is not None
        listener = self.broker.listen(accepts, group.bound)
        listener.on_overflow = group.fell_behind
        try:
            while True:
                try:
                    event = await anext(listener)
                except SlowConsumer:
                    group.fell_behind()
                    return
                yield event
        finally:
            listener.close()


class Member:
    """One subscribed operation of one socket: its frame prefix, its queue, its writer."""

    __slots__ = ("bound", "done", "group", "prefix", "queue", "sending", "ws")

    def __init__(self, group: Group, ws: WebSocket, subscribing: Subscribing, bound: int) -> None:
        kind = "next" if subscribing.protocol == TRANSPORT_WS else "data"
        self.prefix = '{"id":' + json.dumps(subscribing.id) + ',"type":"' + kind + '","payload":'
        self.group = group
        self.ws = ws
        self.bound = bound
        self.queue: deque[str] = deque()
        self.sending = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def offer(self, payload: str) -> None:
        """Queue one encoded payload; never waits. Past the bound the member is cut off (1013)."""
        if self.done.done():
            return
        if len(self.queue) >= self.bound:
            self.cut_off()
            return
        self.queue.append(payload)
        if not self.sending:
            self.sending = True
            self.group.registry.spawn(self._write())

    async def _write(self) -> None:
        try:
            while self.queue and not self.done.done():
                payload = self.queue.popleft()
                await self.ws.send_text(self.prefix + payload + "}")
        except Exception:  # noqa: BLE001 - the socket went: its handler ends the operation
            self.finish()
        finally:
            self.sending = False

    def cut_off(self) -> None:
        reason = f"slow consumer: fell more than {self.bound} events behind"
        self.group.registry.spawn(close(self.ws, CLOSE_SLOW_CONSUMER, reason))
        self.finish()

    def finish(self, error: BaseException | None = None) -> None:
        """The member's subscription ends here (its operation then completes, or reports `error`)."""
        self.queue.clear()
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)
        self.group.remove(self)

    def leave(self) -> None:
        self.finish()


class Group:
    """Subscribers of one operation and the one task that executes it for them."""

    def __init__(
        self, registry: Registry, key: GroupKey, schema: Any, variables: object, plan: Plan, bound: int
    ) -> None:
        self.registry = registry
        self.plan = plan
        self.key = key
        self.schema = schema
        self.variables = variables
        self.bound = bound
        self.members: dict[Member, None] = {}  # in joining order
        self.executions = 0  # results computed (once per event, however many members)
        self.task: asyncio.Task[None] | None = None
        self.ended = False

    def add(self, member: Member) -> None:
        self.members[member] = None

    def remove(self, member: Member) -> None:
        self.members.pop(member, None)
        if not self.members:
            self.stop()

    def stop(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self.registry.groups.get(self.key) is self:
            del self.registry.groups[self.key]
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        for member in list(self.members):
            member.finish()

    def fell_behind(self) -> None:
        """The group's own listener overflowed: every member is as far behind as it is."""
        for member in list(self.members):
            member.cut_off()
        self.stop()

    async def run(self, app: Any) -> None:
        principal = Principal(plan=self.plan, client_ip="fan-out")
        context = SharedContext(
            request=_app_socket(app), response=None, sessionmaker=app.state.sessionmaker, principal=principal
        )
        context.group = self
        error: BaseException | None = None
        try:
            stream = await self.schema.subscribe(
                self.key.document,
                variable_values=self.variables,
                context_value=context,
                operation_name=self.key.operation_name,
            )
            async with aclosing(stream):
                async for result in stream:
                    if isinstance(result, PreExecutionError) or not isinstance(result, ExecutionResult):
                        error = RuntimeError("the shared subscription could not start")
                        log.error("a shared subscription failed before it ran: %s", result)
                        return
                    self.executions += 1
                    self.registry.executions += 1
                    payload = await self._encoded(result, app)
                    for member in list(self.members):
                        member.offer(payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("a shared subscription failed")
            error = exc
        finally:
            self.ended = True
            if self.registry.groups.get(self.key) is self:
                del self.registry.groups[self.key]
            for member in list(self.members):
                member.finish(error)

    @staticmethod
    async def _encoded(result: ExecutionResult, app: Any) -> str:
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        return (await encode_answer(payload, app.state.pacer, app.state.graphql_limits)).decode()


class Registry:
    """The app's groups, by what their members subscribed to."""

    def __init__(self) -> None:
        self.groups: dict[GroupKey, Group] = {}
        self.executions = 0  # over every group, since start
        self._normalized: OrderedDict[str, str] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def normalized(self, text: str) -> str:
        printed = self._normalized.get(text)
        if printed is None:
            printed = self._normalized[text] = print_ast(parse(text))
            while len(self._normalized) > NORMALIZED_TEXTS:
                self._normalized.popitem(last=False)
        return printed

    def join(self, info: Info, subscribing: Subscribing) -> Member:
        context = info.context
        ws = context.request
        assert isinstance(ws, WebSocket)
        caller = context.caller
        name = subscribing.operation_name if isinstance(subscribing.operation_name, str) else None
        key = GroupKey(
            self.normalized(subscribing.query),
            json.dumps(subscribing.variables or {}, sort_keys=True, separators=(",", ":"), default=str),
            name,
            caller.plan.value,
            caller.authenticated,
        )
        bound = ws.app.state.ws_limits.queue_size
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(self, key, info.schema, subscribing.variables, caller.plan, bound)
            # A context of its own: the group is no one subscriber's operation.
            group.task = asyncio.get_running_loop().create_task(
                group.run(ws.app), name="pricegraph: shared subscription", context=contextvars.Context()
            )
        member = Member(group, ws, subscribing, bound)
        group.add(member)
        return member


def registry(app: Any) -> Registry:
    found: Registry | None = getattr(app.state, "fanout", None)
    if found is None:
        found = app.state.fanout = Registry()
    return found


def join(info: Info) -> Member | None:
    """Join the group of this subscription, if it is a subscriber's own operation over a websocket;
    None for a group's execution itself, or when there is no subscribe message to answer."""
    context = info.context
    if isinstance(context, SharedContext) or not isinstance(context.request, WebSocket):
        return None
    subscribing = SUBSCRIBING.get()
    if subscribing is None:
        return None
    return registry(context.request.app).join(info, subscribing)


async def _never_receive() -> Message:
    raise RuntimeError("a shared subscription has no socket to read")


async def _never_send(message: Message) -> None:
    raise RuntimeError("a shared subscription has no socket to write")


def _app_socket(app: Any) -> WebSocket:
    """A connection object carrying only the app, for what the context reads from `request.app`."""
    scope = {"type": "websocket", "app": app, "path": "/graphql", "headers": [], "query_string": b"", "state": {}}
    return WebSocket(scope, _never_receive, _never_send)
