from __future__ import annotations

from datetime import datetime

import strawberry

from datasources.events import StatusChanged
from schema.catalog import OfferStatus


@strawberry.type(description="An offer moved between live, stale and unavailable.")
class OfferStatusChange:
    row: strawberry.Private[StatusChanged]

    @strawberry.field
    def model(self) -> str:
        return self.row.model

    @strawberry.field
    def provider(self) -> str:
        return self.row.provider

    @strawberry.field
    def variant(self) -> str:
        return self.row.variant

    @strawberry.field
    def status(self) -> OfferStatus:
        return OfferStatus(self.row.status)

    @strawberry.field
    def previous_status(self) -> OfferStatus:
        return OfferStatus(self.row.previous_status)

    @strawberry.field
    def changed_at(self) -> datetime:
        return self.row.changed_at
