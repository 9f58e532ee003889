from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum

import strawberry

from datasources.db import models as db


@strawberry.enum
class Plan(Enum):
    FREE = "free"
    DEVELOPER = "developer"
    TEAM = "team"
    ENTERPRISE = "enterprise"


@strawberry.type
class Account:
    row: strawberry.Private[db.Account]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field
    def plan(self) -> Plan:
        return Plan(self.row.plan.value)

    @strawberry.field(description="Prepaid balance in USD.")
    def balance(self) -> Decimal:
        return self.row.balance

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at


@strawberry.type(description="An API key; its secret is never stored and shown only when created.")
class ApiKey:
    row: strawberry.Private[db.ApiKey]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.row.id)

    @strawberry.field
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="The first characters of the secret, to tell keys apart.")
    def prefix(self) -> str:
        return self.row.prefix

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at

    @strawberry.field(description="When a request last used the key (written every few seconds); null: never.")
    def last_used_at(self) -> datetime | None:
        return self.row.last_used_at

    @strawberry.field
    def revoked_at(self) -> datetime | None:
        return self.row.revoked_at

    @strawberry.field
    def revoked(self) -> bool:
        return self.row.revoked_at is not None


@strawberry.type
class CreatedApiKey:
    key: ApiKey
    secret: str = strawberry.field(description="The API key itself: shown this once, store it now.")


@strawberry.type
class CreatedAccount:
    account: Account
    key: ApiKey
    secret: str = strawberry.field(description="The account's first API key: shown this once.")
