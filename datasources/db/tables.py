"""The tables as SQLAlchemy Core sees them, for statements on hot rows (no ORM objects, no unit of work)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from datasources.db.models import (
    Account,
    ApiKey,
    BalanceTransaction,
    Budget,
    BudgetLease,
    CreditLease,
    DeliveryAttempt,
    OutboxMessage,
    RequestCounter,
    UsageRecord,
    WebhookEndpoint,
)

ACCOUNTS = cast(Table, Account.__table__)
API_KEYS = cast(Table, ApiKey.__table__)
LEDGER = cast(Table, BalanceTransaction.__table__)
LEASES = cast(Table, CreditLease.__table__)
COUNTERS = cast(Table, RequestCounter.__table__)
RECORDS = cast(Table, UsageRecord.__table__)
BUDGETS = cast(Table, Budget.__table__)
BUDGET_LEASES = cast(Table, BudgetLease.__table__)
OUTBOX = cast(Table, OutboxMessage.__table__)
ATTEMPTS = cast(Table, DeliveryAttempt.__table__)
ENDPOINTS = cast(Table, WebhookEndpoint.__table__)
