"""LiteLLM and OpenRouter importers against the shipped fixtures (tests/fixtures), the full real files in
../shared/data (real-data tests), and bad input."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import replace
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
from datasources.catalog.seed import SEED_PATH, load_seed, offer_from_dict, offer_to_dict
from datasources.pricing import Dimensions, PriceKind, Rates, Tier
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


def offer(offers: list[OfferEntry], provider: str, slug: str, variant: str = "") -> OfferEntry:
    (found,) = [o for o in offers if (o.provider, o.model.slug, o.variant) == (provider, slug, variant)]
    return found


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
    gpt5 = offer(offers, "openai", "gpt-5", "priority")  # service tiers and every dimension are in the seed
    assert (gpt5.input_per_1m, gpt5.output_per_1m, gpt5.dimensions.cache_read) == (D("2.5"), D("20"), D("0.25"))
    pro = offer(offers, "google", "gemini-2.5-pro")
    assert [t.above for t in pro.dimensions.tiers] == [200000]


def test_seed_writes_every_dimension_and_omits_the_unpriced(litellm_offers: list[OfferEntry]) -> None:
    for o in litellm_offers:
        assert offer_from_dict(json.loads(json.dumps(offer_to_dict(o)))) == o
    plain = offer_to_dict(offer(litellm_offers, "cerebras", "llama-3.1-70b"))
    assert not {"cache_read_per_1m", "per_search", "tiers", "free"} & set(plain)
    pro = offer_to_dict(offer(litellm_offers, "google", "gemini-2.5-pro"))
    assert (pro["cache_read_per_1m"], pro["per_search"]) == ("0.125", "0.035")
    assert pro["tiers"] == [{"above": 200000, "input": "2.5", "output": "15", "cache_read": "0.25"}]
    free = replace(offer(litellm_offers, "cerebras", "llama-3.1-70b"), dimensions=Dimensions(free=True))
    assert offer_to_dict(free)["free"] is True and offer_from_dict(offer_to_dict(free)) == free


# ---------------------------------------------------------------------------------------------
# LiteLLM: every dimension of the price (values checked against the entries in the fixture)
# ---------------------------------------------------------------------------------------------


def test_cache_writes_and_web_search(litellm_offers: list[OfferEntry]) -> None:
    sonnet = offer(litellm_offers, "anthropic", "claude-sonnet-4.5")  # claude-sonnet-4-5
    assert (sonnet.input_per_1m, sonnet.output_per_1m) == (D("3"), D("15"))
    assert sonnet.dimensions == Dimensions(
        cache_read=D("0.3"), cache_write=D("3.75"), cache_write_1h=D("6"), per_search=D("0.01")
    )


def test_reasoning_and_fees(litellm_offers: list[OfferEntry]) -> None:
    research = offer(litellm_offers, "perplexity", "sonar-deep-research")
    assert (research.output_per_1m, research.dimensions.reasoning) == (D("8"), D("3"))
    assert research.dimensions.per_search == D("0.005")  # search_context_cost_per_query, medium
    online = offer(litellm_offers, "perplexity", "pplx-70b-online")
    assert (online.input_per_1m, online.output_per_1m, online.dimensions.per_request) == (D("0"), D("2.8"), D("0.005"))
    assert online.price.kind is PriceKind.PRICED  # priced by the request, not unpriced
    # A 0/0 entry the source does not call free is unpriced.
    assert offer(litellm_offers, "vertex", "llama-3.1-70b").price.kind is PriceKind.UNPRICED


def test_cache_hit_is_a_cache_read(litellm_offers: list[OfferEntry]) -> None:
    # deepseek/deepseek-chat: input_cost_per_token_cache_hit 2.8e-08 and cache_creation_input_token_cost 0.0
    # (a write billed as input: not priced apart), so the bare `deepseek-chat` key, without either, merges.
    chat = offer(litellm_offers, "deepseek", "deepseek-chat")
    assert chat.dimensions == Dimensions(cache_read=D("0.028"))
    data = {"deepseek/deepseek-chat": {**CHAT, "litellm_provider": "deepseek", "input_cost_per_token_cache_hit": 1e-08}}
    (only,) = parse_litellm(data, "x.json")
    assert only.dimensions.cache_read == D("0.01")


def test_context_tiers(litellm_offers: list[OfferEntry]) -> None:
    pro = offer(litellm_offers, "google", "gemini-2.5-pro")  # gemini/gemini-2.5-pro
    assert (pro.input_per_1m, pro.output_per_1m, pro.dimensions.cache_read) == (D("1.25"), D("10"), D("0.125"))
    assert pro.dimensions.tiers == (Tier(200000, Rates(D("2.5"), D("15"), cache_read=D("0.25"))),)
    assert pro.price.rates_for(200000).input == D("1.25") and pro.price.rates_for(200001).input == D("2.5")
    grok = offer(litellm_offers, "xai", "grok-4.3")
    assert grok.dimensions.tiers == (Tier(200000, Rates(D("2.5"), D("5"), cache_read=D("0.4"))),)


def test_tier_thresholds_and_inheritance() -> None:
    entry = {
        **CHAT,
        "cache_read_input_token_cost": 1e-07,
        "input_cost_per_token_above_32k_tokens": 1e-06,  # no output here: the base output
        "output_cost_per_token_above_128k_tokens": 2e-06,  # no input here: the base input
        "cache_read_input_token_cost_above_128k_tokens": 2e-07,
        "input_cost_per_token_above_12hr": 9e-06,  # not in the grammar: not read
        "input_cost_per_token_ultrafast": 9e-06,  # not a service tier we read
    }
    (only,) = parse_litellm({"groq/llama-3.3-70b-versatile": entry}, "x.json")
    assert only.dimensions.tiers == (
        Tier(32000, Rates(D("1"), D("0.79"), cache_read=D("0.1"))),
        Tier(128000, Rates(D("0.59"), D("2"), cache_read=D("0.2"))),
    )


def test_service_tiers_are_variants(litellm_offers: list[OfferEntry]) -> None:
    # gpt-5 (and gpt-5-2025-08-07, equal: merged) prices _batches, _flex and _priority.
    gpt5 = {o.variant: o for o in litellm_offers if (o.provider, o.model.slug) == ("openai", "gpt-5")}
    assert {v: (o.input_per_1m, o.output_per_1m, o.dimensions.cache_read) for v, o in gpt5.items()} == {
        "": (D("1.25"), D("10"), D("0.125")),  # the standard offer, unchanged
        "batch": (D("0.625"), D("5"), D("0.0625")),
        "flex": (D("0.625"), D("5"), D("0.0625")),
        "priority": (D("2.5"), D("20"), D("0.25")),
    }
    assert {o.dimensions.per_search for o in gpt5.values()} == {D("0.01")}  # not priced per tier: inherited
    assert {o.source_key for o in gpt5.values()} == {"gpt-5"}
    # A service tier's context tiers: its own where priced, the standard one's where not.
    pro = {o.variant: o for o in litellm_offers if (o.provider, o.model.slug) == ("google", "gemini-2.5-pro")}
    assert pro["priority"].dimensions.tiers == (Tier(200000, Rates(D("4.5"), D("27"), cache_read=D("0.45"))),)
    assert pro["batch"].dimensions.tiers == (Tier(200000, Rates(D("1.25"), D("7.5"), cache_read=D("0.25"))),)
    assert (pro["flex"].input_per_1m, pro["flex"].dimensions.tiers) == (D("0.625"), pro[""].dimensions.tiers)
    # A dimension a service tier does not price inherits the standard one (claude-sonnet-4-5 batches:
    # no 1-hour write of its own), and service tiers join the key's own variant (azure/eu/o3).
    batch = offer(litellm_offers, "anthropic", "claude-sonnet-4.5", "batch")
    assert (batch.input_per_1m, batch.output_per_1m) == (D("1.5"), D("7.5"))
    assert (batch.dimensions.cache_read, batch.dimensions.cache_write, batch.dimensions.cache_write_1h) == (
        D("0.15"),
        D("1.875"),
        D("6"),
    )
    eu = offer(litellm_offers, "azure", "o3", "eu-batch")
    assert (eu.input_per_1m, eu.output_per_1m, eu.dimensions.cache_read) == (D("1.1"), D("4.4"), D("0.55"))


def test_equal_input_and_output_but_another_dimension_is_another_offer() -> None:
    data = {
        "deepseek-chat": {**CHAT, "litellm_provider": "deepseek"},
        "deepseek/deepseek-chat": {**CHAT, "litellm_provider": "deepseek", "cache_read_input_token_cost": 1e-08},
    }
    offers = parse_litellm(data, "x.json")
    assert len({o.variant for o in offers}) == 2 and {o.dimensions.cache_read for o in offers} == {None, D("0.01")}
    same = {**data, "deepseek-chat": data["deepseek/deepseek-chat"]}
    assert len(parse_litellm(same, "x.json")) == 1


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"cache_read_input_token_cost": "0.1"}, "cache_read_input_token_cost is '0.1', not a number"),
        ({"input_cost_per_token_above_200k_tokens_priority": "x"}, "input_cost_per_token_above_200k_tokens_priority"),
        ({"input_cost_per_request": "5"}, "input_cost_per_request is '5', not a number"),
        ({"input_cost_per_request": -1.0}, "input_cost_per_request"),
        ({"search_context_cost_per_query": {"search_context_size_medium": "a"}}, "search_context_size_medium"),
        ({"search_context_cost_per_query": {"search_context_size_low": 0.01}}, "has no search_context_size_medium"),
        ({"output_cost_per_reasoning_token": [1]}, "output_cost_per_reasoning_token"),
    ],
)
def test_malformed_dimension_names_entry_and_key(extra: dict[str, object], fragment: str) -> None:
    with pytest.raises(CatalogFormatError) as info:
        parse_litellm({"groq/x": {**CHAT, **extra}}, "prices.json")
    assert info.value.entry == "groq/x" and fragment in str(info.value)


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
    claude = by_key[("anthropic", "claude-sample-5", "")]
    assert claude.dimensions == Dimensions(
        cache_read=D("0.4"), cache_write=D("5"), cache_write_1h=D("8"), per_search=D("0.01")
    )
    assert by_key[("openai", "gpt-sample-4", "")].dimensions == Dimensions(
        cache_read=D("1.5"),
        reasoning=D("15"),  # internal_reasoning
        per_search=D("0.01"),  # web_search, USD each
        tiers=(Tier(128000, Rates(D("6"), D("18"), cache_read=D("1.5"), reasoning=D("15"))),),  # overrides
    )
    assert prices(offers, "grok-sample-5") == {("xai", ""): (D("2.5"), D("12"))}  # x-ai is xai
    assert prices(offers, "nova-sample-pro") == {("bedrock", ""): (D("0.8"), D("3.2"))}  # amazon is bedrock
    assert prices(offers, "command-sample") == {("cohere", ""): (D("0"), D("0"))}  # a zero price is a price
    gpt = by_key[("openai", "gpt-sample-4", "")]
    assert (gpt.provider_model_id, gpt.context_window, gpt.max_output_tokens) == ("gpt-sample-4", 131072, 16384)
    assert gpt.supports_vision and gpt.supports_tools
    sonar = by_key[("perplexity", "sonar-sample", "")]
    assert not sonar.supports_vision and not sonar.supports_tools
    # Its :free listing is an offer marked free (0/0 because the source says so, not unpriced).
    assert prices(offers, "gpt-sample-4-mini") == {("openai", ""): (D("0.2"), D("0.8")), ("openai", "free"): (0, 0)}
    free = by_key[("openai", "gpt-sample-4-mini", "free")]
    assert free.dimensions == Dimensions(free=True) and free.price.kind is PriceKind.FREE
    assert by_key[("cohere", "command-sample", "")].price.kind is PriceKind.UNPRICED  # 0/0, not called free
    assert [o for o in offers if o.dimensions.free] == [free]
    # Skipped: moving aliases, variable prices, open weights (by lab or by name).
    assert not any(o.source_key.startswith(("~", "openrouter/")) for o in offers)
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
        ("deepinfra", "free"): (D("0"), D("0")),  # the record of variant free
    }  # not: an unknown host, a disabled endpoint, a variable price
    assert offer(offers, "deepinfra", "llama-sample-3-70b", "free").dimensions == Dimensions(free=True)
    assert not any(o.dimensions.free for o in offers if o.variant != "free")
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
    assert sonnet.dimensions == Dimensions(
        cache_read=D("0.4"),
        cache_write=D("5"),
        cache_write_1h=D("8"),
        per_search=D("0.01"),
        # an override without cache writes keeps the base ones
        tiers=(Tier(200000, Rates(D("8"), D("30"), cache_read=D("0.8"), cache_write=D("5"), cache_write_1h=D("8"))),),
    )
    gpt_oss = offer(offers, "deepinfra", "gpt-oss-sample-90b", "turbo")
    assert gpt_oss.dimensions == Dimensions(cache_read=D("0.05"), reasoning=D("0.6"))
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
    assert not any(o.source_key.startswith(("~", "openrouter/")) for o in offers)
    assert all(o.dimensions.free == o.source_key.endswith(":free") for o in offers)
    assert not prices(offers, "llama-3.3-70b")  # open weights: no first-party price in this format


@pytest.mark.real_data
def test_real_openrouter_endpoints() -> None:
    offers = parse_openrouter_file(REAL_OR_ENDPOINTS)
    llama = prices(offers, "llama-3.3-70b")
    assert llama[("deepinfra", "turbo")] == (D("0.1"), D("0.32"))
    assert llama[("together", "fp8")] == (D("1.04"), D("1.04"))
    assert llama[("groq", "")] == (D("0.59"), D("0.79"))
    assert llama[("sambanova", "turbo")] == (D("0.45"), D("0.9"))  # its discount 0.25 is already applied
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


def test_openrouter_discount_is_already_in_the_prices() -> None:
    """A discounted endpoint's prompt/completion are what it charges: `discount` is not applied again."""
    # In the endpoints fixture sambanova-turbo lists 0.5/1 at discount 0.2, as the real records do.
    llama = prices(parse_openrouter_file(OR_ENDPOINTS), "llama-sample-3-70b")
    assert llama[("sambanova", "turbo")] == (D("0.5"), D("1"))
    pricing = {
        "prompt": "0.0000002058",
        "completion": "0.0000006468",
        "input_cache_read": "0.00000004",
        "discount": 0.853,
    }
    record = {"model_slug": "openai/gpt-4o", "endpoints": [{"provider_slug": "groq", "pricing": pricing}]}
    (only,) = parse_openrouter_endpoints([record], "e.jsonl")
    assert (only.input_per_1m, only.output_per_1m, only.dimensions.cache_read) == (D("0.2058"), D("0.6468"), D("0.04"))


def test_openrouter_pricing_fields() -> None:
    pricing = {
        "prompt": "0.000001",
        "completion": "0.000004",
        "request": "0.005",
        "input_cache_read": "0.0000001",
        "input_cache_write": "0.00000125",
        "input_cache_write_1h": "0.000002",
        "internal_reasoning": "0.000003",
        "web_search": "0.01",
        "image": "0.001",  # not read
        "overrides": [{"min_prompt_tokens": 200000, "prompt": "0.000002"}],
    }
    (only,) = parse_openrouter({"data": [{"id": "openai/gpt-4o", "pricing": pricing}]}, "m.json")
    base = Rates(D("1"), D("4"), D("0.1"), D("1.25"), D("2"), D("3"))
    assert (only.input_per_1m, only.output_per_1m) == (D("1"), D("4"))
    assert only.dimensions == Dimensions(
        cache_read=D("0.1"),
        cache_write=D("1.25"),
        cache_write_1h=D("2"),
        reasoning=D("3"),
        per_request=D("0.005"),
        per_search=D("0.01"),
        tiers=(Tier(200000, replace(base, input=D("2"))),),
    )
    for bad, fragment in [
        ({"input_cache_read": "lots"}, "pricing.input_cache_read is 'lots'"),
        ({"request": [1]}, "pricing.request"),
        ({"overrides": [{"prompt": "0.1"}]}, "has no min_prompt_tokens"),
        ({"overrides": [{"min_prompt_tokens": 1000, "completion": "x"}]}, "pricing.overrides[0].completion"),
    ]:
        with pytest.raises(CatalogFormatError) as info:
            parse_openrouter({"data": [{"id": "openai/gpt-4o", "pricing": {**pricing, **bad}}]}, "m.json")
        assert "openai/gpt-4o" in str(info.value) and fragment in str(info.value)
    variable = {**pricing, "web_search": "-1"}  # any variable price: no offer, as for prompt and completion
    assert parse_openrouter({"data": [{"id": "openai/gpt-4o", "pricing": variable}]}, "m.json") == []


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
