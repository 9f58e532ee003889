from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from resolvers.loaders import Loaders, build_loaders


@dataclass
class Context:
    request: Request | WebSocket
    response: Any
    sessionmaker: async_sessionmaker[AsyncSession]
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = build_loaders(self.sessionmaker)


Info = StrawberryInfo[Context, None]
