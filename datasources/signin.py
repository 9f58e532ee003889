"""Signing in to the console without a password: a one-time link by e-mail, then a browser session.

A link is asked for with an e-mail address. Every request is counted, per address and per e-mail, over the
last hour (in the database, so every process sees the same counts), whether or not the address is an
account's: the answer never tells which addresses exist. For an account's address, a token is made and
e-mailed through the outbox: `<random>.<signature>`, the signature an HMAC under the service's secret key,
and only the random part's SHA-256 is stored. A link works once and until it expires; using it marks it
used in the same statement that checks it, so two clicks on two processes cannot both sign in.

A session is a random cookie value, stored as its SHA-256, with the device it came from (the browser's
name and the client's network, as a digest). Signing in from a device the account has not used before,
once it has used some other, e-mails the account ("new device sign-in").
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from datasources import notices
from datasources.accounts import check_email, hash_secret
from datasources.db.models import Account, SignInRequest, WebSession
from datasources.errors import QuotaExceeded, Unauthenticated
from datasources.secrets import Sealer

LINK_PURPOSE = "sign-in link"
WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class SignInPolicy:
    link_minutes: int = 15  # SIGN_IN_LINK_MINUTES: how long a link works
    session_days: int = 14  # SESSION_DAYS: how long a browser stays signed in
    per_email: int = 5  # SIGN_IN_PER_EMAIL: links asked for one e-mail per hour
    per_address: int = 20  # SIGN_IN_PER_ADDRESS: links asked from one client address per hour


@dataclass(frozen=True)
class Device:
    browser: str
    network: str

    @property
    def digest(self) -> str:
        return hash_secret(f"{self.browser}\x00{self.network}")


@dataclass(frozen=True)
class Started:
    """A new browser session: the cookie value (shown once, to the browser) and its row."""

    token: str
    session: WebSession
    new_device: bool


BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("HeadlessChrome", "Headless Chrome"),
    ("Chrome/", "Chrome"),
    ("Firefox/", "Firefox"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
)
PLATFORMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def _first(agent: str, table: tuple[tuple[str, str], ...], default: str) -> str:
    return next((name for token, name in table if token in agent), default)


def browser_name(user_agent: str) -> str:
    """A readable name for a User-Agent: the browser family and the platform, without version noise."""
    family, platform = _first(user_agent, BROWSERS, "a browser"), _first(user_agent, PLATFORMS, "")
    return f"{family} on {platform}" if platform else family


def network_of(client_ip: str) -> str:
    """The client's network: its /24 (IPv4) or /48 (IPv6), so that a new address nearby is the same device."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip[:64]
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def device_of(user_agent: str, client_ip: str) -> Device:
    return Device(browser_name(user_agent)[:200], network_of(client_ip))


async def _asked(
    session: AsyncSession, column: InstrumentedAttribute[str], value: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many links were asked for `value` since `since`, and when the first of them was."""
    query = select(func.count(), func.min(SignInRequest.created_at)).where(
        column == value, SignInRequest.created_at >= since
    )
    count, first = (await session.execute(query)).one()
    return int(count), first


async def request_link(
    session: AsyncSession,
    sealer: Sealer,
    email: str,
    client_ip: str,
    base_url: str,
    policy: SignInPolicy,
    now: datetime | None = None,
) -> bool:
    """Counts the request and, for an account's address, queues the e-mail with its link (True then).
    Refuses (`QuotaExceeded`) past the hourly limits of the e-mail or the client address."""
    now = now or datetime.now(UTC)
    address = check_email(email).lower()
    since = now - WINDOW
    for column, value, limit, what in (
        (SignInRequest.email, address, policy.per_email, "this e-mail"),
        (SignInRequest.client_ip, client_ip, policy.per_address, "this address"),
    ):
        count, first = await _asked(session, column, value, since)
        if count >= limit:
            reset = (first or now) + WINDOW
            retry = max(1, int((reset - now).total_seconds()))
            raise QuotaExceeded(
                f"too many sign-in links asked for {what}: try again in {retry // 60 + 1} minutes",
                limit,
                retry,
                int(reset.timestamp()),
            )
    account_id = (
        await session.execute(
            select(Account.id).where(func.lower(Account.email) == address).order_by(Account.id).limit(1)
        )
    ).scalar_one_or_none()
    row = SignInRequest(
        email=address,
        client_ip=client_ip[:64],
        account_id=account_id,
        created_at=now,
        expires_at=now + timedelta(minutes=policy.link_minutes),
    )
    if account_id is not None:
        token = secrets.token_urlsafe(32)
        row.token_hash = hash_secret(token)
        link = f"{base_url.rstrip('/')}/signin/verify?token={token}.{sealer.sign(token, LINK_PURPOSE)}"
        await notices.email(
            session, account_id, "sign_in_link", {"link": link, "expires_minutes": str(policy.link_minutes)}
        )
    session.add(row)
    await session.flush()
    return account_id is not None


async def sign_in(
    session: AsyncSession,
    sealer: Sealer,
    link_token: str,
    device: Device,
    policy: SignInPolicy,
    now: datetime | None = None,
) -> Started:
    """Uses a link (once) and starts a browser session for its account."""
    now = now or datetime.now(UTC)
    token, _, signature = link_token.strip().rpartition(".")
    if not token or not sealer.verify(token, signature, LINK_PURPOSE):
        raise Unauthenticated("this sign-in link is not valid: ask for a new one")
    used = await session.execute(
        update(SignInRequest)
        .where(
            SignInRequest.token_hash == hash_secret(token),
            SignInRequest.used_at.is_(None),
            SignInRequest.expires_at > now,
        )
        .values(used_at=now)
        .returning(SignInRequest.account_id)
    )
    account_id = used.scalar_one_or_none()
    if account_id is None:
        raise Unauthenticated("this sign-in link has expired or was used already: ask for a new one")
    devices = set(
        (await session.execute(select(WebSession.device).where(WebSession.account_id == account_id))).scalars()
    )
    cookie = secrets.token_urlsafe(32)
    started = WebSession(
        id="ses_" + secrets.token_hex(8),
        account_id=account_id,
        token_hash=hash_secret(cookie),
        device=device.digest,
        browser=device.browser,
        network=device.network,
        created_at=now,
        expires_at=now + timedelta(days=policy.session_days),
    )
    session.add(started)
    new_device = bool(devices) and device.digest not in devices
    if new_device:
        at = now.astimezone(UTC).isoformat().replace("+00:00", "Z")
        await notices.email(
            session, account_id, "new_device", {"browser": device.browser, "network": device.network, "at": at}
        )
    await session.flush()
    return Started(cookie, started, new_device)


async def current(session: AsyncSession, cookie: str, now: datetime | None = None) -> WebSession | None:
    """The live session a cookie value stands for, if any."""
    now = now or datetime.now(UTC)
    query = select(WebSession).where(
        WebSession.token_hash == hash_secret(cookie), WebSession.ended_at.is_(None), WebSession.expires_at > now
    )
    return (await session.execute(query)).scalar_one_or_none()


async def sign_out(session: AsyncSession, cookie: str, now: datetime | None = None) -> None:
    await session.execute(
        update(WebSession)
        .where(WebSession.token_hash == hash_secret(cookie), WebSession.ended_at.is_(None))
        .values(ended_at=now or datetime.now(UTC))
    )


async def sign_out_everywhere(session: AsyncSession, account_id: int, now: datetime | None = None) -> int:
    """Ends every browser session of the account (after a new-device e-mail the owner did not expect)."""
    ended = await session.execute(
        update(WebSession)
        .where(WebSession.account_id == account_id, WebSession.ended_at.is_(None))
        .values(ended_at=now or datetime.now(UTC))
        .returning(WebSession.id)
    )
    return len(ended.all())
