"""Top-ups paid through Polar: a checkout for an amount, and what Polar's order webhooks do to the ledger.

`order.paid` credits the account named in the order's metadata once: the webhook id is recorded
(`inbound_webhooks`, a replay does nothing) and the credit's idempotency key is the order id (a second
webhook for the same order credits nothing). A credit first pays what an earlier refund left owed.
`order.refunded` takes what the order refunded so far, beyond what was taken for it before, from what the
balance has available, and records the rest as owed: routing on platform keys waits until it is paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from datasources import billing, ledger, polar
from datasources.db.models import Account, BalanceTransaction, InboundWebhook
from datasources.errors import BadInput, NotFound, Unavailable
from datasources.events import Broker
from datasources.polar import OrderEvent

SOURCE = "polar"
log = logging.getLogger("pricegraph.topups")


@dataclass(frozen=True)
class Applied:
    action: str  # credited, refunded, replayed, ignored
    amount: Decimal = Decimal(0)
    owed: Decimal = Decimal(0)


async def checkout(
    session: AsyncSession, config: polar.PolarConfig | None, account_id: int, amount: Decimal
) -> polar.Checkout:
    """A Polar checkout for a top-up of `amount` USD to the account (its e-mail prefilled)."""
    if config is None or not config.access_token:
        raise Unavailable("top-ups are not available: payments are not configured on this server")
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound(f"account {account_id} not found")
    try:
        return await polar.create_checkout(config, amount, account_id, customer_email=account.email)
    except ValueError as exc:
        raise BadInput(str(exc).removeprefix("amount: "), field="amount") from None
    except polar.PolarError as exc:
        log.warning("creating a Polar checkout failed: %s", exc)
        raise Unavailable("the payment provider did not answer; try again in a moment") from None


async def _first_time(session: AsyncSession, webhook_id: str, event_type: str) -> bool:
    try:
        async with session.begin_nested():
            session.add(InboundWebhook(source=SOURCE, webhook_id=webhook_id, event_type=event_type))
            await session.flush()
    except IntegrityError:
        return False
    return True


async def apply(session: AsyncSession, event: OrderEvent, broker: Broker | None = None) -> Applied:
    """What a verified order webhook does, in the caller's transaction."""
    if not await _first_time(session, event.webhook_id, event.type):
        return Applied("replayed")
    if event.account_id is None or await session.get(Account, event.account_id) is None:
        return Applied("ignored")
    if event.type == "order.paid":
        if event.amount <= 0:
            return Applied("ignored")
        credited = await billing.credit(
            session,
            event.account_id,
            event.amount,
            f"{SOURCE}:order:{event.order_id}",
            f"top-up through Polar (order {event.order_id})",
            broker,
        )
        if credited.replayed:
            return Applied("replayed")
        await ledger.pay_owed(session, event.account_id)
        return Applied("credited", event.amount)
    before = await _refunded_before(session, event.account_id, event.order_id)
    due = event.refunded - before
    if due <= 0:
        return Applied("replayed")
    done = await ledger.refund(
        session,
        event.account_id,
        due,
        f"refund of Polar order {event.order_id}",
        f"{SOURCE}:refund:{event.order_id}:{event.refunded}",
    )
    if done is None:
        return Applied("replayed")
    return Applied("refunded", done.taken, done.owed)


async def _refunded_before(session: AsyncSession, account_id: int, order_id: str) -> Decimal:
    """The order's refunded total already applied (the highest total in its refund rows' keys)."""
    prefix = f"{SOURCE}:refund:{order_id}:"
    keys = (
        await session.execute(
            select(BalanceTransaction.idempotency_key).where(
                BalanceTransaction.account_id == account_id,
                BalanceTransaction.idempotency_key.startswith(prefix, autoescape=True),
            )
        )
    ).scalars()
    return max((Decimal(k[len(prefix) :]) for k in keys if k), default=Decimal(0))
