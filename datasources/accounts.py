"""Accounts and API keys. A key's secret is shown once; only its SHA-256 and a display prefix are kept."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from datasources import ledger
from datasources.db.models import Account, ApiKey, Plan
from datasources.errors import BadInput, NotFound
from datasources.events import Broker, KeyChanged
from datasources.money import parse_amount
from datasources.notices import announce

KEY_PREFIX = "cxm_"
DISPLAY_PREFIX_LENGTH = 12


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str


def parse_plan(value: str) -> Plan:
    try:
        return Plan(value.strip().lower())
    except ValueError:
        valid = ", ".join(p.value for p in Plan)
        raise BadInput(f"unknown plan {value!r}; valid plans: {valid}") from None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_account(
    session: AsyncSession,
    plan: Plan,
    credit: Decimal = Decimal(0),
    name: str = "",
    broker: Broker | None = None,
    email: str | None = None,
) -> tuple[Account, IssuedKey]:
    credit = parse_amount(credit, "credit", allow_zero=True)
    account = Account(name=name, plan=plan, balance=Decimal(0), email=check_email(email) if email else None)
    session.add(account)
    await session.flush()
    if credit > 0:
        await ledger.credit(session, account.id, credit, "initial credit")
    issued = await create_key(session, account.id, name="default", broker=broker)
    await session.refresh(account)
    return account, issued


async def create_key(session: AsyncSession, account_id: int, name: str = "", broker: Broker | None = None) -> IssuedKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id="key_" + secrets.token_hex(8),
        account_id=account_id,
        name=name,
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        secret_hash=hash_secret(secret),
    )
    session.add(key)
    await session.flush()
    plan = (await session.execute(select(Account.plan).where(Account.id == account_id))).scalar_one()
    await announce(session, [KeyChanged(account_id, key.id, Plan(plan).value, key.secret_hash)], broker)
    return IssuedKey(key=key, secret=secret)


async def revoke_key(
    session: AsyncSession, key_id: str, account_id: int | None = None, broker: Broker | None = None
) -> ApiKey:
    """Revoke a key; with `account_id`, only that account's own key. With a broker, every process hears
    of it once this commits (without one, within the key table's check interval)."""
    key = await session.get(ApiKey, key_id)
    if key is None or (account_id is not None and key.account_id != account_id):
        raise NotFound(f"API key {key_id!r} not found")
    if key.revoked_at is None:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=datetime.now(UTC)))
        await session.refresh(key)
        plan = (await session.execute(select(Account.plan).where(Account.id == key.account_id))).scalar_one()
        await announce(
            session, [KeyChanged(key.account_id, key.id, Plan(plan).value, key.secret_hash, revoked=True)], broker
        )
    return key


async def key_for_secret(session: AsyncSession, secret: str) -> ApiKey | None:
    """The live (not revoked) key with this secret, or None."""
    if not secret.startswith(KEY_PREFIX):
        return None
    return (
        await session.execute(
            select(ApiKey).where(ApiKey.secret_hash == hash_secret(secret), ApiKey.revoked_at.is_(None))
        )
    ).scalar_one_or_none()


async def list_keys(session: AsyncSession, account_id: int) -> list[ApiKey]:
    rows = await session.execute(select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.created_at))
    return list(rows.scalars())


async def get_account(session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id, populate_existing=True)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    return account


async def set_plan(session: AsyncSession, account_id: int, plan: Plan, broker: Broker | None = None) -> Account:
    account = await get_account(session, account_id)
    await session.execute(update(Account).where(Account.id == account_id).values(plan=plan))
    await session.refresh(account)
    if broker is not None:
        await broker.publish(session, [KeyChanged(account_id, None, plan.value)])
    return account


def check_email(value: str) -> str:
    """An e-mail address, trimmed and checked for the obvious (one @, a dot in the domain, no spaces)."""
    address = value.strip()
    local, _, domain = address.rpartition("@")
    if (
        not local
        or "." not in domain.strip(".")
        or any(c.isspace() for c in address)
        or len(address) > 254
        or any(c in address for c in '<>,;"')
    ):
        raise BadInput(f"{value!r} is not an e-mail address", field="email")
    return address


async def set_email(session: AsyncSession, account_id: int, email: str | None) -> Account:
    """Where the account's e-mails go (None: nowhere)."""
    await get_account(session, account_id)
    address = check_email(email) if email else None
    await session.execute(update(Account).where(Account.id == account_id).values(email=address))
    return await get_account(session, account_id)


async def set_low_balance(session: AsyncSession, account_id: int, threshold: Decimal | None) -> Account:
    """Alert once (webhook `balance.low`, e-mail, `budgetAlert`) when the balance falls below `threshold`."""
    await get_account(session, account_id)
    await session.execute(
        update(Account).where(Account.id == account_id).values(low_balance=threshold, low_balance_alerted=False)
    )
    return await get_account(session, account_id)
