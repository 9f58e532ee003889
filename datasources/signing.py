"""Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{body}` with the secret's bytes (base64 after `whsec_`), sent as
`webhook-signature: v1,<base64>` beside `webhook-id` and `webhook-timestamp` (Unix seconds)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """A delivery whose signature does not verify."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    raw = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise SignatureError("the secret is not base64 after whsec_") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str, given: Mapping[str, str], body: bytes, tolerance: int = TOLERANCE_SECONDS, now: int | None = None
) -> None:
    """Raise SignatureError unless `given` headers carry a valid, timely signature of `body`."""
    lowered = {k.lower(): v for k, v in given.items()}
    msg_id, stamp, signatures = (lowered.get(n) for n in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not stamp or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError(f"webhook-timestamp is not a number: {stamp!r}") from None
    current = int(time.time()) if now is None else now
    if timestamp < current - tolerance:
        raise SignatureError("the timestamp is too old")
    if timestamp > current + tolerance:
        raise SignatureError("the timestamp is in the future")
    expected = sign(secret, msg_id, timestamp, body).encode()
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            return
    raise SignatureError("no matching signature")
