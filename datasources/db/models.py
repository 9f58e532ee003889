"""Tables. Money columns are NUMERIC and map to Decimal; timestamps are timezone-aware UTC."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

from datasources.money import price

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class MoneyType(TypeDecorator[Decimal]):
    """USD per 1M tokens and USD amounts, exact on every backend, read back without trailing zeros.

    PostgreSQL stores NUMERIC(20, 10). SQLite has no exact decimal arithmetic (its NUMERIC computes in
    floating point), so there the value is an integer count of 1e-10 USD: sums, differences and the
    guarded comparisons of the ledger stay exact inside SQL.
    """

    impl = Numeric(20, 10, asdecimal=True)
    cache_ok = True
    SCALE = 10

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Decimal | int | None:
        if value is None:
            return None
        value = price(Decimal(value))
        return int(value.scaleb(self.SCALE)) if dialect.name == "sqlite" else value

    def process_result_value(self, value: object, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return price(Decimal(int(str(value))).scaleb(-self.SCALE))
        return price(Decimal(str(value)))


Money = MoneyType()
# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for append-only tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on every backend (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OfferStatus(enum.StrEnum):
    LIVE = "live"
    STALE = "stale"
    UNAVAILABLE = "unavailable"


class Plan(enum.StrEnum):
    FREE = "free"
    DEVELOPER = "developer"
    TEAM = "team"
    ENTERPRISE = "enterprise"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    signup_url: Mapped[str | None] = mapped_column(String(256))
    base_url: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    offers: Mapped[list[Offer]] = relationship(back_populates="provider", lazy="raise")


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    family: Mapped[str] = mapped_column(String(64), index=True)
    params_b: Mapped[Decimal | None] = mapped_column(Numeric(12, 3))
    context_window: Mapped[int | None] = mapped_column(Integer)
    is_benchmark: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    offers: Mapped[list[Offer]] = relationship(back_populates="model", lazy="raise")


class PriceDimensions:
    """A price's dimensions beyond input and output (datasources/pricing.py); None: not priced apart.
    Per-token rates are USD per 1M tokens; `per_request` and `per_search` are USD each; `tiers` is the
    context tiers' JSON (pricing.tiers_to_json); `price_kind` is priced, free or unpriced."""

    cache_read_per_1m: Mapped[Decimal | None] = mapped_column(Money)
    cache_write_per_1m: Mapped[Decimal | None] = mapped_column(Money)
    cache_write_1h_per_1m: Mapped[Decimal | None] = mapped_column(Money)
    reasoning_per_1m: Mapped[Decimal | None] = mapped_column(Money)
    per_request: Mapped[Decimal | None] = mapped_column(Money)
    per_search: Mapped[Decimal | None] = mapped_column(Money)
    tiers: Mapped[str | None] = mapped_column(Text)
    price_kind: Mapped[str] = mapped_column(String(16), default="priced", server_default="priced")


class Offer(PriceDimensions, Base):
    """One model at one provider, as one variant (fp8 build, turbo tier, region...)."""

    __tablename__ = "offers"
    __table_args__ = (UniqueConstraint("provider_id", "model_id", "variant", name="uq_offers_identity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    variant: Mapped[str] = mapped_column(String(64), default="")
    provider_model_id: Mapped[str] = mapped_column(String(256))
    context_window: Mapped[int | None] = mapped_column(Integer)
    max_output_tokens: Mapped[int | None] = mapped_column(Integer)
    supports_vision: Mapped[bool] = mapped_column(Boolean, default=False)
    supports_tools: Mapped[bool] = mapped_column(Boolean, default=False)
    input_per_1m: Mapped[Decimal] = mapped_column(Money)
    output_per_1m: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[OfferStatus] = mapped_column(_enum(OfferStatus, "offer_status"), default=OfferStatus.LIVE)
    source: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    provider: Mapped[Provider] = relationship(back_populates="offers", lazy="raise")
    model: Mapped[Model] = relationship(back_populates="offers", lazy="raise")


class PriceTick(PriceDimensions, Base):
    """An append-only observation of an offer's price; only changes are recorded."""

    __tablename__ = "price_ticks"
    __table_args__ = (Index("ix_price_ticks_offer_observed", "offer_id", "observed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"))
    input_per_1m: Mapped[Decimal] = mapped_column(Money)
    output_per_1m: Mapped[Decimal] = mapped_column(Money)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source: Mapped[str] = mapped_column(String(64))


class CandleRollup(Base):
    """One offer's candle over one UTC hour ('1h') or day ('1d') as measured by one dimension
    (candles.Dimension: blended, input, output, cache_read), kept in the transaction that writes its ticks
    (datasources/rollups.py). Prices are the dimension's measure: blended stores input + output (halved
    when read). open and close are the first and last tick by (observed_at, id), whose keys are kept so
    a later tick merges in exactly, in the middle of the bucket or at either end."""

    __tablename__ = "candle_rollups"

    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True)
    period: Mapped[str] = mapped_column(String(2), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    ticks: Mapped[int] = mapped_column(Integer)
    open: Mapped[Decimal] = mapped_column(Money)
    high: Mapped[Decimal] = mapped_column(Money)
    low: Mapped[Decimal] = mapped_column(Money)
    close: Mapped[Decimal] = mapped_column(Money)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_id: Mapped[int] = mapped_column(BigId)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_id: Mapped[int] = mapped_column(BigId)


class OfferObservation(PriceDimensions, Base):
    """The latest price each source gave for an offer. The offer's own price is the one of the source
    that comes first in precedence (datasources/catalog/precedence.py); the others stay here, to compare."""

    __tablename__ = "offer_observations"

    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    input_per_1m: Mapped[Decimal] = mapped_column(Money)
    output_per_1m: Mapped[Decimal] = mapped_column(Money)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="balance_non_negative"),
        CheckConstraint("held >= 0 AND held <= balance", name="held_within_balance"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    plan: Mapped[Plan] = mapped_column(_enum(Plan, "plan"), default=Plan.FREE)
    balance: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    # Reserved for requests in flight: what they may cost at most. Available = balance - held.
    held: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    email: Mapped[str | None] = mapped_column(String(254))  # where account and security e-mails go
    # Below this balance, one `balance.low` alert (until a credit lifts the balance above it again).
    low_balance: Mapped[Decimal | None] = mapped_column(Money)
    low_balance_alerted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # What a refund took beyond the balance: routing on platform keys waits until it is paid.
    owed: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")


class ApiKey(Base):
    """Only a SHA-256 of the secret and a short display prefix are stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UsageState(enum.StrEnum):
    PENDING = "pending"
    SETTLED = "settled"
    RECOVERED = "recovered"


class ServerInstance(Base):
    """A running server process, alive while it renews `expires_at`; its leases live as long."""

    __tablename__ = "server_instances"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CreditLease(Base):
    """Prepaid balance an instance took from an account (it counts in `accounts.held`) to place holds on
    in memory; what is not charged goes back to the account when the lease is returned or expires."""

    __tablename__ = "credit_leases"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_non_negative"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[str] = mapped_column(String(32), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UsageRecord(Base):
    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_account_created", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"), index=True)
    model_slug: Mapped[str] = mapped_column(String(128))
    provider_slug: Mapped[str | None] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(128))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)  # every prompt token, cached included
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)  # reasoning included
    cache_read_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    # The cost by part (pricing.Cost); they add up to `cost`.
    cost_input: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    cost_cache_read: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    cost_cache_write: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    cost_output: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    cost_reasoning: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    cost_request: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    cost_search: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[int] = mapped_column(Integer)
    key_source: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    variant: Mapped[str | None] = mapped_column(String(64))
    # True when the upstream reported no usage and the tokens were counted here.
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    # pending: written before the answer is released, while the request is in flight; settled: its real
    # cost taken; recovered: its process died first, so the recovery settled it at what it held.
    state: Mapped[str] = mapped_column(String(16), default=UsageState.SETTLED, server_default="settled", index=True)
    held: Mapped[Decimal] = mapped_column(Money, default=Decimal(0), server_default="0")
    lease_id: Mapped[int | None] = mapped_column(BigId)
    instance_id: Mapped[str | None] = mapped_column(String(32))


class BalanceTransaction(Base):
    """The ledger: every change to an account balance is one row; amount is signed."""

    __tablename__ = "balance_transactions"
    __table_args__ = (
        Index("ix_balance_transactions_account_created", "account_id", "created_at"),
        UniqueConstraint("account_id", "idempotency_key", name="uq_balance_transactions_idempotency"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money)
    balance_after: Mapped[Decimal] = mapped_column(Money)
    description: Mapped[str] = mapped_column(String(256), default="")
    usage_record_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("usage_records.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))


class RequestCounter(Base):
    """Requests per subject (an account, or a keyless client's address) per window bucket."""

    __tablename__ = "request_counters"

    subject: Mapped[str] = mapped_column(String(96), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    requests: Mapped[int] = mapped_column("count", Integer, default=0)


class PriceSource(Base):
    """A price source the server polls, and how its last polls went (one row per source name)."""

    __tablename__ = "price_sources"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(1000))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    offers: Mapped[int] = mapped_column(Integer, default=0)


class Budget(Base):
    """A monthly spend cap on an account (`scope` "account") or one of its keys (`scope` the key id), with
    alert thresholds in percent. `spent` and `held` are for `period` (a UTC month, "YYYY-MM"); the first
    lease taken in a new month starts it afresh. Leases (`budget_leases`) count in `held`:
    available = cap - spent - held."""

    __tablename__ = "budgets"
    __table_args__ = (
        UniqueConstraint("account_id", "scope", name="uq_budgets_scope"),
        CheckConstraint("held >= 0", name="held_non_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(32))
    monthly_cap: Mapped[Decimal] = mapped_column(Money)
    thresholds: Mapped[str] = mapped_column(String(64), default="50,80,100")
    period: Mapped[str] = mapped_column(String(7))
    spent: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    held: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    alerted: Mapped[int] = mapped_column(Integer, default=0)  # the highest threshold alerted in `period`
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BudgetLease(Base):
    """Budget an instance took to hold requests against in memory (it counts in `budgets.held`)."""

    __tablename__ = "budget_leases"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_non_negative"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("budgets.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[str] = mapped_column(String(32), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookEndpoint(Base):
    """Where an account wants events POSTed. The signing secret is kept sealed (datasources/secrets.py)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of event types; empty: every type
    models: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of model slugs; empty: any
    providers: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of provider slugs; empty: any
    min_change_pct: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    secret_sealed: Mapped[str] = mapped_column(String(256))
    secret_hint: Mapped[str] = mapped_column(String(16))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class OutboxMessage(Base):
    """An outgoing message (a webhook delivery, an e-mail), written in the transaction of the fact that
    causes it; workers deliver it (datasources/outbox.py)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))  # webhook | email
    topic: Mapped[str] = mapped_column(String(32))  # the event type, or the e-mail's kind
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[str | None] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    recipient: Mapped[str | None] = mapped_column(String(254))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeliveryAttempt(Base):
    """One attempt at delivering an outbox message: the delivery log."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[str | None] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InboundWebhook(Base):
    """A webhook received from a payment provider, by its id: a replay is recognised and does nothing."""

    __tablename__ = "inbound_webhooks"

    source: Mapped[str] = mapped_column(String(16), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SignInRequest(Base):
    """A sign-in link asked for: by address and e-mail (the rate limits count these), and, when the e-mail is
    an account's, the link's token as its SHA-256, until it expires or is used once."""

    __tablename__ = "sign_in_requests"
    __table_args__ = (
        Index("ix_sign_in_requests_email_created", "email", "created_at"),
        Index("ix_sign_in_requests_client_created", "client_ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    client_ip: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A signed-in browser: its cookie's SHA-256, the device it came from (a digest of its browser and
    network, to tell a new device), and when it ends."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    device: Mapped[str] = mapped_column(String(64))
    browser: Mapped[str] = mapped_column(String(200), default="")
    network: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
