"""Webhook endpoints and their deliveries, budgets, alert settings, alerts and top-up checkouts."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import strawberry

from datasources import budgets, webhooks
from datasources.db import models as db
from datasources.events import AlertRaised
from schema.bounds import Sized

EVENTS = Sized.fixed(len(webhooks.EVENT_TYPES), "the event types")
FILTER = Sized.fixed(webhooks.MAX_FILTER_ITEMS, "a filter's entries")
THRESHOLDS = Sized.fixed(budgets.MAX_THRESHOLDS, "a budget's thresholds")
ATTEMPTS = Sized.fixed(20, "the latest attempts of a delivery")


@strawberry.type(description="Where the account's events are POSTed, signed per Standard Webhooks.")
class WebhookEndpoint:
    row: strawberry.Private[db.WebhookEndpoint]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.row.id)

    @strawberry.field
    def url(self) -> str:
        return self.row.url

    @strawberry.field
    def description(self) -> str:
        return self.row.description

    @strawberry.field(description="Event types delivered; empty: every type.", extensions=[EVENTS])
    def events(self) -> list[str]:
        return webhooks.event_types(self.row)

    @strawberry.field(description="Only these models' price and status events; empty: any model.", extensions=[FILTER])
    def models(self) -> list[str]:
        return webhooks.models_of(self.row)

    @strawberry.field(
        description="Only these providers' price and status events; empty: any provider.", extensions=[FILTER]
    )
    def providers(self) -> list[str]:
        return webhooks.providers_of(self.row)

    @strawberry.field(description="price.changed only for moves at least this large, in percent.")
    def min_change_pct(self) -> Decimal | None:
        return self.row.min_change_pct

    @strawberry.field
    def enabled(self) -> bool:
        return self.row.enabled

    @strawberry.field
    def disabled_reason(self) -> str | None:
        return self.row.disabled_reason

    @strawberry.field(description="When its current run of failed deliveries began; null: the last one worked.")
    def failing_since(self) -> datetime | None:
        return self.row.failing_since

    @strawberry.field(description="The first characters of the signing secret.")
    def secret_hint(self) -> str:
        return self.row.secret_hint + "…"

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at


@strawberry.type
class CreatedWebhookEndpoint:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(description="The signing secret (whsec_…), shown this once.")


@strawberry.type
class DeliveryAttempt:
    attempt: int
    status: int | None
    error: str | None
    duration_ms: int
    response: str
    created_at: datetime


@strawberry.type(description="One message to an endpoint and its attempts so far.")
class WebhookDelivery:
    id: strawberry.ID
    type: str
    state: str = strawberry.field(description="pending, delivered or failed.")
    payload: strawberry.scalars.JSON
    attempts: list[DeliveryAttempt] = strawberry.field(extensions=[ATTEMPTS])
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, message: db.OutboxMessage, attempts: list[db.DeliveryAttempt]) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(str(message.id)),
            type=message.topic,
            state=message.state,
            payload=json.loads(message.payload),
            attempts=[
                DeliveryAttempt(
                    attempt=a.attempt,
                    status=a.status,
                    error=a.error,
                    duration_ms=a.duration_ms,
                    response=a.response,
                    created_at=a.created_at,
                )
                for a in attempts[-20:]
            ],
            next_attempt_at=message.next_attempt_at if message.state == db.OutboxState.PENDING else None,
            created_at=message.created_at,
            delivered_at=message.delivered_at,
        )


@strawberry.type(description="A monthly spend cap in USD on the account or one of its keys.")
class Budget:
    row: strawberry.Private[db.Budget]

    @strawberry.field(description="'account', or the key id of a key's budget.")
    def scope(self) -> str:
        return self.row.scope

    @strawberry.field
    def key_id(self) -> strawberry.ID | None:
        return None if self.row.scope == budgets.ACCOUNT_SCOPE else strawberry.ID(self.row.scope)

    @strawberry.field
    def monthly_cap(self) -> Decimal:
        return self.row.monthly_cap

    @strawberry.field(description="Spent this month (UTC).")
    def spent(self) -> Decimal:
        return budgets.spent_this_period(self.row)

    @strawberry.field
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.row.monthly_cap - budgets.spent_this_period(self.row))

    @strawberry.field(description="The month, YYYY-MM.")
    def period(self) -> str:
        return budgets.period_of()

    @strawberry.field(description="Alert thresholds, percent of the cap.", extensions=[THRESHOLDS])
    def thresholds(self) -> list[int]:
        return list(budgets.thresholds_of(self.row))


@strawberry.type
class AlertSettings:
    email: str | None
    low_balance: Decimal | None = strawberry.field(description="Alert once when the balance falls below this (USD).")


@strawberry.type(description="A budget threshold or the low-balance line crossed (once per period).")
class BudgetAlert:
    row: strawberry.Private[AlertRaised]

    @strawberry.field(description="budget.threshold or balance.low.")
    def type(self) -> str:
        return self.row.type

    @strawberry.field
    def scope(self) -> str:
        return self.row.scope

    @strawberry.field
    def percent(self) -> int | None:
        return self.row.percent

    @strawberry.field
    def spent(self) -> Decimal | None:
        return self.row.spent

    @strawberry.field
    def cap(self) -> Decimal | None:
        return self.row.cap

    @strawberry.field
    def period(self) -> str | None:
        return self.row.period

    @strawberry.field
    def balance(self) -> Decimal | None:
        return self.row.balance

    @strawberry.field
    def threshold(self) -> Decimal | None:
        return self.row.threshold

    @strawberry.field
    def raised_at(self) -> datetime:
        return self.row.raised_at


@strawberry.type(description="A Polar checkout for a top-up: open its URL to pay.")
class Checkout:
    id: str
    url: str
    amount: Decimal
