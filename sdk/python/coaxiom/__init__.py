"""The Coaxiom SDK: LLM-inference prices, cost-aware routing and live price ticks."""

from __future__ import annotations

from coaxiom._config import DEFAULT_BASE_URL, VERSION, encode_provider_keys
from coaxiom.client import AsyncCoaxiomClient, CoaxiomClient
from coaxiom.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    CoaxiomError,
    InternalServerError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
)
from coaxiom.streaming import AsyncChatStream, ChatStream
from coaxiom.types import (
    Balance,
    Candle,
    ChatCompletion,
    ChatCompletionChunk,
    CoaxiomMeta,
    Comparison,
    History,
    Model,
    ModelComparison,
    Price,
    Prices,
    PriceTick,
    Provider,
    RouteModel,
    RouteProvider,
)

__version__ = VERSION
__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIError",
    "AsyncChatStream",
    "AsyncCoaxiomClient",
    "AuthenticationError",
    "BadRequestError",
    "Balance",
    "Candle",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatStream",
    "CoaxiomClient",
    "CoaxiomError",
    "CoaxiomMeta",
    "Comparison",
    "History",
    "InternalServerError",
    "Model",
    "ModelComparison",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "Price",
    "PriceTick",
    "Prices",
    "Provider",
    "RateLimitError",
    "RouteModel",
    "RouteProvider",
    "encode_provider_keys",
]
