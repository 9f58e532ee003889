"""Delivering the outbox: workers claim due messages, send them, and log every attempt.

A worker claims a few due messages at a time in one short transaction (on PostgreSQL `FOR UPDATE SKIP
LOCKED`, so that instances never wait on each other nor take the same row; on SQLite the write lock
serialises claims), marking each with its instance id and a claim expiry. Each claimed message is sent
once; the attempt is logged (`delivery_attempts`) and the message marked delivered, or scheduled again
after the next delay of the retry schedule (seconds, then minutes, then hours: about a day in all), or,
the schedule spent, failed. A worker that dies mid-send leaves its claims to expire: the message is tried
again, as a new attempt.

What a channel does is its deliverer's: webhooks are signed and POSTed through the SSRF-safe sender
(`datasources.delivery`), e-mails rendered and sent over SMTP (`datasources.mail`). A channel without a
deliverer (e-mail without SMTP_URL) is not claimed: its messages wait, visible to operators.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources import mail, notices
from datasources.db.models import OutboxState, WebhookEndpoint
from datasources.db.tables import ATTEMPTS, ENDPOINTS, OUTBOX
from datasources.delivery import Sender
from datasources.secrets import Sealer
from datasources.signing import headers as signed_headers
from datasources.webhooks import sealing_context

log = logging.getLogger("pricegraph.outbox")

# Seconds before each retry: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 8 h (about 24 h).
RETRY_SCHEDULE: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
DISABLE_AFTER = timedelta(days=1)  # an endpoint failing this long is disabled and its owner told


@dataclass(frozen=True)
class Claimed:
    id: int
    channel: str
    topic: str
    account_id: int | None
    endpoint_id: str | None
    recipient: str | None
    payload: str
    attempts: int


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None = None
    error: str | None = None
    duration_ms: int = 0
    response: str = ""
    final: bool = False  # no point trying again (the endpoint is gone or disabled)


class Deliverer(Protocol):
    async def deliver(self, message: Claimed) -> Outcome: ...
    async def after(self, session: AsyncSession, message: Claimed, outcome: Outcome, gave_up: bool) -> None: ...
    async def aclose(self) -> None: ...


class WebhookDeliverer:
    """Signs (Standard Webhooks) and POSTs a delivery to its endpoint; keeps the endpoint's failure streak,
    disabling it (and e-mailing its owner) once it has failed for `disable_after`."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        sender: Sender,
        sealer: Sealer,
        disable_after: timedelta = DISABLE_AFTER,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.sender = sender
        self.sealer = sealer
        self.disable_after = disable_after

    async def deliver(self, message: Claimed) -> Outcome:
        async with self.sessionmaker() as session:
            endpoint = await session.get(WebhookEndpoint, message.endpoint_id) if message.endpoint_id else None
        if endpoint is None:
            return Outcome(False, error="the endpoint was deleted", final=True)
        if not endpoint.enabled:
            return Outcome(False, error=f"the endpoint is disabled ({endpoint.disabled_reason})", final=True)
        secret = self.sealer.open(endpoint.secret_sealed, sealing_context(endpoint.id))
        body = message.payload.encode()
        webhook_id = str(json.loads(message.payload).get("id", f"msg_{message.id}"))
        headers = {"content-type": "application/json", **signed_headers(secret, webhook_id, int(time.time()), body)}
        sent = await self.sender.post(endpoint.url, body, headers)
        return Outcome(sent.ok, sent.status, sent.error, sent.duration_ms, sent.response)

    async def after(self, session: AsyncSession, message: Claimed, outcome: Outcome, gave_up: bool) -> None:
        if message.endpoint_id is None or outcome.final:
            return
        now = datetime.now(UTC)
        if outcome.ok:
            await session.execute(
                update(ENDPOINTS).where(ENDPOINTS.c.id == message.endpoint_id).values(failing_since=None)
            )
            return
        row = (
            await session.execute(
                update(ENDPOINTS)
                .where(ENDPOINTS.c.id == message.endpoint_id)
                .values(failing_since=ENDPOINTS.c.failing_since)
                .returning(ENDPOINTS.c.failing_since, ENDPOINTS.c.enabled, ENDPOINTS.c.url, ENDPOINTS.c.account_id)
            )
        ).one_or_none()
        if row is None or not row.enabled:
            return
        since = row.failing_since
        if since is None:
            await session.execute(
                update(ENDPOINTS).where(ENDPOINTS.c.id == message.endpoint_id).values(failing_since=now)
            )
            since = now
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        if now - since < self.disable_after:
            return
        reason = f"failing since {since.isoformat()}: {outcome.error or outcome.status}"[:200]
        disabled = (
            await session.execute(
                update(ENDPOINTS)
                .where(ENDPOINTS.c.id == message.endpoint_id, ENDPOINTS.c.enabled.is_(True))
                .values(enabled=False, disabled_reason=reason, updated_at=now)
                .returning(ENDPOINTS.c.id)
            )
        ).scalar_one_or_none()
        if disabled is not None:
            log.warning("webhook endpoint %s disabled: %s", message.endpoint_id, reason)
            await notices.email(
                session,
                row.account_id,
                "webhook_disabled",
                {"url": row.url, "reason": str(outcome.error or outcome.status), "since": since.isoformat()},
            )

    async def aclose(self) -> None:
        await self.sender.aclose()


class MailDeliverer:
    """Renders an e-mail from its kind and data and sends it over SMTP."""

    def __init__(self, config: mail.SmtpConfig) -> None:
        self.config = config

    async def deliver(self, message: Claimed) -> Outcome:
        started = time.monotonic()
        if not message.recipient:
            return Outcome(False, error="no recipient", final=True)
        try:
            rendered = mail.render(
                mail.Kind(message.topic), message.recipient, json.loads(message.payload), self.config.sender
            )
        except ValueError as exc:
            return Outcome(False, error=f"not sent: {exc}", final=True)
        try:
            await mail.send(self.config, rendered)
        except mail.MailError as exc:
            return Outcome(False, error=str(exc)[:500], duration_ms=round((time.monotonic() - started) * 1000))
        return Outcome(True, duration_ms=round((time.monotonic() - started) * 1000))

    async def after(self, session: AsyncSession, message: Claimed, outcome: Outcome, gave_up: bool) -> None:
        return None

    async def aclose(self) -> None:
        return None


class OutboxWorker:
    """This process's outbox worker (`app.state.outbox`)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        instance_id: str,
        deliverers: dict[str, Deliverer],
        schedule: Sequence[float] = RETRY_SCHEDULE,
        batch: int = 20,
        claim_seconds: float = 120.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.instance_id = instance_id
        self.deliverers = deliverers
        self.schedule = tuple(schedule)
        self.batch = batch
        self.claim_seconds = claim_seconds
        self.poll_seconds = poll_seconds
        self.attempts = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.deliverers:
            self._task = asyncio.create_task(self._run(), name="pricegraph: outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for deliverer in self.deliverers.values():
            with contextlib.suppress(Exception):
                await deliverer.aclose()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                done = await self.run_once()
            except Exception:
                log.warning("the outbox could not be read", exc_info=True)
                done = 0
            if done:
                continue  # more may be due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim what is due and deliver it; how many messages were attempted."""
        claimed = await self.claim()
        if claimed:
            await asyncio.gather(*(self._attempt(message) for message in claimed))
        return len(claimed)

    async def claim(self) -> list[Claimed]:
        now = datetime.now(UTC)
        due = and_(
            OUTBOX.c.state == OutboxState.PENDING,
            OUTBOX.c.channel.in_(list(self.deliverers)),
            OUTBOX.c.next_attempt_at <= now,
            or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < now),
        )
        claim = {"claimed_by": self.instance_id, "claimed_until": now + timedelta(seconds=self.claim_seconds)}
        columns = (
            OUTBOX.c.id,
            OUTBOX.c.channel,
            OUTBOX.c.topic,
            OUTBOX.c.account_id,
            OUTBOX.c.endpoint_id,
            OUTBOX.c.recipient,
            OUTBOX.c.payload,
            OUTBOX.c.attempts,
        )
        pick = select(OUTBOX.c.id).where(due).order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id).limit(self.batch)
        async with self.sessionmaker() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                ids = list((await session.execute(pick.with_for_update(skip_locked=True))).scalars())
            else:  # a read first: an idle outbox never takes SQLite's write lock
                ids = list((await session.execute(pick)).scalars())
            if not ids:
                return []
            # Still due when written: on SQLite another process may have claimed some meanwhile.
            statement = update(OUTBOX).where(OUTBOX.c.id.in_(ids), due)
            rows = (await session.execute(statement.values(**claim).returning(*columns))).all()
        return [Claimed(*row) for row in rows]

    async def _attempt(self, message: Claimed) -> None:
        deliverer = self.deliverers[message.channel]
        try:
            outcome = await deliverer.deliver(message)
        except Exception as exc:  # a deliverer's own failure is an attempt that failed
            log.exception("delivering outbox message %s failed", message.id)
            outcome = Outcome(False, error=f"{type(exc).__name__}: {exc}"[:500])
        self.attempts += 1
        attempt = message.attempts + 1
        now = datetime.now(UTC)
        gave_up = not outcome.ok and (outcome.final or attempt > len(self.schedule))
        if outcome.ok:
            values: dict[str, object] = {"state": OutboxState.DELIVERED, "delivered_at": now}
        elif gave_up:
            values = {"state": OutboxState.FAILED}
        else:
            values = {"next_attempt_at": now + timedelta(seconds=self.schedule[attempt - 1])}
        values.update(
            attempts=attempt,
            claimed_by=None,
            claimed_until=None,
            last_status=outcome.status,
            last_error=(outcome.error or None) and str(outcome.error)[:500],
        )
        async with self.sessionmaker() as session, session.begin():
            mine = (
                await session.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id == message.id, OUTBOX.c.claimed_by == self.instance_id)
                    .values(**values)
                    .returning(OUTBOX.c.id)
                )
            ).scalar_one_or_none()
            if mine is None:  # the claim expired and another worker took it: its attempt counts, not this one
                log.warning("outbox message %s was claimed again before this attempt finished", message.id)
                return
            await session.execute(
                insert(ATTEMPTS).values(
                    message_id=message.id,
                    endpoint_id=message.endpoint_id,
                    attempt=attempt,
                    instance_id=self.instance_id,
                    status=outcome.status,
                    error=(outcome.error or None) and str(outcome.error)[:500],
                    duration_ms=outcome.duration_ms,
                    response=outcome.response[:1000],
                    created_at=now,
                )
            )
            await deliverer.after(session, message, outcome, gave_up)
        if gave_up:
            log.warning("outbox message %s (%s) failed for good: %s", message.id, message.topic, outcome.error)


async def pending_by_channel(session: AsyncSession) -> dict[str, int]:
    """How many messages wait to be delivered, per channel (what the `ix_outbox_due` index covers)."""
    rows = await session.execute(
        select(OUTBOX.c.channel, func.count()).where(OUTBOX.c.state == OutboxState.PENDING).group_by(OUTBOX.c.channel)
    )
    return {channel: count for channel, count in rows.all()}
