"""Who is calling and whether they may: an API key's account, the operator (ADMIN_TOKEN), or a keyless
client by address; admission is the plan gate first (refusals use no quota), then the quota. Every
surface (REST, GraphQL over HTTP and websockets, the gateway) asks here."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from datasources import quotas
from datasources.accounts import KEY_PREFIX, hash_secret
from datasources.db.models import Plan
from datasources.errors import Forbidden, QuotaExceeded, Unauthenticated
from datasources.keytable import KeyTable
from datasources.plans import RULES, Feature, PlanRules, require


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
            raise Forbidden("operators only: send Authorization: Bearer <ADMIN_TOKEN>")


class OperatorToken:
    """The operator's token, kept only as its digest: compared in constant time, never shown."""

    __slots__ = ("_digest",)

    def __init__(self, token: str) -> None:
        self._digest = hashlib.sha256(token.encode()).digest()

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self._digest, hashlib.sha256(token.encode()).digest())

    def __repr__(self) -> str:
        return "OperatorToken(***)"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <api key>'")
    return token.strip()


async def authenticate(
    keys: KeyTable, authorization: str | None, client_ip: str, operator: OperatorToken | None = None
) -> Principal:
    """The caller behind an Authorization value; none is a keyless (free) caller. Keys are read from the
    in-memory key table (`datasources.keytable`)."""
    token = bearer_token(authorization)
    if token is None:
        return Principal(plan=Plan.FREE, client_ip=client_ip)
    if operator is not None and operator.matches(token):
        return Principal(plan=Plan.ENTERPRISE, client_ip=client_ip, is_admin=True)
    if not token.startswith(KEY_PREFIX):
        raise Unauthenticated("invalid API key")
    entry = await keys.find(hash_secret(token))
    if entry is None:
        raise Unauthenticated("invalid or revoked API key")
    return Principal(plan=entry.plan, client_ip=client_ip, account_id=entry.account_id, key_id=entry.key_id)


async def admit(
    book: quotas.QuotaBook, principal: Principal, feature: Feature | None = None, history_days: int | None = None
) -> quotas.Admission:
    if feature is not None:
        require(principal.rules, feature, history_days)
    return await book.admit(principal.subject, principal.rules)


def refund(book: quotas.QuotaBook, admission: quotas.Admission) -> quotas.Admission:
    return book.refund(admission)


def rate_limit_headers(admission: quotas.Admission) -> dict[str, str]:
    """The quota as the `X-RateLimit-*` fields every HTTP answer carries (none when unlimited)."""
    if admission.limit is None:
        return {}
    return {
        "X-RateLimit-Limit": str(admission.limit),
        "X-RateLimit-Remaining": str(admission.remaining),
        "X-RateLimit-Reset": str(admission.reset_at),
    }


def refusal_headers(exc: QuotaExceeded) -> dict[str, str]:
    return {
        "Retry-After": str(exc.retry_after),
        "X-RateLimit-Limit": str(exc.limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(exc.reset_at),
    }
