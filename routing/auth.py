"""Who is calling: an API key's account, the operator (ADMIN_TOKEN), or a keyless client by address."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from datasources.accounts import KEY_PREFIX, hash_secret
from datasources.db.models import Plan
from datasources.errors import Forbidden, Unauthenticated
from datasources.keytable import KeyTable
from datasources.plans import RULES, PlanRules

ADMIN_TOKEN_ENV = "ADMIN_TOKEN"


@dataclass(frozen=True)
class Principal:
    plan: Plan
    client_ip: str
    account_id: int | None = None
    key_id: str | None = None
    is_admin: bool = False

    @property
    def rules(self) -> PlanRules:
        return RULES[self.plan]

    @property
    def subject(self) -> str:
        """Whose quota a request uses: the account's (shared by its keys), else the client address's."""
        if self.account_id is not None:
            return f"account:{self.account_id}"
        if self.is_admin:
            return "admin"
        return f"ip:{self.client_ip}"

    @property
    def authenticated(self) -> bool:
        return self.account_id is not None or self.is_admin

    def require_account(self) -> int:
        if self.account_id is None:
            raise Unauthenticated("an API key is required: send Authorization: Bearer cxm_...")
        return self.account_id

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden(f"operators only: send Authorization: Bearer <{ADMIN_TOKEN_ENV}>")


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <api key>'")
    return token.strip()


async def authenticate(keys: KeyTable, authorization: str | None, client_ip: str) -> Principal:
    """The caller behind an Authorization header value; no header is a keyless (free) caller. Keys are
    read from the in-memory key table (`datasources.keytable`)."""
    token = bearer_token(authorization)
    if token is None:
        return Principal(plan=Plan.FREE, client_ip=client_ip)
    admin_token = os.environ.get(ADMIN_TOKEN_ENV)
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal(plan=Plan.ENTERPRISE, client_ip=client_ip, is_admin=True)
    if not token.startswith(KEY_PREFIX):
        raise Unauthenticated("invalid API key")
    entry = await keys.find(hash_secret(token))
    if entry is None:
        raise Unauthenticated("invalid or revoked API key")
    return Principal(plan=entry.plan, client_ip=client_ip, account_id=entry.account_id, key_id=entry.key_id)
