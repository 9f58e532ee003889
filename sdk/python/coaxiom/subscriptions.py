"""Live prices over `graphql-transport-ws`: reconnects with backoff and resumes without duplicates."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator
from datetime import datetime
from decimal import Decimal
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from coaxiom.errors import APIConnectionError, APIError, AuthenticationError, RateLimitError, from_graphql
from coaxiom.types import PriceTick

PRICE_CHANGED = """subscription ($model: String, $provider: String, $min: Decimal) {
  priceChanged(model: $model, provider: $provider, minChangePct: $min) {
    model provider variant inputPer1m outputPer1m blendedPer1m previousBlendedPer1m changePct status observedAt
  }
}"""
FATAL_CLOSES = {4400: APIError, 4403: AuthenticationError, 4401: AuthenticationError, 4409: APIError}


def _when(text: str) -> datetime | str:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text


class _Dedup:
    """Ticks already delivered: per offer, the newest observation time seen (survives reconnects)."""

    def __init__(self) -> None:
        self.newest: dict[tuple[str, str, str], Any] = {}

    def fresh(self, tick: PriceTick) -> bool:
        when = _when(tick.observed_at)
        last = self.newest.get(tick.key)
        try:
            if last is not None and when <= last:
                return False
        except TypeError:
            if when == last:
                return False
        self.newest[tick.key] = when
        return True


async def subscribe_prices(
    ws_url: str,
    api_key: str | None,
    model: str | None = None,
    provider: str | None = None,
    min_change_pct: Decimal | float | str | None = None,
    *,
    max_reconnects: int | None = None,
    backoff_base: float = 0.5,
    backoff_max: float = 30.0,
    open_timeout: float = 10.0,
) -> AsyncGenerator[PriceTick, None]:
    variables = {
        "model": model,
        "provider": provider,
        "min": str(min_change_pct) if min_change_pct is not None else None,
    }
    init = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    dedup = _Dedup()
    failures = 0
    while True:
        delay: float | None = None
        try:
            async with websockets.connect(
                ws_url,
                subprotocols=[Subprotocol("graphql-transport-ws")],
                open_timeout=open_timeout,
            ) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": init}))
                while True:
                    ack = json.loads(await asyncio.wait_for(ws.recv(), open_timeout))
                    if ack.get("type") == "connection_ack":
                        break
                    if ack.get("type") == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                await ws.send(
                    json.dumps(
                        {"id": "1", "type": "subscribe", "payload": {"query": PRICE_CHANGED, "variables": variables}}
                    )
                )
                async for raw in ws:
                    message = json.loads(raw)
                    kind = message.get("type")
                    if kind == "next":
                        payload = message.get("payload") or {}
                        if payload.get("errors") and not payload.get("data"):
                            raise from_graphql(payload["errors"])
                        data = (payload.get("data") or {}).get("priceChanged")
                        if data:
                            failures = 0
                            tick = PriceTick.from_graphql(data)
                            if dedup.fresh(tick):
                                yield tick
                    elif kind == "error":
                        error = from_graphql(message.get("payload") or [])
                        if not isinstance(error, RateLimitError):
                            raise error
                        delay = error.retry_after
                        break
                    elif kind == "complete":
                        return
                    elif kind == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code in FATAL_CLOSES:
                reason = exc.rcvd.reason if exc.rcvd is not None else ""
                raise FATAL_CLOSES[code](reason or f"websocket closed ({code})", code, code) from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise AuthenticationError(f"websocket refused ({status})", status) from None
            if status < 500 and status != 429:
                raise APIError(f"websocket refused ({status})", status) from None
        except (OSError, InvalidHandshake, asyncio.TimeoutError):
            pass
        failures += 1
        if max_reconnects is not None and failures > max_reconnects:
            raise APIConnectionError(f"the price feed at {ws_url} is unreachable after {failures} attempts")
        if delay is None:
            delay = min(backoff_max, backoff_base * 2 ** (failures - 1)) * (0.75 + random.random() / 2)
        await asyncio.sleep(delay)
