"""One request at the gateway, from its bytes to its usage record, and how its answer is written."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.types import Receive, Scope, Send

from datasources import callers
from datasources.callers import Principal
from datasources.credit import Hold
from datasources.quotas import Admission
from routing.gateway.errors import GatewayError
from routing.gateway.state import Gateway


@dataclass
class Exchange:
    scope: Scope
    receive: Receive
    send: Send
    gateway: Gateway
    request_id: str
    started: float = field(default_factory=time.monotonic)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    principal: Principal | None = None
    admission: Admission | None = None
    hold: Hold | None = None  # what a platform-key attempt may cost, reserved on the account's lease
    budget_holds: list[Hold] = field(default_factory=list)  # the same, on each budget covering the request
    recorded: asyncio.Future[None] | None = None  # the pending usage record's commit
    body: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    prompt_tokens: int = 0
    response_started: bool = False
    finished: bool = False

    @property
    def account_id(self) -> int:
        assert self.principal is not None and self.principal.account_id is not None
        return self.principal.account_id

    @property
    def model_asked(self) -> str:
        return str(self.body.get("model", ""))

    def headers(self, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
        values = {"x-request-id": self.request_id, **(extra or {})}
        if self.admission is not None:
            values.update({k.lower(): v for k, v in callers.rate_limit_headers(self.admission).items()})
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in values.items()]

    async def start(self, status: int, content_type: bytes, extra: dict[str, str] | None = None) -> None:
        self.response_started = True
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), *self.headers(extra)],
            }
        )

    async def answer(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        await self.start(status, b"application/json", {**(extra or {}), "content-length": str(len(body))})
        await self.send({"type": "http.response.body", "body": body})

    async def fail(self, error: GatewayError) -> None:
        await self.answer(error.status, error.encode(), error.headers)
