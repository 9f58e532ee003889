"""What each fact sends: the outbox rows (webhook deliveries, e-mails) for the events of a transaction,
written in that transaction (`announce`), so that nothing is sent for a change that rolls back and nothing
is lost when a process dies before sending.

Webhook payloads are versioned JSON: `{"id": "evt_…", "type", "version": 1, "created_at", "data"}`, money
as exact JSON numbers. The `id` is the delivery's `webhook-id` on every attempt. E-mails are stored as their
kind and data (`datasources.mail` renders them when they are sent) and carry a key's display prefix only.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from datasources.db.models import Account, ApiKey, OutboxState, Plan, WebhookEndpoint
from datasources.db.tables import OUTBOX
from datasources.events import AlertRaised, BalanceChanged, Broker, Event, KeyChanged, PriceChanged, StatusChanged
from datasources.money import exact_json
from datasources.plans import RULES, Feature
from datasources.webhooks import WEBHOOK_CHANNEL, event_types, models_of, providers_of

EMAIL_CHANNEL = "email"
PAYLOAD_VERSION = 1
WEBHOOK_PLANS = tuple(plan for plan, rules in RULES.items() if Feature.WEBHOOKS in rules.features)


async def announce(session: AsyncSession, events: Sequence[Event], broker: Broker | None) -> None:
    """A fact's events: its messages written in this transaction, and the events published when it commits."""
    if not events:
        return
    await write(session, events)
    if broker is not None:
        await broker.publish(session, events)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _money(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


class _Batch:
    """The outbox rows of one transaction."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def webhook(self, endpoint: WebhookEndpoint, topic: str, data: dict[str, Any], at: datetime) -> None:
        payload = {
            "id": "evt_" + secrets.token_hex(12),
            "type": topic,
            "version": PAYLOAD_VERSION,
            "created_at": _iso(at),
            "data": data,
        }
        self._add(WEBHOOK_CHANNEL, topic, endpoint.account_id, exact_json(payload).decode(), endpoint_id=endpoint.id)

    def email(self, account_id: int, recipient: str | None, kind: str, data: dict[str, str]) -> None:
        if recipient:
            self._add(EMAIL_CHANNEL, kind, account_id, json.dumps(data), recipient=recipient)

    def _add(
        self,
        channel: str,
        topic: str,
        account_id: int | None,
        payload: str,
        endpoint_id: str | None = None,
        recipient: str | None = None,
    ) -> None:
        now = datetime.now(UTC)
        self.rows.append(
            {
                "channel": channel,
                "topic": topic,
                "account_id": account_id,
                "endpoint_id": endpoint_id,
                "recipient": recipient,
                "payload": payload,
                "state": OutboxState.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )

    async def flush(self, session: AsyncSession) -> None:
        if self.rows:
            await session.execute(insert(OUTBOX), self.rows)
            self.rows = []


async def email(session: AsyncSession, account_id: int, kind: str, data: dict[str, str]) -> None:
    """One e-mail to the account's address (none when it has no address)."""
    recipient = (await session.execute(select(Account.email).where(Account.id == account_id))).scalar_one_or_none()
    batch = _Batch()
    batch.email(account_id, recipient, kind, data)
    await batch.flush(session)


def _price_data(e: PriceChanged) -> dict[str, Any]:
    change = e.change_pct
    return {
        "offer_id": e.offer_id,
        "model": e.model,
        "provider": e.provider,
        "variant": e.variant,
        "input_per_1m": e.input_per_1m,
        "output_per_1m": e.output_per_1m,
        "blended_per_1m": e.blended_per_1m,
        "previous_input_per_1m": e.previous_input_per_1m,
        "previous_output_per_1m": e.previous_output_per_1m,
        "change_pct": change,
        "price_kind": e.price_kind.value,
        "status": e.status,
        "observed_at": _iso(e.observed_at),
    }


def _status_data(e: StatusChanged) -> dict[str, Any]:
    return {
        "offer_id": e.offer_id,
        "model": e.model,
        "provider": e.provider,
        "variant": e.variant,
        "status": e.status,
        "previous_status": e.previous_status,
        "changed_at": _iso(e.changed_at),
    }


def _matches(endpoint: WebhookEndpoint, topic: str, model: str | None = None, provider: str | None = None) -> bool:
    wanted = event_types(endpoint)
    if wanted and topic not in wanted:
        return False
    models, providers = models_of(endpoint), providers_of(endpoint)
    if model is not None and models and model not in models:
        return False
    return not (provider is not None and providers and provider not in providers)


def _big_enough(endpoint: WebhookEndpoint, e: PriceChanged) -> bool:
    if endpoint.min_change_pct is None:
        return True
    change = e.change_pct
    return change is not None and abs(change) >= endpoint.min_change_pct


async def _endpoints(session: AsyncSession, account_ids: set[int] | None) -> list[WebhookEndpoint]:
    """Enabled endpoints of accounts whose plan has webhooks (of `account_ids`; None: every account)."""
    query = (
        select(WebhookEndpoint)
        .join(Account, Account.id == WebhookEndpoint.account_id)
        .where(WebhookEndpoint.enabled.is_(True), Account.plan.in_([Plan(p) for p in WEBHOOK_PLANS]))
    )
    if account_ids is not None:
        query = query.where(WebhookEndpoint.account_id.in_(account_ids))
    return list((await session.execute(query)).scalars())


def sends(event: Event) -> bool:
    """Whether the event is a fact that may send messages."""
    return (
        isinstance(event, PriceChanged | StatusChanged | AlertRaised)
        or (isinstance(event, KeyChanged) and event.key_id is not None)
        or (isinstance(event, BalanceChanged) and event.type == "credit")
    )


async def write(session: AsyncSession, events: Sequence[Event]) -> None:
    """The outbox rows for the facts among `events` (price and status changes, keys, credits, alerts)."""
    market = [e for e in events if isinstance(e, PriceChanged | StatusChanged)]
    personal: list[AlertRaised | KeyChanged | BalanceChanged] = [
        e
        for e in events
        if isinstance(e, AlertRaised)
        or (isinstance(e, KeyChanged) and e.key_id is not None)
        or (isinstance(e, BalanceChanged) and e.type == "credit")
    ]
    if not market and not personal:
        return
    batch = _Batch()
    if market:
        endpoints = await _endpoints(session, None)
        for event in market if endpoints else ():
            if isinstance(event, PriceChanged):
                for endpoint in endpoints:
                    if _matches(endpoint, "price.changed", event.model, event.provider) and _big_enough(
                        endpoint, event
                    ):
                        batch.webhook(endpoint, "price.changed", _price_data(event), event.observed_at)
            else:
                for endpoint in endpoints:
                    if _matches(endpoint, "offer.status_changed", event.model, event.provider):
                        batch.webhook(endpoint, "offer.status_changed", _status_data(event), event.changed_at)
    if personal:
        account_ids = {e.account_id for e in personal}
        by_account: dict[int, list[WebhookEndpoint]] = {}
        for endpoint in await _endpoints(session, account_ids):
            by_account.setdefault(endpoint.account_id, []).append(endpoint)
        rows = await session.execute(select(Account.id, Account.email).where(Account.id.in_(account_ids)))
        emails: dict[int, str | None] = {row.id: row.email for row in rows}
        keys = await _keys(session, [e.key_id for e in personal if isinstance(e, KeyChanged) and e.key_id])
        for fact in personal:
            topic, data, mail_kind, mail = _personal(fact, keys)
            for endpoint in by_account.get(fact.account_id, []):
                if _matches(endpoint, topic):
                    batch.webhook(endpoint, topic, data, datetime.now(UTC))
            batch.email(fact.account_id, emails.get(fact.account_id), mail_kind, mail)
    await batch.flush(session)


async def _keys(session: AsyncSession, key_ids: list[str]) -> dict[str, ApiKey]:
    if not key_ids:
        return {}
    rows = await session.execute(select(ApiKey).where(ApiKey.id.in_(key_ids)))
    return {key.id: key for key in rows.scalars()}


def _personal(
    event: AlertRaised | KeyChanged | BalanceChanged, keys: dict[str, ApiKey]
) -> tuple[str, dict[str, Any], str, dict[str, str]]:
    """(webhook type, its data, e-mail kind, e-mail data) for an account's own event."""
    now = datetime.now(UTC)
    data: dict[str, Any]
    if isinstance(event, KeyChanged):
        assert event.key_id is not None
        key = keys.get(event.key_id)
        prefix, name = (key.prefix, key.name) if key is not None else ("", "")
        at = (key.revoked_at if event.revoked else key.created_at) if key is not None else None
        when = _iso(at or now)
        topic = "key.revoked" if event.revoked else "key.created"
        data = {"key_id": event.key_id, "prefix": prefix, "name": name, "at": when}
        return topic, data, topic.replace(".", "_"), {"key_prefix": prefix, "key_name": name, "at": when}
    if isinstance(event, BalanceChanged):
        data = {
            "transaction_id": f"txn_{event.transaction_id}" if event.transaction_id is not None else None,
            "amount": event.amount,
            "balance": event.balance,
            "currency": "usd",
            "created_at": _iso(event.created_at),
        }
        mail = {"amount": _money(event.amount), "balance": _money(event.balance), "order_id": ""}
        return "credit.added", data, "topup_received", mail
    if event.type == "balance.low":
        data = {"balance": event.balance, "threshold": event.threshold, "currency": "usd", "at": _iso(event.raised_at)}
        mail = {"balance": _money(event.balance), "threshold": _money(event.threshold)}
        return "balance.low", data, "balance_low", mail
    scope = "account" if event.scope == "account" else f"key {event.scope}"
    data = {
        "scope": event.scope,
        "percent": event.percent,
        "spent": event.spent,
        "cap": event.cap,
        "period": event.period,
        "currency": "usd",
        "at": _iso(event.raised_at),
    }
    mail = {
        "scope": scope,
        "percent": str(event.percent),
        "spent": _money(event.spent),
        "cap": _money(event.cap),
        "period": event.period or "",
    }
    return "budget.threshold", data, "budget_threshold", mail
