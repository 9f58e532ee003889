"""What the gateway keeps for the life of the app (`app.state.gateway`)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import aiohttp

from datasources.budgets import BudgetBook
from datasources.callers import OperatorToken
from datasources.credit import CreditBook
from datasources.keytable import KeyTable
from datasources.pricebook import PriceBook
from datasources.pricing import TokenUse
from datasources.quotas import QuotaBook
from datasources.recorder import Recorder
from routing.gateway import forward
from routing.gateway.health import Health
from routing.gateway.providers import GatewayConfig


def request_ids() -> Iterator[str]:
    """Unique across processes (a random prefix per process) and cheap: no system call per request."""
    prefix = "req_" + secrets.token_hex(6)
    return (f"{prefix}{n:012x}" for n in itertools.count(1))


class Observer(Protocol):
    """What the gateway tells about its upstream calls and what it metered (`routing.metrics`)."""

    def upstream(self, provider: str, seconds: float) -> None: ...
    def failed(self, provider: str, reason: str) -> None: ...
    def fell_back(self, provider: str) -> None: ...
    def metered(self, provider: str, model: str, use: TokenUse, cost: Decimal) -> None: ...


class Unobserved:
    def upstream(self, provider: str, seconds: float) -> None:
        pass

    def failed(self, provider: str, reason: str) -> None:
        pass

    def fell_back(self, provider: str) -> None:
        pass

    def metered(self, provider: str, model: str, use: TokenUse, cost: Decimal) -> None:
        pass


@dataclass
class Gateway:
    """The upstream client, provider health and request ids are the gateway's own; the money and the keys
    it works with are the app's (`keys`, `quotas`, `credit`, `recorder`, `book`)."""

    config: GatewayConfig
    client: aiohttp.ClientSession
    health: Health
    keys: KeyTable
    quotas: QuotaBook
    credit: CreditBook
    recorder: Recorder
    book: PriceBook
    budgets: BudgetBook
    operator: OperatorToken | None = None
    observer: Observer = field(default_factory=Unobserved)
    request_ids: Iterator[str] = field(default_factory=request_ids)

    @classmethod
    def start(cls, config: GatewayConfig, state: Any) -> Gateway:
        return cls(
            config,
            forward.make_client(),
            Health(config.breaker_failures, config.breaker_cooldown),
            state.keys,
            state.quotas,
            state.credit,
            state.recorder,
            state.book,
            state.budgets,
            state.operator,
            getattr(state, "gateway_observer", None) or Unobserved(),
        )

    async def stop(self) -> None:
        await self.client.close()
