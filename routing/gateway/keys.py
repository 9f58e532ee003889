"""`X-Provider-Keys`: base64 of a JSON object mapping provider slugs to the customer's own keys.

Messages about a malformed header name the problem and never quote the header or a key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable

from datasources.catalog.providers import PROVIDERS, provider_slug
from routing.gateway.errors import GatewayError

HEADER = "x-provider-keys"
MAX_HEADER = 16_384


def _bad(problem: str) -> GatewayError:
    return GatewayError(400, f"malformed X-Provider-Keys header: {problem}", "invalid_provider_keys")


def parse_provider_keys(raw: str | None) -> dict[str, str]:
    if raw is None or not raw.strip():
        return {}
    text = raw.strip()
    if len(text) > MAX_HEADER:
        raise _bad(f"longer than {MAX_HEADER} characters")
    padded = text + "=" * (-len(text) % 4)
    try:
        decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise _bad('not base64 (send base64 of a JSON object: {"groq": "gsk_..."})') from None
    try:
        data = json.loads(decoded.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad("the base64 does not decode to JSON") from None
    if not isinstance(data, dict):
        raise _bad("the JSON must be an object mapping provider slugs to keys")
    keys: dict[str, str] = {}
    for name, key in data.items():
        slug = name.strip().lower() if name.strip().lower() in PROVIDERS else provider_slug(name)
        if slug is None:
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise _bad(f"unknown provider slug {shown!r}")
        if not isinstance(key, str) or not key.strip():
            raise _bad(f"the key for {slug!r} must be a non-empty string")
        if any(c in key for c in "\r\n\0"):
            raise _bad(f"the key for {slug!r} contains a control character")
        keys[slug] = key.strip()
    return keys


def redact(text: str, secrets: Iterable[str], window: int = 6) -> str:
    """Text from an upstream with any secret, or any run of `window` characters of one, masked out."""
    for secret in secrets:
        if not secret:
            continue
        if secret in text:
            text = text.replace(secret, "[redacted]")
        if len(secret) >= window:
            for start in range(len(secret) - window + 1):
                if secret[start : start + window] in text:
                    return "[an upstream message that quoted a provider key was withheld]"
    return text
