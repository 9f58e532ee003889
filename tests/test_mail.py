"""Account e-mail against a real SMTP server (aiosmtpd on 127.0.0.1): rendering, the secret guard, SMTP_URL
parsing, AUTH, STARTTLS and implicit TLS, with self-signed certificates made at test time."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from datasources.mail import DEFAULT_SENDER, FIELDS, Kind, MailError, SmtpConfig, render, send

USER = "mailer"
PASSWORD = "s3cr3t/p@ss:word"  # has characters that must be percent-encoded in a URL
ENCODED_PASSWORD = "s3cr3t%2Fp%40ss%3Aword"
TO = "owner@example.com"
SENDER = "Pricegraph <alerts@example.com>"
PREFIX = "cxm_AbCdEfGh"
FULL_KEY = PREFIX + "x" * 35  # the shape of a real key: cxm_ and 43 token characters

SAMPLES: dict[Kind, dict[str, object]] = {
    Kind.KEY_CREATED: {"key_prefix": PREFIX, "key_name": "ci runner", "at": "2025-03-01T12:00:00Z"},
    Kind.KEY_REVOKED: {"key_prefix": PREFIX, "key_name": "ci runner", "at": "2025-03-02T08:30:00Z"},
    Kind.NEW_DEVICE: {
        "browser": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        "network": "203.0.113.7",
        "at": "2025-03-01T12:00:00Z",
    },
    Kind.BALANCE_LOW: {"balance": "4.20", "threshold": "5.00"},
    Kind.BUDGET_THRESHOLD: {
        "scope": f"key {PREFIX}",
        "percent": 80,
        "spent": "40.000001",
        "cap": "50",
        "period": "2025-03",
    },
    Kind.WEBHOOK_DISABLED: {
        "url": "https://hooks.example.com/risk-alerts-production-eu-west",
        "reason": "HTTP 500 x 20",
        "since": "2025-03-01T00:00:00Z",
    },
    Kind.TOPUP_RECEIVED: {"amount": "25.00", "balance": "29.20", "order_id": "ord_123"},
    Kind.SIGN_IN_LINK: {"link": "https://pricegraph.example/sign-in?token=abc123", "expires_minutes": 15},
}

SUBJECTS = {
    Kind.KEY_CREATED: "Pricegraph: new API key created",
    Kind.KEY_REVOKED: "Pricegraph: API key revoked",
    Kind.NEW_DEVICE: "Pricegraph: new sign-in to your account",
    Kind.BALANCE_LOW: "Pricegraph: your balance is low",
    Kind.BUDGET_THRESHOLD: "Pricegraph: 80% of your 2025-03 budget used",
    Kind.WEBHOOK_DISABLED: "Pricegraph: webhook disabled",
    Kind.TOPUP_RECEIVED: "Pricegraph: top-up received",
    Kind.SIGN_IN_LINK: "Pricegraph: your sign-in link",
}

# What each kind must show in both parts (money with its "$").
SHOWN = {
    Kind.KEY_CREATED: [PREFIX, "ci runner"],
    Kind.KEY_REVOKED: [PREFIX, "ci runner"],
    Kind.NEW_DEVICE: ["Firefox/128.0", "203.0.113.7"],
    Kind.BALANCE_LOW: ["$4.20", "$5.00"],
    Kind.BUDGET_THRESHOLD: [PREFIX, "$40.000001", "$50", "80%", "2025-03"],
    Kind.WEBHOOK_DISABLED: ["https://hooks.example.com/risk-alerts-production-eu-west", "HTTP 500 x 20"],
    Kind.TOPUP_RECEIVED: ["$25.00", "$29.20", "ord_123"],
    Kind.SIGN_IN_LINK: ["https://pricegraph.example/sign-in?token=abc123", "15 minutes"],
}

FULL_SECRET = re.compile(r"cxm_[A-Za-z0-9_-]{20,}")


# ---- a real SMTP server -------------------------------------------------------------------------------


@dataclass
class Received:
    envelope: Envelope
    tls: bool
    login: bytes | None


@dataclass
class Collector:
    """An aiosmtpd handler that keeps every message it accepts (before it answers 250)."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        transport = server.transport
        tls = session.ssl is not None or (transport is not None and transport.get_extra_info("ssl_object") is not None)
        login = session.auth_data if session.authenticated and isinstance(session.auth_data, bytes) else None
        self.received.append(Received(envelope, tls, login))
        return "250 OK"

    def message(self) -> EmailMessage:
        assert len(self.received) == 1
        content = self.received[0].envelope.original_content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


Server = Callable[..., tuple[Collector, int]]


@pytest.fixture
def smtp_server() -> Iterator[Server]:
    """Starts aiosmtpd on 127.0.0.1 and a free port with the given SMTP options; stops it after the test."""
    controllers: list[Controller] = []

    def start(**options: Any) -> tuple[Collector, int]:
        collector = Collector()
        port = free_port()
        controller = Controller(collector, hostname="127.0.0.1", port=port, server_hostname="localhost", **options)
        controller.start()
        controllers.append(controller)
        return collector, port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="module")
def server_tls() -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 from a throwaway CA that no client trusts."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def sample(kind: Kind) -> EmailMessage:
    return render(kind, TO, SAMPLES[kind], SENDER)


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    text, markup = plain.get_content(), rich.get_content()
    assert isinstance(text, str) and isinstance(markup, str)
    return text, markup


# ---- rendering, delivered ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind), ids=str)
async def test_each_kind_arrives_with_both_parts(smtp_server: Server, kind: Kind) -> None:
    collector, port = smtp_server()
    await send(SmtpConfig.parse(f"smtp://127.0.0.1:{port}", sender=SENDER), sample(kind))

    received = collector.received[0]
    assert received.envelope.rcpt_tos == [TO]
    assert received.envelope.mail_from == "alerts@example.com"
    assert not received.tls
    message = collector.message()
    assert message["Subject"] == SUBJECTS[kind]
    assert message["To"] == TO
    assert message["From"] == SENDER
    assert message["Date"].datetime.tzinfo is not None
    assert re.fullmatch(r"<[^@<>]+@example\.com>", message["Message-ID"])
    text, markup = parts(message)
    for shown in SHOWN[kind]:
        assert shown in text
        assert shown in markup
    assert "Pricegraph" in text and "<html>" in markup
    raw = received.envelope.original_content
    assert isinstance(raw, bytes)
    assert not FULL_SECRET.search(raw.decode("utf-8", "replace"))


def test_every_kind_has_fields_and_a_sample() -> None:
    assert set(FIELDS) == set(Kind) == set(SAMPLES)
    for kind in Kind:
        assert set(FIELDS[kind]) == set(SAMPLES[kind])


async def test_html_part_escapes_values(smtp_server: Server) -> None:
    collector, port = smtp_server()
    data = {**SAMPLES[Kind.KEY_CREATED], "key_name": "<script>alert(1)</script>"}
    await send(SmtpConfig.parse(f"smtp://127.0.0.1:{port}"), render(Kind.KEY_CREATED, TO, data, SENDER))

    text, markup = parts(collector.message())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "<script>" not in markup
    assert "<script>alert(1)</script>" in text


def test_render_accepts_kind_names_and_the_default_sender() -> None:
    message = render("balance_low", TO, SAMPLES[Kind.BALANCE_LOW], DEFAULT_SENDER)
    assert message["From"] == DEFAULT_SENDER
    assert message["Message-ID"].endswith("@localhost>")


def test_budget_scope_account_reads_as_your_account() -> None:
    data = {**SAMPLES[Kind.BUDGET_THRESHOLD], "scope": "account", "percent": "100%"}
    message = render(Kind.BUDGET_THRESHOLD, TO, data, SENDER)
    assert message["Subject"] == "Pricegraph: 100% of your 2025-03 budget used"
    text, _ = parts(message)
    assert "your account has reached 100%" in text


@pytest.mark.parametrize(
    "secret",
    [FULL_KEY, f"Bearer {FULL_KEY}", "whsec_abc", "sk-" + "A" * 40, "key=sk-proj-" + "b" * 30],
    ids=["api-key", "api-key-in-text", "webhook-secret", "provider-key", "provider-key-in-text"],
)
def test_secret_guard_refuses_secrets(secret: str) -> None:
    data = {**SAMPLES[Kind.KEY_CREATED], "key_name": secret}
    with pytest.raises(ValueError, match="looks like a secret") as error:
        render(Kind.KEY_CREATED, TO, data, SENDER)
    assert secret not in str(error.value)


def test_secret_guard_refuses_a_full_key_in_any_field() -> None:
    data = {**SAMPLES[Kind.KEY_REVOKED], "key_prefix": "cxm_" + "Z" * 43}
    with pytest.raises(ValueError, match="key_prefix"):
        render(Kind.KEY_REVOKED, TO, data, SENDER)


def test_secret_guard_allows_display_prefixes_and_words() -> None:
    render(Kind.KEY_CREATED, TO, {**SAMPLES[Kind.KEY_CREATED], "key_name": "task-runner-for-the-nightly-batch"}, SENDER)
    render(Kind.BUDGET_THRESHOLD, TO, SAMPLES[Kind.BUDGET_THRESHOLD], SENDER)


def test_render_refuses_missing_fields_and_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="missing threshold"):
        render(Kind.BALANCE_LOW, TO, {"balance": "1.00"}, SENDER)
    with pytest.raises(ValueError):
        render("password_reset", TO, {}, SENDER)
    with pytest.raises(ValueError, match="http"):
        render(Kind.SIGN_IN_LINK, TO, {"link": "javascript:alert(1)", "expires_minutes": 5}, SENDER)


# ---- SMTP_URL --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.internal", ("relay.internal", 25, None, None, "none", DEFAULT_SENDER, True)),
        ("smtp://relay.internal:2525", ("relay.internal", 2525, None, None, "none", DEFAULT_SENDER, True)),
        ("smtp://relay.internal:25?starttls=1", ("relay.internal", 25, None, None, "starttls", DEFAULT_SENDER, True)),
        (
            f"smtp+starttls://{USER}:{ENCODED_PASSWORD}@mail.example.com",
            ("mail.example.com", 587, USER, PASSWORD, "starttls", DEFAULT_SENDER, True),
        ),
        (
            f"smtp+starttls://{USER}:{ENCODED_PASSWORD}@mail.example.com:2587",
            ("mail.example.com", 2587, USER, PASSWORD, "starttls", DEFAULT_SENDER, True),
        ),
        (
            "smtps://ops%40example.com:pw@mail.example.com:465?from=alerts@example.com",
            ("mail.example.com", 465, "ops@example.com", "pw", "tls", "alerts@example.com", True),
        ),
        ("smtps://mail.example.com", ("mail.example.com", 465, None, None, "tls", DEFAULT_SENDER, True)),
        (
            "smtp://127.0.0.1:25?starttls=1&verify=0&from=Pricegraph%20%3Cops%40example.com%3E",
            ("127.0.0.1", 25, None, None, "starttls", "Pricegraph <ops@example.com>", False),
        ),
        ("SMTPS://user@Mail.Example.com", ("mail.example.com", 465, "user", None, "tls", DEFAULT_SENDER, True)),
    ],
)
def test_parse(url: str, expected: tuple[object, ...]) -> None:
    config = SmtpConfig.parse(url)
    got = (config.host, config.port, config.username, config.password, config.security, config.sender, config.verify)
    assert got == expected
    assert config.timeout == 10.0


def test_parse_sender_argument_is_the_default_for_from() -> None:
    assert SmtpConfig.parse("smtp://relay", sender=SENDER).sender == SENDER
    assert SmtpConfig.parse("smtp://relay?from=a@example.com", sender=SENDER).sender == "a@example.com"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        (f"http://{USER}:{PASSWORD}@mail.example.com", "unknown scheme 'http'"),
        (f"{USER}:{PASSWORD}@mail.example.com", "must be a URL"),
        (f"smtp:/{USER}:{PASSWORD}@x://mail.example.com", "known scheme"),
        (f"smtps://{USER}:{ENCODED_PASSWORD}@", "no host"),
        (f"smtps://{USER}:{ENCODED_PASSWORD}@[::1", "malformed host"),
        (f"smtps://{USER}:{ENCODED_PASSWORD}@:465", "no host"),
        (f"smtps://{USER}:{ENCODED_PASSWORD}@mail.example.com:99999", "bad port"),
        (f"smtps://{USER}:{ENCODED_PASSWORD}@mail.example.com:0", "bad port"),
        (f"smtps://{USER}:{ENCODED_PASSWORD}@mail.example.com:", "bad port"),
        (f"smtps://{USER}:{ENCODED_PASSWORD}@mail.example.com:smtp", "bad port"),
        ("smtps://mailer:hunter2secret@mail.example.com/x", "path"),
        ("smtps://mailer:1?hunter2secret@mail.example.com", "unknown option"),
        ("smtps://mailer:hunter2secret@mail.example.com?starttls=1", "starttls"),
        ("smtp+starttls://mailer:hunter2secret@mail.example.com?starttls=0", "starttls"),
        ("smtp://mailer:hunter2secret@mail.example.com?verify=maybe", "verify"),
        ("smtp://mailer:hunter2secret@mail.example.com?from=nobody", "from"),
        ("smtp://:hunter2secret@mail.example.com", "no user name"),
    ],
)
def test_parse_errors_name_smtp_url_and_never_the_password(url: str, complaint: str) -> None:
    with pytest.raises(ValueError) as error:
        SmtpConfig.parse(url)
    message = str(error.value)
    assert "SMTP_URL" in message
    assert complaint in message
    for secret in (PASSWORD, ENCODED_PASSWORD, "s3cr3t", "hunter2"):
        assert secret not in message
    assert error.value.__cause__ is None


def test_repr_hides_the_password() -> None:
    config = SmtpConfig.parse(f"smtps://{USER}:{ENCODED_PASSWORD}@mail.example.com")
    assert PASSWORD not in repr(config) and ENCODED_PASSWORD not in repr(config)
    assert "password='***'" in repr(config) and "mail.example.com" in repr(config)
    assert "password=None" in repr(SmtpConfig.parse("smtp://relay"))


# ---- sending: AUTH, TLS, failures ----------------------------------------------------------------------


async def test_login_with_the_right_password_delivers(smtp_server: Server) -> None:
    collector, port = smtp_server(authenticator=authenticator, auth_require_tls=False)
    config = SmtpConfig.parse(f"smtp://{USER}:{ENCODED_PASSWORD}@127.0.0.1:{port}")
    await send(config, sample(Kind.TOPUP_RECEIVED))

    assert collector.received[0].login == USER.encode()
    assert collector.message()["Subject"] == SUBJECTS[Kind.TOPUP_RECEIVED]


async def test_login_with_a_wrong_password_raises_mail_error(smtp_server: Server) -> None:
    collector, port = smtp_server(authenticator=authenticator, auth_require_tls=False)
    config = SmtpConfig.parse(f"smtp://{USER}:wrong-hunter2@127.0.0.1:{port}")
    with pytest.raises(MailError) as error:
        await send(config, sample(Kind.TOPUP_RECEIVED))
    assert "127.0.0.1" in str(error.value) and "535" in str(error.value)
    assert "hunter2" not in str(error.value)
    assert collector.received == []


async def test_starttls_delivers_without_verification(smtp_server: Server, server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(tls_context=server_tls, require_starttls=True)
    await send(SmtpConfig.parse(f"smtp://127.0.0.1:{port}?starttls=1&verify=0"), sample(Kind.NEW_DEVICE))

    assert collector.received[0].tls
    assert collector.message()["Subject"] == SUBJECTS[Kind.NEW_DEVICE]


async def test_starttls_with_login(smtp_server: Server, server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(
        tls_context=server_tls, require_starttls=True, authenticator=authenticator, auth_required=True
    )
    config = SmtpConfig.parse(f"smtp+starttls://{USER}:{ENCODED_PASSWORD}@127.0.0.1:{port}?verify=0")
    await send(config, sample(Kind.KEY_CREATED))

    assert collector.received[0].tls and collector.received[0].login == USER.encode()


async def test_plain_to_a_starttls_only_server_is_refused(smtp_server: Server, server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(tls_context=server_tls, require_starttls=True)
    with pytest.raises(MailError, match="127.0.0.1"):
        await send(SmtpConfig.parse(f"smtp://127.0.0.1:{port}"), sample(Kind.NEW_DEVICE))
    assert collector.received == []


async def test_starttls_verifies_certificates_by_default(smtp_server: Server, server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(tls_context=server_tls, require_starttls=True)
    with pytest.raises(MailError, match="127.0.0.1"):
        await send(SmtpConfig.parse(f"smtp://127.0.0.1:{port}?starttls=1"), sample(Kind.NEW_DEVICE))
    assert collector.received == []


async def test_starttls_to_a_server_without_it_fails(smtp_server: Server) -> None:
    collector, port = smtp_server()
    with pytest.raises(MailError, match="127.0.0.1"):
        await send(SmtpConfig.parse(f"smtp://127.0.0.1:{port}?starttls=1&verify=0"), sample(Kind.NEW_DEVICE))
    assert collector.received == []


async def test_implicit_tls_delivers(smtp_server: Server, server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(ssl_context=server_tls, authenticator=authenticator, auth_require_tls=False)
    # aiosmtpd only counts STARTTLS as TLS for AUTH, hence auth_require_tls=False; `tls` checks the transport.
    config = SmtpConfig.parse(f"smtps://{USER}:{ENCODED_PASSWORD}@127.0.0.1:{port}?verify=0")
    await send(config, sample(Kind.WEBHOOK_DISABLED))

    assert collector.received[0].tls and collector.received[0].login == USER.encode()
    assert collector.message()["Subject"] == SUBJECTS[Kind.WEBHOOK_DISABLED]


async def test_implicit_tls_verifies_certificates_by_default(smtp_server: Server, server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(ssl_context=server_tls)
    with pytest.raises(MailError, match="127.0.0.1"):
        await send(SmtpConfig.parse(f"smtps://127.0.0.1:{port}"), sample(Kind.WEBHOOK_DISABLED))
    assert collector.received == []


async def test_unreachable_server_raises_mail_error_naming_the_host() -> None:
    port = free_port()  # nothing listens there
    config = SmtpConfig.parse(f"smtp://{USER}:hunter2@127.0.0.1:{port}")
    with pytest.raises(MailError) as error:
        await send(config, sample(Kind.BALANCE_LOW))
    assert f"127.0.0.1:{port}" in str(error.value)
    assert "hunter2" not in str(error.value)


async def test_plain_is_never_upgraded_opportunistically(smtp_server: Server, server_tls: ssl.SSLContext) -> None:
    collector, port = smtp_server(tls_context=server_tls)  # offers STARTTLS without requiring it
    await send(SmtpConfig.parse(f"smtp://127.0.0.1:{port}"), sample(Kind.BALANCE_LOW))

    assert not collector.received[0].tls
