"""LiteLLM and OpenRouter importers against the shipped fixtures (tests/fixtures), the full real files in
../shared/data (real-data tests), and bad input."""

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
from tests.conftest import FIXTURES, SHARED_DATA, data_files

REAL_LITELLM = SHARED_DATA / "litellm_model_prices.json"
OR_MODELS = FIXTURES / "openrouter_models.json"  # made up, in OpenRouter's format (see fixtures/README.md)
OR_ENDPOINTS = FIXTURES / "openrouter_endpoints_sample.jsonl"
REAL_OR_MODELS = SHARED_DATA / "openrouter_models.json"
REAL_OR_ENDPOINTS = SHARED_DATA / "openrouter_endpoints_sample.jsonl"

AGGREGATORS = {name for name, slug in SOURCE_PROVIDER_NAMES.items() if slug is None}


def D(text: str) -> Decimal:
    return Decimal(text)


@pytest.fixture(scope="module", params=data_files("litellm_model_prices.json"))
def litellm_path(request: pytest.FixtureRequest) -> Path:
    """The trimmed LiteLLM catalog in tests/fixtures, and the full one (a real-data test)."""
    path: Path = request.param
    return path


@pytest.fixture(scope="module")
def litellm_offers(litellm_path: Path) -> list[OfferEntry]:
    return parse_litellm_file(litellm_path)


def prices(offers: list[OfferEntry], slug: str) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    return {(o.provider, o.variant): (o.input_per_1m, o.output_per_1m) for o in offers if o.model.slug == slug}


# ---------------------------------------------------------------------------------------------
# LiteLLM: the fixture holds these real entries unchanged (tests/test_fixtures.py checks it)
# ---------------------------------------------------------------------------------------------


@pytest.mark.real_data
def test_litellm_counts() -> None:
    offers = parse_litellm_file(REAL_LITELLM)
    assert len({o.model.slug for o in offers}) >= 300
    assert len({o.provider for o in offers}) >= 15


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


def test_deepseek_v3_across_providers(litellm_offers: list[OfferEntry]) -> None:
    found = prices(litellm_offers, "deepseek-v3")
    assert len({provider for provider, _ in found}) >= 4
    assert found[("together", "")] == (D("1.25"), D("1.25"))
    assert found[("deepinfra", "")] == (D("0.32"), D("0.89"))
    assert found[("fireworks", "")] == (D("0.9"), D("0.9"))
    assert found[("hyperbolic", "")] == (D("0.2"), D("0.2"))
    assert found[("deepseek", "")] == (D("0.27"), D("1.1"))
    # Neighbouring models did not leak in (the file has them: V3-0324, V3.1 and R1 at the same hosts).
    neighbours = {"deepseek-v3-0324", "deepseek-v3.1", "deepseek-r1"}
    assert {o.model.slug for o in litellm_offers if o.provider in {"deepinfra", "fireworks"}} >= neighbours
    keys = {o.source_key for o in litellm_offers if o.model.slug == "deepseek-v3"}
    assert not any(("0324" in k or "v3.1" in k.lower() or "r1" in k.lower()) for k in keys)


def test_no_aggregators_and_known_providers(litellm_offers: list[OfferEntry], litellm_path: Path) -> None:
    aggregators = AGGREGATORS | {"openrouter", "vercel_ai_gateway", "github_copilot", "aihubmix"}
    data = json.loads(litellm_path.read_text())
    assert {e.get("litellm_provider") for e in data.values()} >= {"vercel_ai_gateway", "github_copilot", "aihubmix"}
    providers = {o.provider for o in litellm_offers}
    assert providers <= set(PROVIDERS)
    assert not providers & aggregators


def test_offer_keys_unique_and_sorted(litellm_offers: list[OfferEntry]) -> None:
    keys = [(o.provider, o.model.slug, o.variant) for o in litellm_offers]
    assert len(keys) == len(set(keys))
    assert keys == sorted(keys)


def test_deterministic_whatever_the_key_order(litellm_offers: list[OfferEntry], litellm_path: Path) -> None:
    data = json.loads(litellm_path.read_text())
    items = list(data.items())
    random.Random(7).shuffle(items)
    assert parse_litellm(dict(items), str(litellm_path)) == litellm_offers


def test_duplicate_keys_merge_or_split(litellm_offers: list[OfferEntry]) -> None:
    cerebras = [o for o in litellm_offers if o.provider == "cerebras" and o.model.slug == "llama-3.1-70b"]
    assert len(cerebras) == 1  # cerebras/llama-3.1-70b and cerebras/llama3.1-70b, equal prices
    chat = [o for o in litellm_offers if o.provider == "deepseek" and o.model.slug == "deepseek-chat"]
    assert [o.source_key for o in chat] == ["deepseek/deepseek-chat"]


@pytest.mark.real_data
def test_seed_round_trips_to_the_parse() -> None:
    assert load_seed(SEED_PATH) == parse_litellm_file(REAL_LITELLM)


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
        "gemini/gemma-3-27b-it": {
            **CHAT,
            "litellm_provider": "gemini",
            "input_cost_per_token": 0,
            "output_cost_per_token": 0,
        },
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


def test_openrouter_models_first_party_only() -> None:
    offers = parse_openrouter_file(OR_MODELS)
    by_key = {(o.provider, o.model.slug, o.variant): o for o in offers}
    assert {o.provider for o in offers} == {"openai", "anthropic", "google", "xai", "perplexity", "cohere", "bedrock"}
    found = prices(offers, "gpt-sample-4")
    assert found == {("openai", ""): (D("3"), D("12")), ("openai", "batch"): (D("1.5"), D("6"))}
    assert prices(offers, "claude-sample-5") == {("anthropic", ""): (D("4"), D("20"))}
    assert prices(offers, "grok-sample-5") == {("xai", ""): (D("2.5"), D("12"))}  # x-ai is xai
    assert prices(offers, "nova-sample-pro") == {("bedrock", ""): (D("0.8"), D("3.2"))}  # amazon is bedrock
    assert prices(offers, "command-sample") == {("cohere", ""): (D("0"), D("0"))}  # a zero price is a price
    gpt = by_key[("openai", "gpt-sample-4", "")]
    assert (gpt.provider_model_id, gpt.context_window, gpt.max_output_tokens) == ("gpt-sample-4", 131072, 16384)
    assert gpt.supports_vision and gpt.supports_tools
    sonar = by_key[("perplexity", "sonar-sample", "")]
    assert not sonar.supports_vision and not sonar.supports_tools
    assert prices(offers, "gpt-sample-4-mini") == {("openai", ""): (D("0.2"), D("0.8"))}  # not its :free listing
    # Skipped: moving aliases, :free, variable prices, open weights (by lab or by name).
    assert not any(o.source_key.startswith(("~", "openrouter/")) or o.source_key.endswith(":free") for o in offers)
    assert not {
        "gpt-sample-4-auto",
        "gpt-oss-sample-90b",
        "gemma-sample-9b",
        "llama-sample-3-70b",
        "kimi-sample-k9",
    } & {o.model.slug for o in offers}


def test_openrouter_endpoints() -> None:
    offers = parse_openrouter_file(OR_ENDPOINTS)
    llama = prices(offers, "llama-sample-3-70b")
    assert llama == {
        ("deepinfra", ""): (D("0.25"), D("0.4")),
        ("deepinfra", "turbo"): (D("0.11"), D("0.34")),  # a provider_slug suffix is the variant
        ("together", "fp8"): (D("0.95"), D("0.95")),
        ("groq", ""): (D("0.61"), D("0.83")),
        ("sambanova", "turbo"): (D("0.5"), D("1")),  # sambanova-turbo
        ("nebius", "fp8"): (D("0.14"), D("0.42")),
        ("vertex", "us-central1"): (D("0.7"), D("0.7")),
    }  # not: an unknown host, a disabled endpoint, a variable price
    kimi = prices(offers, "kimi-sample-k9")
    assert kimi[("fireworks", "")] != kimi[("fireworks", "fast")]
    assert [o.provider_model_id for o in offers if o.model.slug == "kimi-sample-k9" and o.provider == "together"] == [
        "moonshotai/Kimi-Sample-K9"
    ]  # listed twice at one price: one offer
    groq = {
        o.variant: (o.input_per_1m, o.provider_model_id)
        for o in offers
        if o.model.slug == "gpt-oss-sample-90b" and o.provider == "groq"
    }
    assert len(groq) == 2 and {price for price, _ in groq.values()} == {D("0.15"), D("0.3")}  # two prices: two offers
    assert prices(offers, "claude-sample-5") == {
        ("anthropic", ""): (D("4"), D("20")),
        ("anthropic", "batch"): (D("2"), D("10")),  # the record's variant
        ("bedrock", ""): (D("4"), D("20")),
        ("bedrock", "claude-on-aws"): (D("4"), D("20")),  # anthropic/claude-on-aws is Bedrock
        ("vertex", "global"): (D("4.4"), D("22")),
    }
    sonnet = next(o for o in offers if (o.provider, o.model.slug, o.variant) == ("anthropic", "claude-sample-5", ""))
    assert (sonnet.context_window, sonnet.max_output_tokens, sonnet.supports_vision) == (400000, 64000, True)
    keys = [(o.provider, o.model.slug, o.variant) for o in offers]
    assert len(keys) == len(set(keys))
    assert {o.provider for o in offers} <= set(PROVIDERS)


@pytest.mark.real_data
def test_real_openrouter_models_first_party_only() -> None:
    offers = parse_openrouter_file(REAL_OR_MODELS)
    providers = {o.provider for o in offers}
    assert providers <= {
        "openai",
        "anthropic",
        "google",
        "xai",
        "perplexity",
        "cohere",
        "ai21",
        "bedrock",
        "inception",
        "morph",
    }
    found = prices(offers, "gpt-4o")
    assert found[("openai", "")] == (D("2.5"), D("10"))
    assert found[("openai", "batch")] == (D("1.25"), D("5"))
    assert prices(offers, "claude-sonnet-4.5")[("anthropic", "")] == (D("3"), D("15"))
    assert not any(o.source_key.startswith(("~", "openrouter/")) or o.source_key.endswith(":free") for o in offers)
    assert not prices(offers, "llama-3.3-70b")  # open weights: no first-party price in this format


@pytest.mark.real_data
def test_real_openrouter_endpoints() -> None:
    offers = parse_openrouter_file(REAL_OR_ENDPOINTS)
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
    good = {
        "model_slug": "openai/gpt-4o",
        "variant": "standard",
        "endpoints": [
            {"provider_slug": "openai", "pricing": {"prompt": "0.0000025", "completion": "0.00001"}},
            {"provider_slug": "azure", "pricing": {"prompt": "0.0000025", "completion": "0.00001"}},
        ],
    }
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
        ("together_ai", "together"),
        ("together", "together"),
        ("fireworks_ai", "fireworks"),
        ("fireworks/fast", "fireworks"),
        ("deepinfra/turbo", "deepinfra"),
        ("lambda_ai", "lambda"),
        ("gradient_ai", "digitalocean"),
        ("nvidia_nim", "nvidia"),
        ("gemini", "google"),
        ("bedrock_converse", "bedrock"),
        ("vertex_ai-anthropic_models", "vertex"),
        ("azure_ai", "azure"),
        ("codestral", "mistral"),
        ("text-completion-openai", "openai"),
        ("amazon-bedrock", "bedrock"),
        ("google-vertex/us-east5", "vertex"),
        ("openrouter", None),
        ("vercel_ai_gateway", None),
        ("github_copilot", None),
        ("aihubmix", None),
        ("ollama", None),
        ("made-up", None),
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
