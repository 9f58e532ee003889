"""Webhook endpoints (Team plan and above): where an account wants events POSTed, with what filters, and
the log of what was delivered to them. The signing secret (`whsec_…`) is shown once, when the endpoint is
created or its secret rotated, and kept sealed (`datasources.secrets`)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from datasources import plans, signing
from datasources.db.models import Account, DeliveryAttempt, OutboxMessage, OutboxState, Plan, WebhookEndpoint
from datasources.db.tables import OUTBOX
from datasources.errors import BadInput, NotFound
from datasources.secrets import Sealer

EVENT_TYPES = (
    "price.changed",
    "offer.status_changed",
    "balance.low",
    "budget.threshold",
    "key.created",
    "key.revoked",
    "credit.added",
)
MAX_ENDPOINTS = 20
MAX_FILTER_ITEMS = 100
WEBHOOK_CHANNEL = "webhook"


@dataclass(frozen=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str  # shown once


@dataclass(frozen=True)
class Changes:
    url: str | None = None
    events: Sequence[str] | None = None
    models: Sequence[str] | None = None
    providers: Sequence[str] | None = None
    min_change_pct: object = ...  # ... leaves it; None clears it
    description: str | None = None
    enabled: bool | None = None


def sealing_context(endpoint_id: str) -> str:
    return f"webhook-endpoint:{endpoint_id}"


def event_types(endpoint: WebhookEndpoint) -> list[str]:
    return list(json.loads(endpoint.events))


def models_of(endpoint: WebhookEndpoint) -> list[str]:
    return list(json.loads(endpoint.models))


def providers_of(endpoint: WebhookEndpoint) -> list[str]:
    return list(json.loads(endpoint.providers))


def check_url(url: str) -> str:
    url = url.strip()
    if len(url) > 2048:
        raise BadInput("at most 2048 characters", field="url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"expected an http or https URL, got {url!r}", field="url")
    if parts.username or parts.password:
        raise BadInput("credentials in the URL are not allowed; the signature authenticates deliveries", field="url")
    return url


def _events(values: Sequence[str]) -> str:
    unknown = [v for v in values if v not in EVENT_TYPES]
    if unknown:
        raise BadInput(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}", field="events")
    return json.dumps(sorted(set(values)))


def _names(values: Sequence[str], name: str) -> str:
    cleaned = sorted({v.strip() for v in values if v.strip()})
    if len(cleaned) > MAX_FILTER_ITEMS:
        raise BadInput(f"at most {MAX_FILTER_ITEMS} entries", field=name)
    return json.dumps(cleaned)


def _percent(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise BadInput(f"{value!r} is not a number", field="min_change_pct") from None
    if not number.is_finite() or number < 0 or number > 10_000:
        raise BadInput(f"must be from 0 to 10000, got {value}", field="min_change_pct")
    return number


async def _account_plan(session: AsyncSession, account_id: int) -> Plan:
    plan = (await session.execute(select(Account.plan).where(Account.id == account_id))).scalar_one_or_none()
    if plan is None:
        raise NotFound(f"account {account_id} not found")
    return Plan(plan)


async def create(
    session: AsyncSession,
    account_id: int,
    url: str,
    sealer: Sealer,
    events: Sequence[str] = (),
    models: Sequence[str] = (),
    providers: Sequence[str] = (),
    min_change_pct: object = None,
    description: str = "",
) -> Created:
    plans.require(plans.RULES[await _account_plan(session, account_id)], plans.Feature.WEBHOOKS)
    count = len(
        (await session.execute(select(WebhookEndpoint.id).where(WebhookEndpoint.account_id == account_id))).all()
    )
    if count >= MAX_ENDPOINTS:
        raise BadInput(f"an account may have at most {MAX_ENDPOINTS} webhook endpoints", field="url")
    if len(description) > 200:
        raise BadInput("at most 200 characters", field="description")
    endpoint_id = "we_" + secrets.token_hex(8)
    secret = signing.new_secret()
    now = datetime.now(UTC)
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        account_id=account_id,
        url=check_url(url),
        description=description,
        events=_events(events),
        models=_names(models, "models"),
        providers=_names(providers, "providers"),
        min_change_pct=_percent(min_change_pct),
        secret_sealed=sealer.seal(secret, sealing_context(endpoint_id)),
        secret_hint=secret[:10],
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return Created(endpoint, secret)


async def get(session: AsyncSession, account_id: int, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
    if endpoint is None or endpoint.account_id != account_id:
        raise NotFound(f"webhook endpoint {endpoint_id!r} not found", field="id")
    return endpoint


async def list_endpoints(session: AsyncSession, account_id: int) -> list[WebhookEndpoint]:
    rows = await session.execute(
        select(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id).order_by(WebhookEndpoint.created_at)
    )
    return list(rows.scalars())


async def change(session: AsyncSession, account_id: int, endpoint_id: str, changes: Changes) -> WebhookEndpoint:
    endpoint = await get(session, account_id, endpoint_id)
    values: dict[str, object] = {"updated_at": datetime.now(UTC)}
    if changes.url is not None:
        values["url"] = check_url(changes.url)
    if changes.events is not None:
        values["events"] = _events(changes.events)
    if changes.models is not None:
        values["models"] = _names(changes.models, "models")
    if changes.providers is not None:
        values["providers"] = _names(changes.providers, "providers")
    if changes.min_change_pct is not ...:
        values["min_change_pct"] = _percent(changes.min_change_pct)
    if changes.description is not None:
        if len(changes.description) > 200:
            raise BadInput("at most 200 characters", field="description")
        values["description"] = changes.description
    if changes.enabled is not None:
        values["enabled"] = changes.enabled
        if changes.enabled:  # switched on again: a fresh start
            values["failing_since"] = None
            values["disabled_reason"] = None
        else:
            values["disabled_reason"] = "disabled by its owner"
    await session.execute(update(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id).values(**values))
    return await get(session, account_id, endpoint_id)


async def rotate_secret(session: AsyncSession, account_id: int, endpoint_id: str, sealer: Sealer) -> Created:
    endpoint = await get(session, account_id, endpoint_id)
    secret = signing.new_secret()
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint.id)
        .values(
            secret_sealed=sealer.seal(secret, sealing_context(endpoint.id)),
            secret_hint=secret[:10],
            updated_at=datetime.now(UTC),
        )
    )
    return Created(await get(session, account_id, endpoint_id), secret)


async def remove(session: AsyncSession, account_id: int, endpoint_id: str) -> None:
    endpoint = await get(session, account_id, endpoint_id)
    await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))


@dataclass(frozen=True)
class Delivery:
    """One message to an endpoint and its attempts so far."""

    message: OutboxMessage
    attempts: list[DeliveryAttempt]


async def deliveries(session: AsyncSession, account_id: int, endpoint_id: str, limit: int = 50) -> list[Delivery]:
    """The endpoint's latest messages, newest first, each with its attempts (status, timing, error)."""
    endpoint = await get(session, account_id, endpoint_id)
    messages = list(
        (
            await session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.endpoint_id == endpoint.id)
                .order_by(OutboxMessage.id.desc())
                .limit(limit)
            )
        ).scalars()
    )
    attempts: dict[int, list[DeliveryAttempt]] = {m.id: [] for m in messages}
    if messages:
        rows = await session.execute(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.message_id.in_(list(attempts)))
            .order_by(DeliveryAttempt.message_id, DeliveryAttempt.attempt)
        )
        for attempt in rows.scalars():
            attempts[attempt.message_id].append(attempt)
    return [Delivery(m, attempts[m.id]) for m in messages]


async def send_again(session: AsyncSession, account_id: int, endpoint_id: str, message_id: int) -> OutboxMessage:
    """Queue a delivered or failed message to its endpoint once more (the same webhook id and payload)."""
    endpoint = await get(session, account_id, endpoint_id)
    message = await session.get(OutboxMessage, message_id)
    if message is None or message.endpoint_id != endpoint.id:
        raise NotFound(f"delivery {message_id} not found for endpoint {endpoint_id!r}", field="delivery_id")
    new_id = (
        await session.execute(
            insert(OUTBOX)
            .values(
                channel=WEBHOOK_CHANNEL,
                topic=message.topic,
                account_id=account_id,
                endpoint_id=endpoint.id,
                payload=message.payload,
                state=OutboxState.PENDING,
                attempts=0,
                next_attempt_at=datetime.now(UTC),
                created_at=datetime.now(UTC),
            )
            .returning(OUTBOX.c.id)
        )
    ).scalar_one()
    found = await session.get(OutboxMessage, new_id)
    assert found is not None
    return found
