"""The OpenAPI 3.1 document of the price API, as the endpoints in price_api.py answer."""

from __future__ import annotations

from typing import Any

NUMBER = {"type": "number"}
NULLABLE_NUMBER = {"type": ["number", "null"]}
STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
INTEGER = {"type": "integer"}
NULLABLE_INTEGER = {"type": ["integer", "null"]}
BOOLEAN = {"type": "boolean"}
STATUS = {"type": "string", "enum": ["live", "stale", "unavailable"]}
DIMENSIONS = ["blended", "input", "output", "cache_read"]
RATES = {
    "cache_read_per_1m": NULLABLE_NUMBER,
    "cache_write_per_1m": NULLABLE_NUMBER,
    "cache_write_1h_per_1m": NULLABLE_NUMBER,
    "reasoning_per_1m": NULLABLE_NUMBER,
}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or list(properties)}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": STRING, "code": INTEGER}),
    "Price": _object(
        {
            "provider": STRING,
            "input_per_1m": NUMBER,
            "output_per_1m": NUMBER,
            "blended_per_1m": NUMBER,
            "context_window": NULLABLE_INTEGER,
            "status": STATUS,
            "model": STRING,
            "variant": STRING,
            "provider_model_id": STRING,
            "supports_vision": BOOLEAN,
            "supports_tools": BOOLEAN,
            "updated_at": STRING,
            "price_kind": {"type": "string", "enum": ["priced", "free", "unpriced"]},
            "pricing": _ref("Pricing"),
        },
    ),
    "Pricing": _object(
        {
            **RATES,
            "per_request": NULLABLE_NUMBER,
            "per_search": NULLABLE_NUMBER,
            "tiers": {
                "type": "array",
                "items": _object({"above_tokens": INTEGER, "input_per_1m": NUMBER, "output_per_1m": NUMBER, **RATES}),
            },
        }
    ),
    "PricesResponse": _object({"model": NULLABLE_STRING, "updated_at": NULLABLE_STRING, "prices": _list("Price")}),
    "Candle": _object(
        {
            "date": STRING,
            "open": NUMBER,
            "high": NUMBER,
            "low": NUMBER,
            "close": NUMBER,
            "change_pct": NUMBER,
            "timestamp": STRING,
            "ticks": INTEGER,
        }
    ),
    "HistoryResponse": _object(
        {
            "model": STRING,
            "provider": STRING,
            "interval": {"type": "string", "enum": ["1d", "1h"]},
            "variant": STRING,
            "dimension": {"type": "string", "enum": DIMENSIONS},
            "candles": _list("Candle"),
        }
    ),
    "Comparison": _object(
        {
            "model": STRING,
            "cheapest_provider": NULLABLE_STRING,
            "cheapest_blended": NULLABLE_NUMBER,
            "avg_blended": NULLABLE_NUMBER,
            "provider_count": INTEGER,
            "cheapest_variant": NULLABLE_STRING,
        }
    ),
    "CompareResponse": _object({"updated_at": NULLABLE_STRING, "models": _list("Comparison")}),
    "Model": _object(
        {
            "slug": STRING,
            "display_name": STRING,
            "family": STRING,
            "params_b": NULLABLE_NUMBER,
            "context_window": NULLABLE_INTEGER,
            "provider_count": INTEGER,
            "is_benchmark": BOOLEAN,
        }
    ),
    "ModelsResponse": _object({"models": _list("Model")}),
    "Provider": _object(
        {
            "slug": STRING,
            "name": STRING,
            "model_count": INTEGER,
            "status": {"type": "string", "enum": ["operational", "degraded", "unavailable"]},
            "signup_url": NULLABLE_STRING,
        }
    ),
    "ProvidersResponse": _object({"providers": _list("Provider")}),
}


def _param(name: str, description: str, required: bool = False, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema or STRING}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "missing or invalid parameter (named in `error`)",
        401: "invalid or revoked API key",
        402: "the endpoint (or that much history) needs a higher plan",
        404: "unknown model or provider slug",
        429: "quota spent; see Retry-After (seconds) and the X-RateLimit-* headers",
    }
    content = {"application/json": {"schema": _ref("Error")}}
    return {str(code): {"description": reasons[code], "content": content} for code in codes}


def _operation(summary: str, response: str, parameters: list[dict[str, Any]], plan: str, *codes: int) -> dict[str, Any]:
    ok = {"200": {"description": "OK", "content": {"application/json": {"schema": _ref(response)}}}}
    return {
        "get": {
            "summary": summary,
            "description": f"Plan: {plan}.",
            "parameters": parameters,
            "responses": {**ok, **_errors(401, 429, *codes)},
        }
    }


MODEL = _param("model", "Model slug (or any known spelling), e.g. llama-3.1-70b")
PROVIDER = _param("provider", "Provider slug, e.g. groq")


def document(server: str = "/") -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pricegraph price API", "version": "1.1"},
        "servers": [{"url": f"{server}/api/v1" if server != "/" else "/api/v1"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "cxm_… API key"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": {
            "/prices": _operation(
                "Live prices across providers", "PricesResponse", [MODEL, PROVIDER], "free", 400, 404
            ),
            "/history": _operation(
                "OHLC candles of the blended price for a model at a provider",
                "HistoryResponse",
                [
                    {**MODEL, "required": True},
                    {**PROVIDER, "required": True},
                    _param(
                        "days",
                        "Days of history, 1-365 (over 30 needs team)",
                        schema={"type": "integer", "minimum": 1, "maximum": 365, "default": 30},
                    ),
                    _param(
                        "interval",
                        "Candle interval (1h needs team)",
                        schema={"type": "string", "enum": ["1d", "1h"], "default": "1d"},
                    ),
                    _param("variant", "One variant of the provider's offer (default: its default build)"),
                    _param(
                        "dimension",
                        "What the candles measure: the blended price, or input, output or cache_read",
                        schema={"type": "string", "enum": DIMENSIONS, "default": "blended"},
                    ),
                ],
                "developer",
                400,
                402,
                404,
            ),
            "/compare": _operation(
                "Compare up to 5 models",
                "CompareResponse",
                [_param("models", "Comma-separated model slugs, at most 5", required=True), PROVIDER],
                "team",
                400,
                402,
                404,
            ),
            "/models": _operation(
                "Tracked models",
                "ModelsResponse",
                [_param("family", "Only this family, e.g. llama"), PROVIDER],
                "free",
                404,
            ),
            "/providers": _operation("Tracked providers", "ProvidersResponse", [], "free"),
        },
    }
