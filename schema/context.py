from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from datasources.callers import Principal
from datasources.errors import DomainError
from datasources.events import MemoryBroker
from datasources.keytable import KeyTable
from datasources.pricebook import Catalog, PriceBook
from datasources.quotas import QuotaBook
from datasources.recorder import Recorder
from schema.loaders import Loaders, build_loaders

if TYPE_CHECKING:
    from schema.limits import GraphQLLimits
    from schema.pacing import Pacer


@dataclass
class Context:
    request: Request | WebSocket
    response: Any
    sessionmaker: async_sessionmaker[AsyncSession]
    principal: Principal | None = None
    auth_error: DomainError | None = None
    connection_params: object = None  # a websocket's connection_init payload
    authorization: str | None = None  # the credential a websocket connected with, to re-check
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = build_loaders(self.sessionmaker)

    @property
    def broker(self) -> MemoryBroker:
        return self.request.app.state.broker

    @property
    def book(self) -> PriceBook:
        return self.request.app.state.book

    @property
    def catalog(self) -> Catalog:
        """The price book's current snapshot; each root field reads one snapshot throughout."""
        return self.book.catalog

    @property
    def quotas(self) -> QuotaBook:
        return self.request.app.state.quotas

    @property
    def recorder(self) -> Recorder:
        return self.request.app.state.recorder

    @property
    def keys(self) -> KeyTable:
        return self.request.app.state.keys

    @property
    def pacer(self) -> Pacer:
        return self.request.app.state.pacer

    @property
    def limits(self) -> GraphQLLimits:
        return self.request.app.state.graphql_limits

    @property
    def caller(self) -> Principal:
        """The authenticated caller, or the reason there is none (raised)."""
        if self.auth_error is not None:
            raise self.auth_error
        assert self.principal is not None
        return self.principal


Info = StrawberryInfo[Context, None]
