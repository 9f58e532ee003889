"""LiteLLM and OpenRouter importers against the real files in /work/shared/data, plus bad input."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from datasources.catalog.entries import CatalogFormatError, OfferEntry
from datasources.catalog.litellm import parse_litellm, parse_litellm_file
from datasources.catalog.openrouter import (
    parse_openrouter,
    parse_openrouter_endpoints,
    parse_openrouter_file,
)
from datasources.catalog.providers import PROVIDERS, SOURCE_PROVIDER_NAMES, provider_slug
from datasources.catalog.seed import SEED_PATH, load_seed

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LITELLM = DATA / "litellm_model_prices.json"
OR_MODELS = DATA / "openrouter_models.json"
OR_ENDPOINTS = DATA / "openrouter_endpoints_sample.jsonl"

needs_data = pytest.mark.skipif(
    not LITELLM.exists(), reason=f"real price data not found at {DATA} (shared/data is not checked out)"
)
AGGREGATORS = {name for name, slug in SOURCE_PROVIDER_NAMES.items() if slug is None}


def D(text: str) -> Decimal:
    return Decimal(text)


@pytest.fixture(scope="module")
def litellm_offers() -> list[OfferEntry]:
    if not LITELLM.exists():
        pytest.skip(f"real price data not found at {DATA}")
    return parse_litellm_file(LITELLM)


def prices(offers: list[OfferEntry], slug: str) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    return {
        (o.provider, o.variant): (o.input_per_1m, o.output_per_1m) for o in offers if o.model.slug == slug
    }


# ---------------------------------------------------------------------------------------------
# LiteLLM, real file
# ---------------------------------------------------------------------------------------------


@needs_data
def test_litellm_counts(litellm_offers: list[OfferEntry]) -> None:
    assert len({o.model.slug for o in litellm_offers}) >= 300
    assert len({o.provider for o in litellm_offers}) >= 15


@needs_data
def test_llama_33_70b_across_providers(litellm_offers: list[OfferEntry]) -> None:
    found = prices(litellm_offers, "llama-3.3-70b")
    assert len({provider for provider, _ in found}) >= 4
    assert found[("together", "turbo")] == (D("1.04"), D("1.04"))
    assert found[("cerebras", "")] == (D("0.85"), D("1.2"))
    assert found[("sambanova", "")] == (D("0.6"), D("1.2"))
    assert found[("fireworks", "")] == (D("0.9"), D("0.9"))
    assert found[("lambda", "fp8")] == (D("0.12"), D("0.3"))
    # DeepInfra sells two variants at different prices: both are kept.
    assert found[("deepinfra", "")] == (D("0.23"), D("0.4"))
    assert found[("deepinfra", "turbo")] == (D("0.1"), D("0.32"))


@needs_data
def test_deepseek_v3_across_providers(litellm_offers: list[OfferEntry]) -> None:
    found = prices(litellm_offers, "deepseek-v3")
    assert len({provider for provider, _ in found}) >= 4
    assert found[("together", "")] == (D("1.25"), D("1.25"))
    assert found[("deepinfra", "")] == (D("0.32"), D("0.89"))
    assert found[("fireworks", "")] == (D("0.9"), D("0.9"))
    assert found[("hyperbolic", "")] == (D("0.2"), D("0.2"))
    assert found[("deepseek", "")] == (D("0.27"), D("1.1"))
    # Neighbouring models did not leak in.
    keys = {o.source_key for o in litellm_offers if o.model.slug == "deepseek-v3"}
    assert not any(("0324" in k or "v3.1" in k.lower() or "r1" in k.lower()) for k in keys)


@needs_data
def test_no_aggregators_and_known_providers(litellm_offers: list[OfferEntry]) -> None:
    providers = {o.provider for o in litellm_offers}
    assert providers <= set(PROVIDERS)
    assert not providers & (AGGREGATORS | {"openrouter", "vercel_ai_gateway", "github_copilot", "aihubmix"})


@needs_data
def test_offer_keys_unique_and_sorted(litellm_offers: list[OfferEntry]) -> None:
    keys = [(o.provider, o.model.slug, o.variant) for o in litellm_offers]
    assert len(keys) == len(set(keys))
    assert keys == sorted(keys)


@needs_data
def test_deterministic_whatever_the_key_order(litellm_offers: list[OfferEntry]) -> None:
    data = json.loads(LITELLM.read_text())
    items = list(data.items())
    random.Random(7).shuffle(items)
    assert parse_litellm(dict(items), str(LITELLM)) == litellm_offers


@needs_data
def test_duplicate_keys_merge_or_split(litellm_offers: list[OfferEntry]) -> None:
    cerebras = [o for o in litellm_offers if o.provider == "cerebras" and o.model.slug == "llama-3.1-70b"]
    assert len(cerebras) == 1  # cerebras/llama-3.1-70b and cerebras/llama3.1-70b, equal prices
    chat = [o for o in litellm_offers if o.provider == "deepseek" and o.model.slug == "deepseek-chat"]
    assert [o.source_key for o in chat] == ["deepseek/deepseek-chat"]


@needs_data
def test_seed_round_trips_to_the_parse(litellm_offers: list[OfferEntry]) -> None:
    assert load_seed(SEED_PATH) == litellm_offers


def test_seed_loads_without_shared_data() -> None:
    offers = load_seed()
    assert len(offers) > 1000
    assert all(isinstance(o.input_per_1m, Decimal) for o in offers)


# ---------------------------------------------------------------------------------------------
# LiteLLM, bad and old input
# ---------------------------------------------------------------------------------------------

CHAT = {"litellm_provider": "groq", "mode": "chat", "input_cost_per_token": 5.9e-07, "output_cost_per_token": 7.9e-07}


def test_old_catalog_with_max_tokens() -> None:
    entry = {**CHAT, "max_tokens": 8192, "supports_function_calling": True}
    (offer,) = parse_litellm({"groq/llama-3.3-70b-versatile": entry}, "old.json")
    assert (offer.provider, offer.model.slug, offer.variant) == ("groq", "llama-3.3-70b", "")
    assert offer.provider_model_id == "llama-3.3-70b-versatile"
    assert (offer.input_per_1m, offer.output_per_1m) == (D("0.59"), D("0.79"))
    assert (offer.context_window, offer.supports_tools, offer.supports_vision) == (8192, True, False)


def test_zero_price_is_a_price_and_missing_price_skips() -> None:
    data = {
        "gemini/gemma-3-27b-it": {**CHAT, "litellm_provider": "gemini", "input_cost_per_token": 0, "output_cost_per_token": 0},
        "groq/llama-3.1-8b-instant": {"litellm_provider": "groq", "mode": "chat"},
    }
    (offer,) = parse_litellm(data, "x.json")
    assert offer.model.slug == "gemma-3-27b" and offer.input_per_1m == 0


def test_different_prices_on_one_key_become_distinct_variants() -> None:
    data = {
        "deepseek-chat": {**CHAT, "litellm_provider": "deepseek"},
        "deepseek/deepseek-chat": {**CHAT, "litellm_provider": "deepseek", "input_cost_per_token": 1e-06},
    }
    offers = parse_litellm(data, "x.json")
    assert len(offers) == 2
    assert len({o.variant for o in offers}) == 2


@pytest.mark.parametrize(
    ("data", "entry", "fragment"),
    [
        ([], None, "not a JSON object"),
        ({"groq/llama-3.3-70b-versatile": "oops"}, "groq/llama-3.3-70b-versatile", "not an object"),
        ({"groq/x": {**CHAT, "input_cost_per_token": "abc"}}, "groq/x", "not a number"),
        ({"groq/x": {**CHAT, "output_cost_per_token": -1e-06}}, "groq/x", "output_cost_per_token"),
        ({"groq/x": {**CHAT, "max_input_tokens": 8192.5}}, "groq/x", "not an integer"),
        ({"groq/x": {**CHAT, "input_cost_per_token": True}}, "groq/x", "not a number"),
    ],
)
def test_bad_litellm_input(data: object, entry: str | None, fragment: str) -> None:
    with pytest.raises(CatalogFormatError) as info:
        parse_litellm(data, "prices.json")
    assert info.value.path == "prices.json" and info.value.entry == entry
    assert "prices.json" in str(info.value) and fragment in str(info.value)
    if entry:
        assert entry in str(info.value)


def test_truncated_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    text = json.dumps({"groq/a": CHAT, "groq/b": CHAT}, indent=2)
    path.write_text(text[: len(text) // 2])
    with pytest.raises(CatalogFormatError) as info:
        parse_litellm_file(path)
    assert str(path) in str(info.value) and "line" in str(info.value)


# ---------------------------------------------------------------------------------------------
# OpenRouter
# ---------------------------------------------------------------------------------------------

or_data = pytest.mark.skipif(not OR_MODELS.exists(), reason=f"OpenRouter fixtures not found at {DATA}")


@or_data
def test_openrouter_models_first_party_only() -> None:
    offers = parse_openrouter_file(OR_MODELS)
    providers = {o.provider for o in offers}
    assert providers <= {"openai", "anthropic", "google", "xai", "perplexity", "cohere", "ai21", "bedrock", "inception", "morph"}
    found = prices(offers, "gpt-4o")
    assert found[("openai", "")] == (D("2.5"), D("10"))
    assert found[("openai", "batch")] == (D("1.25"), D("5"))
    assert prices(offers, "claude-sonnet-4.5")[("anthropic", "")] == (D("3"), D("15"))
    assert not any(o.source_key.startswith(("~", "openrouter/")) or o.source_key.endswith(":free") for o in offers)
    assert not prices(offers, "llama-3.3-70b")  # open weights: no first-party price in this format


@or_data
def test_openrouter_endpoints() -> None:
    offers = parse_openrouter_file(OR_ENDPOINTS)
    llama = prices(offers, "llama-3.3-70b")
    assert llama[("deepinfra", "turbo")] == (D("0.1"), D("0.32"))
    assert llama[("together", "fp8")] == (D("1.04"), D("1.04"))
    assert llama[("groq", "")] == (D("0.59"), D("0.79"))
    assert llama[("sambanova", "turbo")] == (D("0.45"), D("0.9"))
    kimi = prices(offers, "kimi-k3")
    assert kimi[("fireworks", "")] != kimi[("fireworks", "fast")]
    keys = [(o.provider, o.model.slug, o.variant) for o in offers]
    assert len(keys) == len(set(keys))
    assert {o.provider for o in offers} <= set(PROVIDERS)


def test_openrouter_variable_price_skipped_and_garbage_rejected() -> None:
    model = {"id": "openai/gpt-4o", "pricing": {"prompt": "0.0000025", "completion": "0.00001"}}
    router = {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}}
    (offer,) = parse_openrouter({"data": [model, router]}, "models.json")
    assert (offer.provider, offer.model.slug, offer.input_per_1m) == ("openai", "gpt-4o", D("2.5"))
    bad = {"id": "openai/gpt-4o", "pricing": {"prompt": "abc", "completion": "0"}}
    with pytest.raises(CatalogFormatError) as info:
        parse_openrouter({"data": [bad]}, "models.json")
    assert "models.json" in str(info.value) and "openai/gpt-4o" in str(info.value)
    with pytest.raises(CatalogFormatError):
        parse_openrouter([], "models.json")


def test_openrouter_endpoint_record_errors(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.jsonl"
    good = {"model_slug": "openai/gpt-4o", "variant": "standard", "endpoints": [
        {"provider_slug": "openai", "pricing": {"prompt": "0.0000025", "completion": "0.00001"}},
        {"provider_slug": "azure", "pricing": {"prompt": "0.0000025", "completion": "0.00001"}},
    ]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(good)[:40] + "\n")
    with pytest.raises(CatalogFormatError) as info:
        parse_openrouter_file(path)
    assert "line 2" in str(info.value) and str(path) in str(info.value)
    offers = parse_openrouter_endpoints([good], "e.jsonl")
    assert [(o.provider, o.model.slug) for o in offers] == [("azure", "gpt-4o"), ("openai", "gpt-4o")]


# ---------------------------------------------------------------------------------------------
# Providers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("together_ai", "together"), ("together", "together"), ("fireworks_ai", "fireworks"),
        ("fireworks/fast", "fireworks"), ("deepinfra/turbo", "deepinfra"), ("lambda_ai", "lambda"),
        ("gradient_ai", "digitalocean"), ("nvidia_nim", "nvidia"), ("gemini", "google"),
        ("bedrock_converse", "bedrock"), ("vertex_ai-anthropic_models", "vertex"), ("azure_ai", "azure"),
        ("codestral", "mistral"), ("text-completion-openai", "openai"), ("amazon-bedrock", "bedrock"),
        ("google-vertex/us-east5", "vertex"), ("openrouter", None), ("vercel_ai_gateway", None),
        ("github_copilot", None), ("aihubmix", None), ("ollama", None), ("made-up", None),
    ],
)
def test_provider_slug(name: str, slug: str | None) -> None:
    assert provider_slug(name) == slug


def test_registry_covers_price_api_providers() -> None:
    documented = "together groq fireworks deepinfra nebius cerebras mistral sambanova xai hyperbolic novita lambda nvidia perplexity cloudflare digitalocean openai"
    assert set(documented.split()) <= set(PROVIDERS)
    assert PROVIDERS["groq"].base_url == "https://api.groq.com/openai/v1"
    groups: dict[str, list[str]] = defaultdict(list)
    for slug, info in PROVIDERS.items():
        groups[info.name].append(slug)
    assert all(len(slugs) == 1 for slugs in groups.values())
