"""`CoaxiomClient` and `AsyncCoaxiomClient`: the price API, the routing gateway, the account API and
the live price feed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any, Literal, TypeVar, overload

import httpx

from coaxiom import _http, subscriptions
from coaxiom._config import DEFAULT_TIMEOUT, Config
from coaxiom.errors import APIConnectionError, CoaxiomError
from coaxiom.streaming import AsyncChatStream, ChatStream
from coaxiom.types import (
    Balance,
    ChatCompletion,
    Comparison,
    History,
    Model,
    Prices,
    PriceTick,
    Provider,
    RouteModel,
)

T = TypeVar("T")
USAGE_VIEWS = ("", "logs", "summary", "costs", "models", "keys", "endpoints")


def _models(d: Any) -> list[Model]:
    return [Model.from_dict(m) for m in d.get("models", [])]


def _providers(d: Any) -> list[Provider]:
    return [Provider.from_dict(p) for p in d.get("providers", [])]


def _route_models(d: Any) -> list[RouteModel]:
    return [RouteModel.from_dict(m) for m in d.get("models", [])]


def _same(d: Any) -> Any:
    return d


def _usage_path(view: str) -> str:
    if view not in USAGE_VIEWS:
        raise ValueError(f"view must be one of {', '.join(v or repr('') for v in USAGE_VIEWS)}")
    return "/v1/usage" + (f"/{view}" if view else "")


def _usage_params(
    period: str | None,
    start_time: Any,
    end_time: Any,
    model: str | None,
    key_id: str | None,
    endpoint: str | None,
    limit: int | None,
) -> dict[str, Any]:
    return {
        "period": period,
        "start_time": start_time,
        "end_time": end_time,
        "model": model,
        "key_id": key_id,
        "endpoint": endpoint,
        "limit": limit,
    }


def _compare_models(models: str | Iterable[str]) -> str:
    return models if isinstance(models, str) else ",".join(models)


def _openai_module() -> Any:
    try:
        import openai
    except ImportError:
        raise CoaxiomError("openai_client() needs the openai package: pip install 'coaxiom[openai]'") from None
    return openai


class _Base:
    def __init__(
        self,
        api_key: str | None = None,
        provider_keys: Mapping[str, str] | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2,
    ) -> None:
        self._config = Config.build(api_key, provider_keys, base_url, timeout, max_retries)

    def __repr__(self) -> str:
        return self._config.describe(type(self).__name__)

    @property
    def base_url(self) -> str:
        return self._config.api_root + "/"

    def _openai_kwargs(self) -> dict[str, Any]:
        headers = {k: v for k, v in self._config.headers().items() if k == "x-provider-keys"}
        return {
            "base_url": self._config.route_root,
            "api_key": self._config.api_key or "no-key",
            "default_headers": {"X-Provider-Keys": headers["x-provider-keys"]} if headers else None,
            "timeout": self._config.timeout,
            "max_retries": self._config.max_retries,
        }

    def _chat_body(self, model: str, messages: list[dict[str, Any]], stream: bool, params: dict[str, Any]) -> Any:
        body: dict[str, Any] = {"model": model, "messages": messages, **params}
        if stream:
            body["stream"] = True
        return body


class CoaxiomClient(_Base):
    """The synchronous client. `CoaxiomClient(api_key="cxm_…", provider_keys={"groq": "gsk_…"})`."""

    def __init__(
        self,
        api_key: str | None = None,
        provider_keys: Mapping[str, str] | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(api_key, provider_keys, base_url, timeout, max_retries)
        self._http = http_client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CoaxiomClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- plumbing ----

    def _send(self, method: str, path: str, retry: bool, **kwargs: Any) -> httpx.Response:
        url = self._config.origin + path
        attempt = 0
        while True:
            try:
                response = self._http.request(method, url, headers=self._config.headers(), **kwargs)
            except httpx.TransportError as exc:
                connect = isinstance(exc, httpx.ConnectError)
                if (retry or connect) and attempt < self._config.max_retries:
                    time.sleep(_http.backoff(attempt, None))
                    attempt += 1
                    continue
                raise APIConnectionError(f"{method} {path}: {type(exc).__name__}") from None
            if retry and _http.should_retry(response) and attempt < self._config.max_retries:
                time.sleep(_http.backoff(attempt, response.headers.get("retry-after")))
                attempt += 1
                continue
            return response

    def _get(self, path: str, params: dict[str, Any], parse: Callable[[Any], T]) -> T:
        response = self._send("GET", path, True, params=_http.clean_params(params))
        return parse(_http.check(response, self._config.secrets()))

    # ---- the price API ----

    def prices(self, model: str | None = None, provider: str | None = None) -> Prices:
        return self._get("/api/v1/prices", {"model": model, "provider": provider}, Prices.from_dict)

    def history(
        self,
        model: str,
        provider: str,
        days: int = 30,
        interval: str = "1d",
        variant: str | None = None,
        dimension: str | None = None,
    ) -> History:
        params = {
            "model": model,
            "provider": provider,
            "days": days,
            "interval": interval,
            "variant": variant,
            "dimension": dimension,
        }
        return self._get("/api/v1/history", params, History.from_dict)

    def compare(self, models: str | Iterable[str], provider: str | None = None) -> Comparison:
        params = {"models": _compare_models(models), "provider": provider}
        return self._get("/api/v1/compare", params, Comparison.from_dict)

    def models(self) -> list[Model]:
        return self._get("/api/v1/models", {}, _models)

    def providers(self) -> list[Provider]:
        return self._get("/api/v1/providers", {}, _providers)

    def route_models(self) -> list[RouteModel]:
        return self._get("/api/v1/route/models", {}, _route_models)

    # ---- the account API ----

    def me(self) -> dict[str, Any]:
        return self._get("/v1/me", {}, _same)

    def balance(self) -> Balance:
        return self._get("/v1/balance", {}, Balance.from_dict)

    def usage(
        self,
        view: str = "",
        *,
        period: str | None = None,
        start_time: Any = None,
        end_time: Any = None,
        model: str | None = None,
        key_id: str | None = None,
        endpoint: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """`/v1/usage` (view ''), or `/v1/usage/{view}`: logs, summary, costs, models, keys, endpoints."""
        params = _usage_params(period, start_time, end_time, model, key_id, endpoint, limit)
        return self._get(_usage_path(view), params, _same)

    def billing_history(self, limit: int | None = None, starting_after: str | None = None) -> dict[str, Any]:
        return self._get("/v1/billing/history", {"limit": limit, "starting_after": starting_after}, _same)

    # ---- the routing gateway ----

    @overload
    def chat(
        self, model: str, messages: list[dict[str, Any]], *, stream: Literal[False] = False, **params: Any
    ) -> ChatCompletion: ...

    @overload
    def chat(
        self, model: str, messages: list[dict[str, Any]], *, stream: Literal[True], **params: Any
    ) -> ChatStream: ...

    def chat(
        self, model: str, messages: list[dict[str, Any]], *, stream: bool = False, **params: Any
    ) -> ChatCompletion | ChatStream:
        """An OpenAI-compatible chat completion routed to the cheapest live provider."""
        body = self._chat_body(model, messages, stream, params)
        url = self._config.origin + "/api/v1/route/chat/completions"
        if not stream:
            response = self._send("POST", "/api/v1/route/chat/completions", False, json=body)
            return ChatCompletion(_http.check(response, self._config.secrets()))
        request = self._http.build_request("POST", url, json=body, headers=self._config.headers())
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise APIConnectionError(f"POST /api/v1/route/chat/completions: {type(exc).__name__}") from None
        if response.status_code >= 400:
            response.read()
            response.close()
            _http.check(response, self._config.secrets())
        return ChatStream(response)

    def openai_client(self, **kwargs: Any) -> Any:
        """An `openai.OpenAI` pointing at the gateway, with the API key and X-Provider-Keys set."""
        return _openai_module().OpenAI(**{**self._openai_kwargs(), **kwargs})

    def async_openai_client(self, **kwargs: Any) -> Any:
        return _openai_module().AsyncOpenAI(**{**self._openai_kwargs(), **kwargs})

    # ---- live prices ----

    def subscribe_prices(
        self,
        model: str | None = None,
        provider: str | None = None,
        min_change_pct: Decimal | float | str | None = None,
        **options: Any,
    ) -> Iterator[PriceTick]:
        """A blocking iterator of live price ticks (reconnects by itself); close it to stop."""
        agen = subscriptions.subscribe_prices(
            self._config.ws_url, self._config.api_key, model, provider, min_change_pct, **options
        )
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    tick = loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
                yield tick
        finally:
            loop.run_until_complete(agen.aclose())
            loop.close()


class AsyncCoaxiomClient(_Base):
    """The asyncio client: the same methods, awaited."""

    def __init__(
        self,
        api_key: str | None = None,
        provider_keys: Mapping[str, str] | None = None,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(api_key, provider_keys, base_url, timeout, max_retries)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncCoaxiomClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send(self, method: str, path: str, retry: bool, **kwargs: Any) -> httpx.Response:
        url = self._config.origin + path
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, url, headers=self._config.headers(), **kwargs)
            except httpx.TransportError as exc:
                connect = isinstance(exc, httpx.ConnectError)
                if (retry or connect) and attempt < self._config.max_retries:
                    await asyncio.sleep(_http.backoff(attempt, None))
                    attempt += 1
                    continue
                raise APIConnectionError(f"{method} {path}: {type(exc).__name__}") from None
            if retry and _http.should_retry(response) and attempt < self._config.max_retries:
                await asyncio.sleep(_http.backoff(attempt, response.headers.get("retry-after")))
                attempt += 1
                continue
            return response

    async def _get(self, path: str, params: dict[str, Any], parse: Callable[[Any], T]) -> T:
        response = await self._send("GET", path, True, params=_http.clean_params(params))
        return parse(_http.check(response, self._config.secrets()))

    async def prices(self, model: str | None = None, provider: str | None = None) -> Prices:
        return await self._get("/api/v1/prices", {"model": model, "provider": provider}, Prices.from_dict)

    async def history(
        self,
        model: str,
        provider: str,
        days: int = 30,
        interval: str = "1d",
        variant: str | None = None,
        dimension: str | None = None,
    ) -> History:
        params = {
            "model": model,
            "provider": provider,
            "days": days,
            "interval": interval,
            "variant": variant,
            "dimension": dimension,
        }
        return await self._get("/api/v1/history", params, History.from_dict)

    async def compare(self, models: str | Iterable[str], provider: str | None = None) -> Comparison:
        params = {"models": _compare_models(models), "provider": provider}
        return await self._get("/api/v1/compare", params, Comparison.from_dict)

    async def models(self) -> list[Model]:
        return await self._get("/api/v1/models", {}, _models)

    async def providers(self) -> list[Provider]:
        return await self._get("/api/v1/providers", {}, _providers)

    async def route_models(self) -> list[RouteModel]:
        return await self._get("/api/v1/route/models", {}, _route_models)

    async def me(self) -> dict[str, Any]:
        return await self._get("/v1/me", {}, _same)

    async def balance(self) -> Balance:
        return await self._get("/v1/balance", {}, Balance.from_dict)

    async def usage(
        self,
        view: str = "",
        *,
        period: str | None = None,
        start_time: Any = None,
        end_time: Any = None,
        model: str | None = None,
        key_id: str | None = None,
        endpoint: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        params = _usage_params(period, start_time, end_time, model, key_id, endpoint, limit)
        return await self._get(_usage_path(view), params, _same)

    async def billing_history(self, limit: int | None = None, starting_after: str | None = None) -> dict[str, Any]:
        return await self._get("/v1/billing/history", {"limit": limit, "starting_after": starting_after}, _same)

    @overload
    async def chat(
        self, model: str, messages: list[dict[str, Any]], *, stream: Literal[False] = False, **params: Any
    ) -> ChatCompletion: ...

    @overload
    async def chat(
        self, model: str, messages: list[dict[str, Any]], *, stream: Literal[True], **params: Any
    ) -> AsyncChatStream: ...

    async def chat(
        self, model: str, messages: list[dict[str, Any]], *, stream: bool = False, **params: Any
    ) -> ChatCompletion | AsyncChatStream:
        body = self._chat_body(model, messages, stream, params)
        url = self._config.origin + "/api/v1/route/chat/completions"
        if not stream:
            response = await self._send("POST", "/api/v1/route/chat/completions", False, json=body)
            return ChatCompletion(_http.check(response, self._config.secrets()))
        request = self._http.build_request("POST", url, json=body, headers=self._config.headers())
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise APIConnectionError(f"POST /api/v1/route/chat/completions: {type(exc).__name__}") from None
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            _http.check(response, self._config.secrets())
        return AsyncChatStream(response)

    def openai_client(self, **kwargs: Any) -> Any:
        return _openai_module().OpenAI(**{**self._openai_kwargs(), **kwargs})

    def async_openai_client(self, **kwargs: Any) -> Any:
        return _openai_module().AsyncOpenAI(**{**self._openai_kwargs(), **kwargs})

    def subscribe_prices(
        self,
        model: str | None = None,
        provider: str | None = None,
        min_change_pct: Decimal | float | str | None = None,
        **options: Any,
    ) -> AsyncGenerator[PriceTick, None]:
        """`async for tick in client.subscribe_prices(model=…)`: live ticks, reconnecting with backoff."""
        return subscriptions.subscribe_prices(
            self._config.ws_url, self._config.api_key, model, provider, min_change_pct, **options
        )
