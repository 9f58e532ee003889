"""Account and security e-mails end to end: a running service with SMTP_URL pointing at a real local SMTP
server (aiosmtpd) sends, from its outbox, the e-mails for a key created and revoked, a top-up received, a
balance low and a budget threshold crossed, and a webhook endpoint disabled; each arrives with a text and
an HTML part, and none carries a secret. Without SMTP_URL the same e-mails wait in the outbox."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from datasources import accounts, billing, webhooks
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import OutboxMessage, Plan
from datasources.events import AlertRaised
from datasources.mail import SmtpConfig
from datasources.notices import announce
from datasources.secrets import Sealer
from server import Settings, create_app
from tests.conftest import Databases, LiveServer, free_port, wait_until
from tests.webhook_receiver import Answer, Receiver

SECRET_KEY = "mail-tests-secret-key"


@dataclass
class Inbox:
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.messages.append(parsed)
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(m["subject"]) for m in self.messages]


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def team_account(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, str, str]:
    async with sessions() as session, session.begin():
        account, issued = await accounts.create_account(session, Plan.TEAM, Decimal(0), email="owner@example.test")
    return account.id, issued.key.id, issued.secret


def test_each_account_email_arrives_without_a_secret(tmp_path: Path) -> None:
    url = run(Databases("sqlite", tmp_path).migrated())
    sessions = sessionmaker(create_engine(url))
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    secrets_seen: list[str] = []
    try:
        account_id, _, key = run(team_account(sessions))
        secrets_seen.append(key)
        settings = Settings(
            database_url=url,
            migrate_on_start=False,
            seed_on_start=False,
            secret_key=SECRET_KEY,
            smtp=SmtpConfig.parse(f"smtp://127.0.0.1:{port}?from=alerts@pricegraph.test"),
            webhook_allow_hosts=frozenset({"127.0.0.1"}),
            outbox_retry=(0.05,),
            outbox_poll_seconds=0.05,
            webhook_disable_after=0.01,
        )
        with LiveServer(create_app(settings)) as server, Receiver() as receiver:
            wait_until(lambda: len(inbox.messages) == 1, what="the first key's e-mail")  # from before the start
            api = httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"})
            created = api.post(
                "/graphql", json={"query": 'mutation { createApiKey(name: "deploy") { key { id prefix } secret } }'}
            ).json()["data"]["createApiKey"]
            secrets_seen.append(created["secret"])
            api.post("/graphql", json={"query": f'mutation {{ revokeApiKey(id: "{created["key"]["id"]}") {{ id }} }}'})
            run(_credit(sessions, account_id))
            run(_alerts(sessions, account_id))
            receiver.answer(Answer(status=500))
            made = api.post("/v1/webhooks", json={"url": f"{receiver.url}/hook", "events": ["key.created"]})
            secrets_seen.append(made.json()["secret"])
            run(_key(sessions, account_id))  # its webhook fails: the endpoint is disabled and its owner told
            wait_until(lambda: len(inbox.messages) >= 8, timeout=10, what="every e-mail")
            api.close()
    finally:
        smtp.stop()
    subjects = inbox.subjects()
    for needle in ("created", "revoked", "top-up", "low", "budget", "disabled"):
        assert any(needle in s.lower() for s in subjects), (needle, subjects)
    for message in inbox.messages:
        assert message["to"] == "owner@example.test" and "alerts@pricegraph.test" in str(message["from"])
        text, html = parts(message)
        raw = message.as_string()
        for secret in secrets_seen:
            assert secret not in raw
        assert text and html
    revoked = next(m for m in inbox.messages if "revoked" in str(m["subject"]).lower())
    assert created["key"]["prefix"] in parts(revoked)[0]


async def _credit(sessions: async_sessionmaker[AsyncSession], account_id: int) -> None:
    async with sessions() as session, session.begin():
        await billing.credit(session, account_id, Decimal("25"), "top-up-mail", "a top-up")


async def _key(sessions: async_sessionmaker[AsyncSession], account_id: int) -> None:
    async with sessions() as session, session.begin():
        await accounts.create_key(session, account_id, "after the webhook")


async def _alerts(sessions: async_sessionmaker[AsyncSession], account_id: int) -> None:
    """The alerts the recorder raises when it settles usage, announced the way it announces them."""
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        await announce(
            session,
            [
                AlertRaised(account_id, "balance.low", now, balance=Decimal("1.5"), threshold=Decimal("2")),
                AlertRaised(
                    account_id, "budget.threshold", now, percent=80, spent=Decimal(8), cap=Decimal(10), period="2026-12"
                ),
            ],
            None,
        )


def test_without_smtp_the_emails_wait_in_the_outbox(tmp_path: Path) -> None:
    url = run(Databases("sqlite", tmp_path).migrated())
    sessions = sessionmaker(create_engine(url))
    settings = Settings(database_url=url, migrate_on_start=False, seed_on_start=False, secret_key=SECRET_KEY)
    with LiveServer(create_app(settings)):
        run(team_account(sessions))
    rows = run(_outbox(sessions))
    assert [(m.channel, m.topic, m.state, m.attempts) for m in rows] == [("email", "key_created", "pending", 0)]


async def _outbox(sessions: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with sessions() as session:
        return list((await session.execute(select(OutboxMessage))).scalars())


def test_the_sealed_secret_is_not_in_the_database_in_clear(tmp_path: Path) -> None:
    url = run(Databases("sqlite", tmp_path).migrated())
    sessions = sessionmaker(create_engine(url))

    async def scenario() -> tuple[str, bytes]:
        account_id, _, _ = await team_account(sessions)
        async with sessions() as session, session.begin():
            created = await webhooks.create(
                session, account_id, "https://hooks.example.test/", Sealer.from_passphrase(SECRET_KEY)
            )
        return created.secret, Path(url.database or "").read_bytes()

    secret, stored = run(scenario())
    assert secret.encode() not in stored and secret[6:].encode() not in stored
