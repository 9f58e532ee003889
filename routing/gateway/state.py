"""What the gateway keeps for the life of the app (`app.state.gateway`)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from datasources.budgets import BudgetBook
from datasources.callers import OperatorToken
from datasources.credit import CreditBook
from datasources.keytable import KeyTable
from datasources.pricebook import PriceBook
from datasources.quotas import QuotaBook
from datasources.recorder import Recorder
from routing.gateway import forward
from routing.gateway.health import Health
from routing.gateway.providers import GatewayConfig


def request_ids() -> Iterator[str]:
    """Unique across processes (a random prefix per process) and cheap: no system call per request."""
    prefix = "req_" + secrets.token_hex(6)
    return (f"{prefix}{n:012x}" for n in itertools.count(1))


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
        )

    async def stop(self) -> None:
        await self.client.close()
