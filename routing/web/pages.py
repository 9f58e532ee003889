"""The public pages: the live price board (`/`) and a model's offers with their candles (`/models/{slug}`)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from datasources import board
from datasources.candles import Candle, Interval
from datasources.errors import NotFound
from datasources.pricebook import Catalog, OfferRow
from datasources.prices import cheapest
from routing.web.browser import page_data, render, signed_in


def money(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _offer(catalog: Catalog, offer: OfferRow) -> dict[str, Any]:
    return {
        "id": offer.id,
        "provider": catalog.providers[offer.provider_id].slug,
        "variant": offer.variant,
        "blended": money(board.blended_of(offer)),
        "input": money(offer.input_per_1m),
        "output": money(offer.output_per_1m),
        "status": offer.status.value.upper(),
        "kind": offer.price_kind.value.upper(),
        "standard": offer.service_tier is None,
    }


async def _moves(request: Request) -> Mapping[int, board.Move]:
    moves: board.Moves = request.app.state.board_moves
    return await moves.current(request.app.state.sessionmaker)


async def price_board(request: Request) -> Response:
    await signed_in(request)
    catalog: Catalog = request.app.state.book.catalog
    rows = board.rows(catalog, await _moves(request))
    families = sorted({row.model.family for row in rows if row.model.family})
    providers = sorted(catalog.provider_by_slug)
    data = {row.model.slug: [_offer(catalog, o) for o in row.offers] for row in rows}
    return render(
        request,
        "board.html",
        {
            "rows": rows,
            "families": families,
            "providers": providers,
            "catalog": catalog,
            "money": money,
            "blended": board.blended_of,
            "data": page_data(data),
        },
    )


def _candle(candle: Candle) -> dict[str, Any]:
    return {
        "time": int(candle.start.timestamp()),
        "open": money(candle.open),
        "high": money(candle.high),
        "low": money(candle.low),
        "close": money(candle.close),
    }


async def model_page(request: Request) -> Response:
    await signed_in(request)
    catalog: Catalog = request.app.state.book.catalog
    try:
        model = catalog.find_model(request.path_params["slug"])
    except NotFound:
        return render(request, "not_found.html", {"what": request.path_params["slug"]}, status=404)
    interval = Interval.HOUR if request.query_params.get("interval") == "hour" else Interval.DAY
    offers = catalog.model_offers(model.id)  # cheapest first
    async with request.app.state.sessionmaker() as session:
        candles = await board.model_candles(session, offers, interval)
    moves = await _moves(request)
    data = {
        "model": model.slug,
        "interval": "hour" if interval is Interval.HOUR else "day",
        "step": int(interval.step.total_seconds()),
        "offers": [{**_offer(catalog, o), "candles": [_candle(c) for c in candles.get(o.id, [])]} for o in offers],
    }
    return render(
        request,
        "model.html",
        {
            "model": model,
            "offers": offers,
            "catalog": catalog,
            "cheapest": cheapest(offers),
            "marker": board.marker(offers),
            "moves": moves,
            "interval": data["interval"],
            "money": money,
            "blended": board.blended_of,
            "data": page_data(data),
        },
    )
