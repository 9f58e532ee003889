"""Account e-mail: the SMTP settings (`SMTP_URL`), the messages Pricegraph sends to account owners, and sending.

`SmtpConfig.parse` reads `SMTP_URL`; `render` builds a message of one `Kind` (a plain-text and an HTML part)
and refuses any data that looks like a secret; `send` delivers it with aiosmtplib. No message or error here
ever carries the SMTP password.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from enum import StrEnum
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib

Security = Literal["none", "starttls", "tls"]

DEFAULT_SENDER = "Pricegraph <no-reply@localhost>"
PRODUCT = "Pricegraph"

_SCHEMES: Mapping[str, tuple[Security, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}
_OPTIONS = ("from", "starttls", "verify")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

# What a secret looks like: a full API key (its 12-character display prefix is `cxm_` and 8 more), a webhook
# signing secret, an upstream provider key. `sk-` must start a token, so words such as "risk-" or "task-"
# in a URL are not taken for one.
_SECRET = re.compile(r"cxm_[A-Za-z0-9_-]{20,}|whsec_|(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}")


class MailError(Exception):
    """A message could not be sent: the SMTP server could not be reached, refused it, or refused the login."""


def _flag(value: str, option: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"SMTP_URL option {option}= must be 1 or 0")


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send: an SMTP server, its login, its transport security and the From address."""

    host: str
    port: int
    username: str | None
    password: str | None
    security: Security
    sender: str
    timeout: float = 10.0
    verify: bool = True

    def __repr__(self) -> str:
        password = None if self.password is None else "***"
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port!r}, username={self.username!r}, "
            f"password={password!r}, security={self.security!r}, sender={self.sender!r}, "
            f"timeout={self.timeout!r}, verify={self.verify!r})"
        )

    @classmethod
    def parse(cls, url: str, sender: str | None = None) -> SmtpConfig:
        """Read an `SMTP_URL`.

        - `smtp://host[:25]`: plain SMTP, never upgraded; with `?starttls=1`, STARTTLS is required.
        - `smtp+starttls://user:pass@host[:587]`: STARTTLS required.
        - `smtps://user:pass@host[:465]`: implicit TLS.

        The user name and password are percent-decoded. Options: `from=` the From address (else `sender`,
        else "Pricegraph <no-reply@localhost>"), `verify=0` to accept any server certificate (internal
        relays only). A malformed URL raises ValueError naming `SMTP_URL`; the message never quotes what
        follows the scheme, since a mis-encoded password could land anywhere in it.
        """
        text = url.strip()
        if "://" not in text:
            raise ValueError(
                "SMTP_URL must be a URL such as smtp://host:25, smtp+starttls://host:587 or smtps://host:465"
            )
        scheme = text.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            known = ", ".join(f"{name}://" for name in _SCHEMES)
            if re.fullmatch(r"[a-z][a-z0-9+.-]{0,30}", scheme):
                raise ValueError(f"SMTP_URL has an unknown scheme {scheme!r}: expected {known}")
            raise ValueError(f"SMTP_URL does not start with a known scheme: expected {known}")
        security, default_port = _SCHEMES[scheme]
        try:
            parts = urlsplit(text)
        except ValueError:  # an unbalanced "[" in the host
            raise ValueError("SMTP_URL has a malformed host") from None
        host = parts.hostname
        if not host:
            raise ValueError("SMTP_URL has no host")
        try:
            explicit_port = parts.port
        except ValueError:
            explicit_port = 0
        if explicit_port == 0 or (explicit_port is None and parts.netloc.endswith(":")):
            raise ValueError("SMTP_URL has a bad port: expected a number from 1 to 65535")
        port = explicit_port or default_port
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError("SMTP_URL must not have a path: expected scheme://[user:password@]host[:port][?options]")

        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if password is not None and username is None:
            raise ValueError("SMTP_URL has a password but no user name")

        options: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name not in _OPTIONS:
                raise ValueError(f"SMTP_URL has an unknown option: the options are {', '.join(_OPTIONS)}")
            options[name] = value
        if "starttls" in options:
            wanted = _flag(options["starttls"], "starttls")
            if security == "tls":
                raise ValueError("SMTP_URL option starttls= does not apply to smtps:// (implicit TLS)")
            if security == "starttls" and not wanted:
                raise ValueError("SMTP_URL option starttls=0 contradicts the smtp+starttls:// scheme")
            if wanted:
                security = "starttls"
        verify = _flag(options["verify"], "verify") if "verify" in options else True

        from_ = options.get("from", "").strip() or sender or DEFAULT_SENDER
        if "@" not in parseaddr(from_)[1] or any(char in from_ for char in "\r\n"):
            raise ValueError("SMTP_URL option from= (or the sender given) is not an e-mail address")
        return cls(
            host=host,
            port=port,
            username=username,
            password=password,
            security=security,
            sender=from_,
            verify=verify,
        )


class Kind(StrEnum):
    KEY_CREATED = "key_created"
    KEY_REVOKED = "key_revoked"
    NEW_DEVICE = "new_device"
    BALANCE_LOW = "balance_low"
    BUDGET_THRESHOLD = "budget_threshold"
    WEBHOOK_DISABLED = "webhook_disabled"
    TOPUP_RECEIVED = "topup_received"
    SIGN_IN_LINK = "sign_in_link"


FIELDS: Mapping[Kind, tuple[str, ...]] = {
    Kind.KEY_CREATED: ("key_prefix", "key_name", "at"),
    Kind.KEY_REVOKED: ("key_prefix", "key_name", "at"),
    Kind.NEW_DEVICE: ("browser", "network", "at"),
    Kind.BALANCE_LOW: ("balance", "threshold"),
    Kind.BUDGET_THRESHOLD: ("scope", "percent", "spent", "cap", "period"),
    Kind.WEBHOOK_DISABLED: ("url", "reason", "since"),
    Kind.TOPUP_RECEIVED: ("amount", "balance", "order_id"),
    Kind.SIGN_IN_LINK: ("link", "expires_minutes"),
}


@dataclass(frozen=True)
class _Copy:
    subject: str
    intro: str
    rows: tuple[tuple[str, str], ...]
    note: str
    link: str | None = None


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _copy(kind: Kind, v: Mapping[str, str]) -> _Copy:
    if kind is Kind.KEY_CREATED:
        return _Copy(
            subject=f"{PRODUCT}: new API key created",
            intro=f"A new API key was created on your {PRODUCT} account.",
            rows=(("Key", f"{v['key_prefix']}..."), ("Name", v["key_name"]), ("Created", v["at"])),
            note="If you did not create this key, revoke it now and review the keys on your account.",
        )
    if kind is Kind.KEY_REVOKED:
        return _Copy(
            subject=f"{PRODUCT}: API key revoked",
            intro=f"An API key on your {PRODUCT} account was revoked. Requests made with it are now refused.",
            rows=(("Key", f"{v['key_prefix']}..."), ("Name", v["key_name"]), ("Revoked", v["at"])),
            note="If you did not revoke this key, review the keys and recent sign-ins on your account.",
        )
    if kind is Kind.NEW_DEVICE:
        return _Copy(
            subject=f"{PRODUCT}: new sign-in to your account",
            intro=f"Your {PRODUCT} account was signed in to from a new device.",
            rows=(("Browser", v["browser"]), ("Network", v["network"]), ("Time", v["at"])),
            note="If this was you, there is nothing to do. If not, sign out everywhere and revoke your keys.",
        )
    if kind is Kind.BALANCE_LOW:
        return _Copy(
            subject=f"{PRODUCT}: your balance is low",
            intro="Your prepaid balance has fallen below your alert threshold.",
            rows=(("Balance", f"${v['balance']}"), ("Alert threshold", f"${v['threshold']}")),
            note="Requests are refused once the balance runs out. Top up to keep them running.",
        )
    if kind is Kind.BUDGET_THRESHOLD:
        percent = v["percent"].removesuffix("%")
        scope = "your account" if v["scope"] == "account" else v["scope"]
        return _Copy(
            subject=f"{PRODUCT}: {percent}% of your {v['period']} budget used",
            intro=f"Spending for {scope} has reached {percent}% of its budget for {v['period']}.",
            rows=(
                ("Scope", v["scope"]),
                ("Period", v["period"]),
                ("Spent", f"${v['spent']}"),
                ("Budget", f"${v['cap']}"),
                ("Used", f"{percent}%"),
            ),
            note="Requests that would pass the budget are refused until the month ends or the budget is raised.",
        )
    if kind is Kind.WEBHOOK_DISABLED:
        return _Copy(
            subject=f"{PRODUCT}: webhook disabled",
            intro="A webhook endpoint was disabled after repeated delivery failures. No more events are sent to it.",
            rows=(("URL", v["url"]), ("Reason", v["reason"]), ("Failing since", v["since"])),
            note="Fix the endpoint, then enable it again in your account settings.",
        )
    if kind is Kind.TOPUP_RECEIVED:
        return _Copy(
            subject=f"{PRODUCT}: top-up received",
            intro="Thank you. Your top-up was received and added to your prepaid balance.",
            rows=(("Amount", f"${v['amount']}"), ("New balance", f"${v['balance']}"), ("Order", v["order_id"])),
            note="Keep this e-mail as your receipt reference.",
        )
    if not re.match(r"https?://", v["link"], re.IGNORECASE):
        raise ValueError("sign_in_link: link must be an http(s) URL")
    return _Copy(
        subject=f"{PRODUCT}: your sign-in link",
        intro=f"Use the link below to sign in to {PRODUCT}. It expires in {v['expires_minutes']} minutes.",
        rows=(),
        note="If you did not ask to sign in, you can ignore this e-mail.",
        link=v["link"],
    )


def _wrap(paragraph: str) -> list[str]:
    return textwrap.wrap(paragraph, 76, break_long_words=False, break_on_hyphens=False)


def _text(copy: _Copy) -> str:
    lines = [*_wrap(copy.intro), ""]
    if copy.link is not None:
        lines += [copy.link, ""]
    if copy.rows:
        width = max(len(label) for label, _ in copy.rows) + 1
        lines += [f"{label + ':':<{width}} {value}" for label, value in copy.rows]
        lines.append("")
    lines += [*_wrap(copy.note), "", f"-- {PRODUCT}", ""]
    return "\n".join(lines)


def _html(copy: _Copy) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"></head>',
        '<body style="font-family: sans-serif; font-size: 14px; color: #222;">',
        f"<p>{e(copy.intro)}</p>",
    ]
    if copy.link is not None:
        parts.append(f'<p><a href="{e(copy.link)}">Sign in to {PRODUCT}</a></p>')
        parts.append(f'<p style="font-size: 12px; color: #555;">Or paste this address: {e(copy.link)}</p>')
    if copy.rows:
        parts.append('<table cellpadding="4" style="border-collapse: collapse;">')
        parts += [f'<tr><th align="left">{e(label)}</th><td>{e(value)}</td></tr>' for label, value in copy.rows]
        parts.append("</table>")
    parts += [f"<p>{e(copy.note)}</p>", f'<p style="color: #555;">{PRODUCT}</p>', "</body></html>", ""]
    return "\n".join(parts)


def render(kind: Kind | str, to: str, data: Mapping[str, object], sender: str) -> EmailMessage:
    """Build the e-mail of one kind to `to`, from `sender`: multipart/alternative, plain text and HTML.

    The data each kind reads (values are shown as given, on one line; money values are exact USD decimal
    strings such as "4.20", shown with a "$"):

    - key_created, key_revoked: `key_prefix` (the key's display prefix, e.g. "cxm_AbCdEfGh"), `key_name`,
      `at` (ISO time).
    - new_device: `browser` (the user agent), `network` (the IP address), `at` (ISO time).
    - balance_low: `balance`, `threshold` (money).
    - budget_threshold: `scope` ("account" or "key cxm_…"), `percent` (e.g. 80), `spent`, `cap` (money),
      `period` ("YYYY-MM").
    - webhook_disabled: `url`, `reason`, `since` (ISO time).
    - topup_received: `amount`, `balance` (money), `order_id`.
    - sign_in_link: `link` (an http(s) URL), `expires_minutes`.

    Raises ValueError for an unknown kind, a missing field, a sign-in link that is not http(s), or any value
    that looks like a secret (a full API key, a webhook signing secret, a provider key), which is never mailed.
    """
    kind = Kind(kind)
    for name, value in data.items():
        if _SECRET.search(str(value)):
            raise ValueError(f"{kind.value}: field {name!r} looks like a secret; secrets are never mailed")
    missing = [name for name in FIELDS[kind] if name not in data]
    if missing:
        raise ValueError(f"{kind.value}: missing {', '.join(missing)}")
    values = {name: _one_line(data[name]) for name in FIELDS[kind]}
    copy = _copy(kind, values)

    message = EmailMessage()
    message["Subject"] = copy.subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(_text(copy))
    message.add_alternative(_html(copy), subtype="html")
    return message


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


async def send(config: SmtpConfig, message: EmailMessage) -> None:
    """Send `message` to its recipients through `config`'s server; returns once the server accepted it.

    Raises MailError, naming the server, when it cannot be reached, the TLS handshake or the login fails,
    or it refuses the message.
    """
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=(config.password or "") if config.username is not None else None,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            validate_certs=config.verify,
            timeout=config.timeout,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:  # OSError covers ssl.SSLError and TimeoutError
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            detail = f"{exc.code} {exc.message}"
        else:
            detail = str(exc) or type(exc).__name__
        detail = _redact(detail, config.password)
        raise MailError(f"sending mail via {config.host}:{config.port} failed: {detail}") from exc
