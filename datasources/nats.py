"""Events between server processes through NATS, and the durable tick feed on JetStream (BROKER_URL).

Fan-out. A batch of events is handled when the publishing session commits, never before and never on a
rollback (the same after-commit hook as `MemoryBroker`): this process's listeners receive it at once,
and it is queued for NATS, one core message (a JSON array of `encode()`d events) on
`[<namespace>.]pricegraph.events`, carrying the sender's origin id in the `Pricegraph-Origin` header.
Every process subscribes to that subject and hands what other processes sent to its listeners; its own
messages are not delivered twice: the connection is opened with `no_echo`, and a message carrying its
own origin is dropped anyway.

The tick feed. Every PriceChanged is also appended to the JetStream stream `PRICEGRAPH_TICKS`
(`PRICEGRAPH_TICKS_<namespace>` with a namespace) on `[<namespace>.]ticks.<model>.<provider>`; the body
is `encode(event)` as JSON, whose `model` and `provider` are the original slugs. A slug becomes a
subject token by replacing each `.`, `*`, `>` and whitespace character with `_` (`gpt-4.1` ->
`gpt-4_1`; an empty slug -> `_`): the mapping is not reversible, so read the slugs from the body. The
stream is created when missing: file storage, limits retention (30 days, 1 GiB, oldest discarded first),
and a two-minute duplicate window; each tick's `Nats-Msg-Id` is a digest of its body, so a retried
append (or the same tick appended by several processes) is stored once.

Outages. Nothing here can fail the writer's transaction: publishing to NATS happens after the commit,
from queues drained by background tasks. While NATS is away nats-py reconnects forever, buffers core
messages (up to its pending size; beyond that they are dropped with a warning) and ticks are retried in
order until they are stored (or the backlog overflows, then the newest are dropped with a warning).

On PostgreSQL the broker also LISTENs for what the command line NOTIFYs (`python server.py import`,
`accounts ...`), so those changes reach every server too; their ticks are appended by each server that
hears them, once thanks to the digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.events import Event, MemoryBroker, PostgresBroker, PriceChanged, _payloads, decode, encode

log = logging.getLogger("pricegraph.nats")

STREAM = "PRICEGRAPH_TICKS"
EVENTS_SUBJECT = "pricegraph.events"
ORIGIN_HEADER = "Pricegraph-Origin"
SCHEMES = ("nats", "tls", "ws", "wss")
MESSAGE_LIMIT = 256 * 1024  # bytes per core message; NATS's default max_payload is 1 MiB
TICKS_MAX_AGE = 30 * 24 * 3600.0  # seconds a tick stays in the stream
TICKS_MAX_BYTES = 1 << 30
DUPLICATE_WINDOW = 120.0  # seconds in which a tick appended twice is stored once
BACKLOG = 100_000  # messages (and ticks) queued for NATS at most; beyond, the newest are dropped
_NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_UNSAFE = re.compile(r"[.*>\s]")


def subject_token(slug: str) -> str:
    """A slug as one NATS subject token: `.`, `*`, `>` and whitespace become `_`."""
    return _UNSAFE.sub("_", slug) or "_"


def parse_servers(raw: str) -> tuple[str, ...]:
    """BROKER_URL: one server URL or several, comma-separated. Raises ValueError (without credentials)."""
    servers: list[str] = []
    for part in raw.split(","):
        server = part.strip()
        if not server:
            continue
        try:
            parts = urlsplit(server)
            port = parts.port
        except ValueError:
            raise ValueError(f"expected nats://host:port, got {_redacted(server)!r}") from None
        if parts.scheme not in SCHEMES or not parts.hostname:
            raise ValueError(f"expected nats://host:port (or tls://, ws://, wss://), got {_redacted(server)!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment or port == 0:
            raise ValueError(f"expected nats://host:port, got {_redacted(server)!r}")
        servers.append(server)
    if not servers:
        raise ValueError("expected nats://host:port, got an empty value")
    return tuple(servers)


def check_namespace(raw: str) -> str:
    if raw and not _NAMESPACE.fullmatch(raw):
        raise ValueError(f"expected up to 32 letters, digits, '_' or '-', got {raw!r}")
    return raw


def _redacted(server: str) -> str:
    """A server URL without its credentials."""
    try:
        parts = urlsplit(server)
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:
        return server.rpartition("@")[2]
    return f"{parts.scheme}://{netloc}" if parts.scheme else netloc


@dataclass(frozen=True)
class NatsConfig:
    """Where the NATS servers are (BROKER_URL) and the namespace (BROKER_NAMESPACE) that keeps
    deployments sharing one NATS apart: it prefixes every subject and suffixes the stream's name."""

    servers: tuple[str, ...] = field(repr=False)
    namespace: str = ""
    connect_wait: float = 10.0  # seconds `start` waits for the first connection before going on without

    def __repr__(self) -> str:
        return f"NatsConfig(servers={[_redacted(s) for s in self.servers]!r}, namespace={self.namespace!r})"

    @property
    def hosts(self) -> str:
        return ", ".join(_redacted(s) for s in self.servers)

    def _prefixed(self, subject: str) -> str:
        return f"{self.namespace}.{subject}" if self.namespace else subject

    @property
    def stream(self) -> str:
        return f"{STREAM}_{self.namespace}" if self.namespace else STREAM

    @property
    def events_subject(self) -> str:
        return self._prefixed(EVENTS_SUBJECT)

    @property
    def ticks_subjects(self) -> str:
        return self._prefixed("ticks.>")

    def ticks_subject(self, model: str, provider: str) -> str:
        return self._prefixed(f"ticks.{subject_token(model)}.{subject_token(provider)}")


class NatsBroker(MemoryBroker):
    """Local delivery at commit; NATS core subjects to the other processes; ticks into JetStream."""

    def __init__(self, config: NatsConfig, database: URL | None = None) -> None:
        super().__init__()
        self.config = config
        self.origin = uuid.uuid4().hex
        self.client = Client()
        self.appended = 0  # ticks JetStream acknowledged
        self.dropped = 0  # messages or ticks given up on
        self._js: JetStreamContext | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(BACKLOG)
        self._ticks: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(BACKLOG)
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._errors_logged = False
        self._closing = False
        is_postgres = database is not None and database.get_backend_name() == "postgresql"
        self._notify = PostgresBroker(database) if database is not None and is_postgres else None

    # ---- publishing ----------------------------------------------------------------------------

    async def publish(self, session: AsyncSession, events: Sequence[Event]) -> None:
        if events:
            self._after_commit(session, list(events), self._committed)

    def _committed(self, events: Sequence[Event]) -> None:
        self.dispatch(events)  # this process's listeners, at commit; never again from NATS
        try:
            for payload in _payloads(events, MESSAGE_LIMIT):
                self._queue(self._outbox, payload.encode())
            self._queue_ticks(events)
        except Exception:  # the transaction has committed: nothing may reach its writer from here
            log.exception("could not queue events for NATS")

    def _queue_ticks(self, events: Sequence[Event]) -> None:
        for event in events:
            if isinstance(event, PriceChanged):
                body = json.dumps(encode(event), separators=(",", ":")).encode()
                self._queue(self._ticks, (self.config.ticks_subject(event.model, event.provider), body))

    def _queue(self, queue: asyncio.Queue[Any], item: object) -> None:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("more than %d messages wait for NATS; dropped one", BACKLOG)

    def _announced(self, events: Sequence[Event]) -> None:
        """Events the command line NOTIFYed: every server hears them itself."""
        self.dispatch(events)
        self._queue_ticks(events)

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._notify is not None:
            self._notify.watch(self._announced)
            await self._notify.start()
        self._tasks = [
            asyncio.create_task(self._connect(), name="pricegraph: nats connect"),
            asyncio.create_task(self._send_forever(), name="pricegraph: nats send"),
            asyncio.create_task(self._append_forever(), name="pricegraph: nats ticks"),
        ]
        try:
            await asyncio.wait_for(self._connected.wait(), timeout=self.config.connect_wait)
        except TimeoutError:
            log.error(
                "cannot reach NATS at %s: other processes will not hear this one's events until it "
                "connects (retrying in the background)",
                self.config.hosts,
            )

    async def stop(self, drain_timeout: float = 5.0) -> None:
        self._closing = True
        if self._connected.is_set():  # give what was committed a moment to leave
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained(), timeout=drain_timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if not self.client.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), timeout=5)
        if self._notify is not None:
            await self._notify.stop()
        await super().stop()

    async def _drained(self) -> None:
        await self._outbox.join()
        await self._ticks.join()

    async def _connect(self) -> None:
        await self.client.connect(
            servers=list(self.config.servers),
            name=f"pricegraph-{self.origin[:8]}",
            no_echo=True,
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # forever, the first connection included
            reconnect_time_wait=1,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        self._errors_logged = False
        self._js = self.client.jetstream(timeout=5)
        await self.client.subscribe(self.config.events_subject, cb=self._received)
        try:
            await self._ensure_stream()
        except Exception as exc:
            log.error("cannot create the JetStream stream %s (%s); ticks wait for it", self.config.stream, exc)
        log.info("connected to NATS at %s", self.config.hosts)
        self._connected.set()

    async def _ensure_stream(self) -> None:
        assert self._js is not None
        try:
            await self._js.stream_info(self.config.stream)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(
                StreamConfig(
                    name=self.config.stream,
                    description="Pricegraph price ticks, one message per PriceChanged",
                    subjects=[self.config.ticks_subjects],
                    storage=StorageType.FILE,
                    retention=RetentionPolicy.LIMITS,
                    discard=DiscardPolicy.OLD,
                    max_age=TICKS_MAX_AGE,
                    max_bytes=TICKS_MAX_BYTES,
                    duplicate_window=DUPLICATE_WINDOW,
                )
            )
            log.info("created the JetStream stream %s on %s", self.config.stream, self.config.ticks_subjects)

    async def _on_error(self, exc: Exception) -> None:
        if not self._errors_logged:
            self._errors_logged = True
            log.warning("NATS at %s: %s", self.config.hosts, exc or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        if self._connected.is_set() and not self._closing:
            log.warning("lost the connection to NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self._errors_logged = False
        log.info("reconnected to NATS at %s", self.config.hosts)

    # ---- the background tasks ------------------------------------------------------------------

    async def _send_forever(self) -> None:
        while True:
            payload = await self._outbox.get()
            try:
                await self._connected.wait()
                await self.client.publish(self.config.events_subject, payload, headers={ORIGIN_HEADER: self.origin})
            except (nats.errors.Error, OSError) as exc:
                self.dropped += 1
                log.warning("could not send events to NATS (%s); other processes miss them", exc)
            finally:
                self._outbox.task_done()

    async def _append_forever(self) -> None:
        while True:
            subject, body = await self._ticks.get()
            try:
                await self._append(subject, body)
            finally:
                self._ticks.task_done()

    async def _append(self, subject: str, body: bytes) -> None:
        """Append one tick, retrying until JetStream has it (ticks stay in order: one at a time)."""
        headers = {"Nats-Msg-Id": hashlib.sha256(body).hexdigest()[:32]}
        delay = 0.1
        while True:
            await self._connected.wait()
            assert self._js is not None
            try:
                await self._js.publish(subject, body, headers=headers, stream=self.config.stream)
                self.appended += 1
                return
            except nats.js.errors.NoStreamResponseError:
                log.warning("no JetStream stream %s; creating it", self.config.stream)
                with contextlib.suppress(Exception):
                    await self._ensure_stream()
            except nats.js.errors.ServiceUnavailableError as exc:
                log.warning("JetStream is unavailable (%s); retrying", exc)
            except nats.js.errors.APIError as exc:  # a refusal that retrying will not change
                self.dropped += 1
                log.error("JetStream refused a tick on %s (%s); dropped it", subject, exc)
                return
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                log.warning("could not append a tick to %s (%s); retrying", self.config.stream, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # ---- receiving -----------------------------------------------------------------------------

    async def _received(self, msg: Msg) -> None:
        if (msg.headers or {}).get(ORIGIN_HEADER) == self.origin:
            return  # delivered here at commit
        try:
            events = [decode(item) for item in json.loads(msg.data)]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event message on %s", msg.subject)
            return
        self.dispatch(events)
