"""Secrets the service must read back (webhook signing secrets), sealed at rest with AES-256-GCM.

The key comes from SECRET_KEY (any string; its SHA-256 is the key) or, without it, from a key file the
service creates once beside its data (mode 0600). Every process sharing a database needs the same key.
A sealed value reads `v1:<base64 nonce + ciphertext>`; opening it with another key fails loudly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1:"
KEY_FILE = ".pricegraph-secret-key"


class SealError(ValueError):
    """A sealed value that this key cannot open."""


@dataclass(frozen=True)
class Sealer:
    key: bytes = field(repr=False)

    @classmethod
    def from_passphrase(cls, passphrase: str) -> Sealer:
        return cls(hashlib.sha256(passphrase.encode()).digest())

    @classmethod
    def from_file(cls, path: Path) -> Sealer:
        """The key in `path`, created (random, mode 0600) when the file does not exist."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        return cls.from_passphrase(path.read_text().strip())

    def seal(self, plain: str, context: str = "") -> str:
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self.key).encrypt(nonce, plain.encode(), context.encode())
        return VERSION + base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, context: str = "") -> str:
        if not sealed.startswith(VERSION):
            raise SealError("not a sealed value")
        raw = base64.b64decode(sealed[len(VERSION) :])
        try:
            return AESGCM(self.key).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag:
            raise SealError("the value was sealed with another key (is SECRET_KEY the same everywhere?)") from None

    def sign(self, message: str, purpose: str) -> str:
        """An HMAC-SHA256 of `message` for one purpose (sign-in links, forms), under a key derived from this one."""
        key = hashlib.sha256(self.key + b"\x00sign\x00" + purpose.encode()).digest()
        digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, message: str, signature: str, purpose: str) -> bool:
        return hmac.compare_digest(self.sign(message, purpose), signature)
