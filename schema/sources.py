"""Price sources the server polls, and how their last polls went."""

from __future__ import annotations

from datetime import datetime

import strawberry

from datasources.db import models as db


@strawberry.type(description="A price source polled by the server. A failing source keeps its last prices.")
class PriceSource:
    row: strawberry.Private[db.PriceSource]

    @strawberry.field(description="openrouter, openrouter-endpoints, litellm, file or replay.")
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="The last poll, successful or not; null before the first.")
    def last_poll_at(self) -> datetime | None:
        return self.row.last_poll_at

    @strawberry.field(description="The last poll that applied a snapshot; null if none has.")
    def last_ok(self) -> datetime | None:
        return self.row.last_ok_at

    @strawberry.field(description="Why the last failed poll failed; kept after later successes (compare the times).")
    def last_error(self) -> str | None:
        return self.row.last_error

    @strawberry.field
    def last_error_at(self) -> datetime | None:
        return self.row.last_error_at

    @strawberry.field(description="Offers in the last applied snapshot (replay: live offers it has set).")
    def offers(self) -> int:
        return self.row.offers
