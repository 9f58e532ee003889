"""Price sources the server polls, and how their last polls went."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from datasources.catalog import precedence as order
from datasources.db import models as db
from datasources.money import blended
from schema.bounds import Page
from schema.catalog import Price
from schema.context import Info

DISAGREEMENTS = Page(default=50, maximum=500)


@strawberry.type(
    description="An offer whose price from this source differs from the offer's own (set by a source ranked "
    "higher, or speaking later) by more than thresholdPct of the blended price."
)
class PriceDisagreement:
    item: strawberry.Private[order.Disagreement]
    offer: Price = strawberry.field(description="The offer at its own price, and the source that set it.")

    @strawberry.field(description="This source's input price, USD per 1M tokens.")
    def input_per_1m(self) -> Decimal:
        return self.item.other_input_per_1m

    @strawberry.field(description="This source's output price, USD per 1M tokens.")
    def output_per_1m(self) -> Decimal:
        return self.item.other_output_per_1m

    @strawberry.field
    def blended_per_1m(self) -> Decimal:
        return blended(self.item.other_input_per_1m, self.item.other_output_per_1m)

    @strawberry.field(description="When this source last gave the price.")
    def observed_at(self) -> datetime:
        return self.item.other_observed_at

    @strawberry.field(description="This source's blended price against the offer's, in percent.")
    def change_pct(self) -> Decimal:
        return self.item.change_pct


@strawberry.type(
    description="A price source: polled by the server, imported, or an operator's. A failing source keeps its "
    "last prices."
)
class PriceSource:
    row: strawberry.Private[db.PriceSource]

    @strawberry.field(description="openrouter, openrouter-endpoints, litellm, modelsdev, file, replay or admin.")
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="Where the source ranks when several price one offer: 0 comes first.")
    def precedence(self) -> int:
        return order.rank("", self.row.name)

    @strawberry.field(
        description=f"Offers whose price from this source differs from their own by more than thresholdPct "
        f"(default {order.DISAGREEMENT_PCT}) percent, the widest first.",
        extensions=[DISAGREEMENTS],
    )
    async def disagreements(
        self, info: Info, threshold_pct: Decimal = order.DISAGREEMENT_PCT, first: int = DISAGREEMENTS.default
    ) -> list[PriceDisagreement]:
        DISAGREEMENTS.check(first)
        async with info.context.sessionmaker() as session:
            found = await order.disagreements(session, self.row.name, threshold_pct)
        catalog = info.context.catalog
        return [
            PriceDisagreement(item=d, offer=Price(row=catalog.offers[d.offer_id], catalog=catalog))
            for d in found
            if d.offer_id in catalog.offers
        ][:first]

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
