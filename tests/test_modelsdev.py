"""The models.dev importer against the trimmed tree in tests/fixtures/models.dev (real files, unchanged), the
full tree in ../shared/data/models.dev (real-data tests), edited copies in tmp, and the CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from datasources.catalog.entries import CatalogFormatError, OfferEntry
from datasources.catalog.identity import resolve_offer
from datasources.catalog.importer import FORMATS
from datasources.catalog.modelsdev import ModelsDevParse, parse_modelsdev_dir, parse_modelsdev_report
from datasources.catalog.providers import PROVIDERS, provider_slug
from datasources.db.engine import create_engine, sessionmaker
from datasources.db.models import Offer, PriceTick
from datasources.pricing import PriceKind, Rates, Tier
from tests.conftest import FIXTURES, SHARED_DATA, Databases, data_files

ROOT = Path(__file__).resolve().parents[1]
TREE = FIXTURES / "models.dev"
REAL_TREE = SHARED_DATA / "models.dev"


def D(text: str) -> Decimal:
    return Decimal(text)


@cache
def parsed_tree(path: Path) -> ModelsDevParse:
    """One parse per tree and test session (the full tree takes seconds)."""
    return parse_modelsdev_report(path)


@pytest.fixture(scope="module")
def report() -> ModelsDevParse:
    return parsed_tree(TREE)


def by_key(offers: list[OfferEntry]) -> dict[tuple[str, str, str], OfferEntry]:
    return {(o.provider, o.model.slug, o.variant): o for o in offers}


def copy_tree(tmp_path: Path) -> Path:
    """A writable copy of the fixture tree, symlinks kept as symlinks."""
    target = tmp_path / "models.dev"
    shutil.copytree(TREE, target, symlinks=True)
    for path in target.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return target


# ---------------------------------------------------------------------------------------------
# The offers of the fixture tree, every value checked against its TOML file
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Want:
    model_id: str  # provider_model_id, the path under models/ without .toml
    source_dir: str  # the models.dev provider directory
    input: str
    output: str
    cache_read: str | None = None
    cache_write: str | None = None
    reasoning: str | None = None
    tiers: tuple[tuple[int, str, str, str | None], ...] = ()  # (above, input, output, cache_read)
    context: int | None = None
    max_output: int | None = None
    vision: bool = False
    tools: bool = True


# (our provider, canonical model, variant) → what the file says. Where the file has `base_model`, limits,
# modalities and tool_call come from models/<lab>/<model>.toml (noted).
EXPECTED: dict[tuple[str, str, str], Want] = {
    ("anthropic", "claude-sonnet-4.5", ""): Want(
        "claude-sonnet-4-5", "anthropic", "3", "15", "0.3", "3.75", context=200_000, max_output=64_000, vision=True
    ),
    # `claude-opus-4-0` is Anthropic's alias of claude-opus-4-20250514 (same price: one offer).
    ("anthropic", "claude-opus-4", ""): Want(
        "claude-opus-4-0", "anthropic", "15", "75", "1.5", "18.75", context=200_000, max_output=32_000, vision=True
    ),
    ("openai", "gpt-5.4", ""): Want(
        "gpt-5.4",
        "openai",
        "2.5",
        "15",
        "0.25",
        tiers=((272_000, "5", "22.5", "0.5"),),
        context=1_050_000,
        max_output=128_000,
        vision=True,
    ),
    ("openai", "gpt-4o", ""): Want(
        "gpt-4o", "openai", "2.5", "10", "1.25", context=128_000, max_output=16_384, vision=True
    ),
    # A dated snapshot priced differently from gpt-4o is a model of its own (identity.DISTINCT_SNAPSHOTS).
    ("openai", "gpt-4o-2024-05-13", ""): Want(
        "gpt-4o-2024-05-13", "openai", "5", "15", context=128_000, max_output=4_096, vision=True
    ),
    # base_model openai/gpt-5: limits and modalities from the base file.
    ("openai", "gpt-5", ""): Want(
        "gpt-5", "openai", "1.25", "10", "0.125", context=400_000, max_output=128_000, vision=True
    ),
    ("google", "gemini-2.5-pro", ""): Want(
        "gemini-2.5-pro",
        "google",
        "1.25",
        "10",
        "0.125",
        tiers=((200_000, "2.5", "15", "0.25"),),
        context=1_048_576,
        max_output=65_536,
        vision=True,
    ),
    ("google", "gemini-2.5-flash", ""): Want(
        "gemini-2.5-flash", "google", "0.3", "2.5", "0.03", context=1_048_576, max_output=65_536, vision=True
    ),
    # `-latest` is the moving line, not gemini-2.5-flash (different cache price too).
    ("google", "gemini-flash", ""): Want(
        "gemini-flash-latest", "google", "0.3", "2.5", "0.075", context=1_048_576, max_output=65_536, vision=True
    ),
    # Moving aliases stay their own models even at one price.
    ("deepseek", "deepseek-chat", ""): Want(
        "deepseek-chat", "deepseek", "0.14", "0.28", "0.0028", context=1_000_000, max_output=384_000
    ),
    ("deepseek", "deepseek-reasoner", ""): Want(
        "deepseek-reasoner", "deepseek", "0.14", "0.28", "0.0028", context=1_000_000, max_output=384_000
    ),
    ("together", "llama-3.3-70b", "turbo"): Want(
        "meta-llama/Llama-3.3-70B-Instruct-Turbo", "togetherai", "0.88", "0.88", context=131_072, max_output=131_072
    ),
    ("deepinfra", "llama-3.3-70b", "turbo"): Want(
        "meta-llama/Llama-3.3-70B-Instruct-Turbo", "deepinfra", "0.1", "0.32", context=131_072, max_output=16_384
    ),
    # base_model xiaomi/mimo-v2.5: vision and tool_call from the base, limits from the file.
    ("deepinfra", "mimo-v2.5", ""): Want(
        "XiaomiMiMo/MiMo-V2.5",
        "deepinfra",
        "0.4",
        "2",
        "0.08",
        tiers=((256_000, "0.8", "4", "0.16"),),
        context=262_144,
        max_output=16_384,
        vision=True,
    ),
    ("groq", "llama-3.1-8b", ""): Want(
        "llama-3.1-8b-instant", "groq", "0.05", "0.08", context=131_072, max_output=131_072
    ),
    ("groq", "llama-3.3-70b", ""): Want(
        "llama-3.3-70b-versatile", "groq", "0.59", "0.79", context=131_072, max_output=32_768
    ),
    # base_model openai/gpt-oss-120b: context from the base, max output from the file.
    ("groq", "gpt-oss-120b", ""): Want(
        "openai/gpt-oss-120b", "groq", "0.15", "0.6", "0.075", context=131_072, max_output=65_536
    ),
    ("fireworks", "kimi-k2.6", ""): Want(
        "accounts/fireworks/models/kimi-k2p6",
        "fireworks-ai",
        "0.95",
        "4",
        "0.16",
        context=262_000,
        max_output=262_000,
        vision=True,
    ),
    ("fireworks", "kimi-k2.6", "fast"): Want(
        "accounts/fireworks/routers/kimi-k2p6-fast",
        "fireworks-ai",
        "2",
        "8",
        "0.3",
        context=262_000,
        max_output=262_000,
        vision=True,
    ),
    ("wandb", "llama-3.1-8b", ""): Want(
        "meta-llama/Llama-3.1-8B-Instruct", "wandb", "0.22", "0.22", context=128_000, max_output=128_000
    ),
    ("wandb", "llama-3.1-70b", ""): Want(
        "meta-llama/Llama-3.1-70B-Instruct", "wandb", "0.8", "0.8", context=128_000, max_output=128_000
    ),
    ("wandb", "llama-3.3-70b", ""): Want(
        "meta-llama/Llama-3.3-70B-Instruct", "wandb", "0.71", "0.71", context=128_000, max_output=128_000
    ),
    ("mistral", "mistral-large", ""): Want(
        "mistral-large-latest", "mistral", "0.5", "1.5", context=262_144, max_output=262_144, vision=True
    ),
    ("mistral", "mistral-large-3", ""): Want(
        "mistral-large-2512", "mistral", "0.5", "1.5", context=262_144, max_output=262_144, vision=True
    ),
    ("mistral", "mistral-large-2411", ""): Want(
        "mistral-large-2411", "mistral", "2", "6", context=131_072, max_output=16_384
    ),
    # A separate reasoning price.
    ("alibaba", "qwen3-235b-a22b", ""): Want(
        "qwen3-235b-a22b", "alibaba", "0.7", "2.8", reasoning="8.4", context=131_072, max_output=16_384
    ),
    # base_model openai/gpt-4o (limits from the base), own modalities; azure-cognitive-services/gpt-4o is a
    # symlink to this file and merges into it.
    ("azure", "gpt-4o", ""): Want(
        "gpt-4o", "azure", "2.5", "10", "1.25", context=128_000, max_output=16_384, vision=True
    ),
    # `-TEE` (trusted execution environment) is a variant; base_model zhipuai/glm-5.1 gives tool_call.
    ("chutes", "glm-5.1", "tee"): Want(
        "zai-org/GLM-5.1-TEE", "chutes", "0.98", "3.08", "0.49", context=202_752, max_output=65_535
    ),
    # Meta's Llama API: priced 0/0 (unpriced, not free); the serving partner in the id is the variant.
    ("meta", "llama-4-scout", "cerebras"): Want(
        "cerebras-llama-4-scout-17b-16e-instruct", "llama", "0", "0", context=128_000, max_output=4_096
    ),
    ("meta", "llama-4-scout", "fp8"): Want(
        "llama-4-scout-17b-16e-instruct-fp8", "llama", "0", "0", context=128_000, max_output=4_096, vision=True
    ),
}


def test_every_offer_of_the_fixture_tree(report: ModelsDevParse) -> None:
    offers = by_key(report.offers)
    assert sorted(offers) == sorted(EXPECTED)
    assert len({provider for provider, _, _ in offers}) >= 5
    for key, want in EXPECTED.items():
        offer = offers[key]
        dims = offer.dimensions
        assert offer.provider_model_id == want.model_id, key
        assert offer.source_key == f"{want.source_dir}/{want.model_id}", key
        assert (offer.input_per_1m, offer.output_per_1m) == (D(want.input), D(want.output)), key
        assert dims.cache_read == (None if want.cache_read is None else D(want.cache_read)), key
        assert dims.cache_write == (None if want.cache_write is None else D(want.cache_write)), key
        assert dims.reasoning == (None if want.reasoning is None else D(want.reasoning)), key
        assert (dims.cache_write_1h, dims.per_request, dims.per_search, dims.free) == (None, None, None, False), key
        tiers = tuple(Tier(above, Rates(D(i), D(o), None if r is None else D(r))) for above, i, o, r in want.tiers)
        assert dims.tiers == tiers, key
        assert (offer.context_window, offer.max_output_tokens) == (want.context, want.max_output), key
        assert (offer.supports_vision, offer.supports_tools) == (want.vision, want.tools), key
        assert offer.provider in PROVIDERS


def test_prices_are_exact_decimals_and_their_kind(report: ModelsDevParse) -> None:
    offers = by_key(report.offers)
    chat = offers[("deepseek", "deepseek-chat", "")]
    assert isinstance(chat.dimensions.cache_read, Decimal) and str(chat.dimensions.cache_read) == "0.0028"
    assert offers[("anthropic", "claude-sonnet-4.5", "")].price.kind is PriceKind.PRICED
    assert offers[("meta", "llama-4-scout", "cerebras")].price.kind is PriceKind.UNPRICED  # 0/0, not said free
    gpt = offers[("openai", "gpt-5.4", "")].price
    assert gpt.rates_for(272_000).input == D("2.5") and gpt.rates_for(272_001).input == D("5")


def test_skips_by_reason(report: ModelsDevParse) -> None:
    assert report.skipped == Counter(
        {
            # claude-sonnet-4-5-20250929, claude-opus-4-20250514, gpt-4o-2024-11-20 (same price as the
            # undated file) and azure-cognitive-services/gpt-4o (a symlink to azure's file).
            "duplicate model with equal price (merged)": 4,
            "no [cost]": 2,  # google/gemma-4-31b-it, groq/whisper-large-v3
            "not an identifiable chat model": 1,  # google/gemini-embedding-001
            "not a provider: openrouter": 1,
            "not a provider: vercel": 1,  # a one-line link file to openai/gpt-5, as git writes without symlinks
            "dangling symlink": 1,  # zhipuai/glm-4.6v-flash → ../../zai/models/glm-4.6v-flash.toml, absent
        }
    )


def test_duplicates_merge_into_the_preferred_file(report: ModelsDevParse) -> None:
    assert report.sources[("anthropic", "claude-sonnet-4.5", "")] == [
        "anthropic/claude-sonnet-4-5",
        "anthropic/claude-sonnet-4-5-20250929",
    ]
    assert report.sources[("azure", "gpt-4o", "")] == ["azure/gpt-4o", "azure-cognitive-services/gpt-4o"]
    assert report.sources[("openai", "gpt-4o", "")] == ["openai/gpt-4o", "openai/gpt-4o-2024-11-20"]
    assert report.sources[("openai", "gpt-4o-2024-05-13", "")] == ["openai/gpt-4o-2024-05-13"]
    assert report.base_models["deepinfra/XiaomiMiMo/MiMo-V2.5"] == "xiaomi/mimo-v2.5"
    assert parse_modelsdev_dir(TREE) == report.offers
    assert parse_modelsdev_dir(TREE / "providers") == report.offers  # the providers/ directory works too


def test_the_directory_names_map_to_our_providers() -> None:
    assert [provider_slug(name) for name in ("togetherai", "fireworks-ai", "novita-ai", "amazon-bedrock")] == [
        "together",
        "fireworks",
        "novita",
        "bedrock",
    ]
    assert [provider_slug(name) for name in ("google-vertex", "moonshotai", "zai", "llama", "wafer.ai")] == [
        "vertex",
        "moonshot",
        "zai",
        "meta",
        "wafer",
    ]
    for name in ("openrouter", "vercel", "requesty", "helicone", "zenmux", "poe", "302ai", "aihubmix", "kilo"):
        assert provider_slug(name) is None, name
    for name in ("github-copilot", "cloudflare-ai-gateway", "llmgateway", "nano-gpt", "fastrouter"):
        assert provider_slug(name) is None, name
    for name in ("zai-coding-plan", "alibaba-token-plan", "minimax-coding-plan", "moonshotai-cn", "zhipuai"):
        assert provider_slug(name) is None, name


# ---------------------------------------------------------------------------------------------
# Look-alike ids: different models stay apart, spellings of one model meet
# ---------------------------------------------------------------------------------------------

APART: list[tuple[tuple[str, str], tuple[str, str]]] = [
    (("wandb", "meta-llama/Llama-3.1-8B-Instruct"), ("wandb", "meta-llama/Llama-3.1-70B-Instruct")),  # 8B, 70B
    (("wandb", "meta-llama/Llama-3.1-70B-Instruct"), ("wandb", "meta-llama/Llama-3.3-70B-Instruct")),  # 3.1, 3.3
    (("openai", "gpt-4o-2024-05-13"), ("openai", "gpt-4o")),  # a snapshot priced differently
    (("mistral", "mistral-large-latest"), ("mistral", "mistral-large-2512")),  # -latest is the moving line
    (("mistral", "mistral-large-latest"), ("mistral", "mistral-large-2411")),
    (("google", "gemini-flash-latest"), ("google", "gemini-2.5-flash")),
    (("deepseek", "deepseek-chat"), ("deepseek", "deepseek-reasoner")),
    (("anthropic", "claude-opus-4-0"), ("anthropic", "claude-opus-4-1")),
    (("anthropic", "claude-sonnet-4-0"), ("anthropic", "claude-sonnet-4-5")),
    (("moonshot", "kimi-k2-0711-preview"), ("moonshot", "kimi-k2-0905-preview")),
    (("venice", "openai-gpt-54"), ("venice", "openai-gpt-54-mini")),
    (("venice", "openai-gpt-54"), ("venice", "openai-gpt-55")),
    (("venice", "openai-gpt-52"), ("venice", "openai-gpt-52-codex")),
    (("venice", "minimax-m25"), ("venice", "minimax-m27")),
    (("chutes", "zai-org/GLM-5-TEE"), ("chutes", "zai-org/GLM-5.1-TEE")),
    (("mistral", "devstral-2512"), ("mistral", "labs-devstral-small-2512")),  # Devstral 2, Devstral Small 2
    (("nvidia", "mistralai/mistral-small-4-119b-2603"), ("mistral", "mistral-small-2506")),  # Small 4, 3.2
    (("digitalocean", "mistral-3-14B"), ("bedrock", "mistral.ministral-3-8b-instruct")),
    (("digitalocean", "deepseek-3.2"), ("novita", "deepseek/deepseek-v3.2-exp")),
]


@pytest.mark.parametrize(("a", "b"), APART)
def test_look_alikes_stay_apart(a: tuple[str, str], b: tuple[str, str]) -> None:
    first, second = resolve_offer(*a), resolve_offer(*b)
    assert first is not None and second is not None
    assert first.model.slug != second.model.slug


# models.dev's own spellings (the models.dev block of identity.py), each checked against the file's name or
# base_model in ../shared/data/models.dev.
SPELLINGS: list[tuple[str, str, str, str]] = [
    ("chutes", "zai-org/GLM-5.1-TEE", "glm-5.1", "tee"),
    ("chutes", "google/gemma-4-31B-turbo-TEE", "gemma-4-31b", "turbo-tee"),
    ("chutes", "unsloth/Mistral-Nemo-Instruct-2407-TEE", "mistral-nemo", "tee"),
    ("venice", "openai-gpt-54-mini", "gpt-5.4-mini", ""),
    ("venice", "openai-gpt-52-codex", "gpt-5.2-codex", ""),
    ("venice", "minimax-m25", "minimax-m2.5", ""),
    ("venice", "google-gemma-4-31b-it", "gemma-4-31b", ""),
    ("venice", "zai-org-glm-5-1", "glm-5.1", ""),
    ("venice", "z-ai-glm-5-turbo", "glm-5-turbo", ""),
    ("venice", "xiaomi-mimo-v2-5", "mimo-v2.5", ""),
    ("anthropic", "claude-opus-4-0", "claude-opus-4", ""),
    ("anthropic", "claude-sonnet-4-0", "claude-sonnet-4", ""),
    ("moonshot", "kimi-k2-0711-preview", "kimi-k2", ""),
    ("moonshot", "kimi-k2-0905-preview", "kimi-k2-0905", ""),
    ("nvidia", "mistralai/mistral-large-3-675b-instruct-2512", "mistral-large-3", ""),
    ("nvidia", "mistralai/mistral-small-4-119b-2603", "mistral-small-2603", ""),
    ("nvidia", "mistralai/mistral-7b-instruct-v03", "mistral-7b-v0.3", ""),
    ("mistral", "devstral-2512", "devstral-2-123b", ""),
    ("scaleway", "devstral-2-123b-instruct-2512", "devstral-2-123b", ""),
    ("digitalocean", "deepseek-3.2", "deepseek-v3.2", ""),
    ("digitalocean", "mistral-3-14B", "ministral-3-14b", ""),
    # Unchanged by the block: spellings the rules already read.
    ("fireworks", "accounts/fireworks/routers/kimi-k2p6-fast", "kimi-k2.6", "fast"),
    ("vertex", "claude-sonnet-4-5@20250929", "claude-sonnet-4.5", ""),
    ("cloudflare", "@cf/meta/llama-3.3-70b-instruct-fp8-fast", "llama-3.3-70b", "fp8-fast"),
]


@pytest.mark.parametrize(("provider", "model_id", "slug", "variant"), SPELLINGS)
def test_models_dev_spellings(provider: str, model_id: str, slug: str, variant: str) -> None:
    found = resolve_offer(provider, model_id)
    assert found is not None and (found.model.slug, found.variant) == (slug, variant)


# ---------------------------------------------------------------------------------------------
# The full tree (a real-data test) and the fixture tree: parse, breadth, no look-alike merged
# ---------------------------------------------------------------------------------------------

SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])")
# Files whose base_model disagrees with their own id; the id is what the provider is called with.
BASE_MODEL_DISAGREES = {
    "databricks/databricks-claude-sonnet-4",  # base_model anthropic/claude-sonnet-4-5-20250929
    "databricks/databricks-gemini-3-1-flash-lite",  # base_model google/gemini-3.1-flash-lite-preview
}


@pytest.fixture(scope="module", params=data_files("models.dev"))
def tree_report(request: pytest.FixtureRequest) -> tuple[Path, ModelsDevParse]:
    path: Path = request.param
    return path, parsed_tree(path)


def test_a_whole_tree_parses_without_merging_look_alikes(tree_report: tuple[Path, ModelsDevParse]) -> None:
    path, parsed = tree_report
    providers = {o.provider for o in parsed.offers}
    assert len(providers) > (20 if path == REAL_TREE else 10)
    assert providers <= set(PROVIDERS)
    assert len({(o.provider, o.model.slug, o.variant) for o in parsed.offers}) == len(parsed.offers)
    # Every source that landed on one canonical model names one parameter size (8B and 70B never meet) ...
    sources_by_slug: dict[str, list[str]] = defaultdict(list)
    for (_, slug, _), sources in parsed.sources.items():
        sources_by_slug[slug].extend(sources)
    for slug, sources in sources_by_slug.items():
        sizes = {frozenset(SIZE.findall(s.split("/", 1)[1].lower())) for s in sources} - {frozenset()}
        assert len(sizes) <= 1, (slug, sources)
    # ... and, where models.dev names the base model, one base model (read by the same identity rules).
    slug_of = {source: slug for (_, slug, _), sources in parsed.sources.items() for source in sources}
    bases: dict[str, set[str]] = defaultdict(set)
    for source, base in parsed.base_models.items():
        found = resolve_offer("", base.split("/", 1)[1])
        if source not in BASE_MODEL_DISAGREES and found is not None:
            bases[slug_of[source]].add(found.model.slug)
    assert {slug: names for slug, names in bases.items() if len(names) > 1} == {}


@pytest.mark.real_data
def test_the_full_tree_counts() -> None:
    parsed = parsed_tree(REAL_TREE)
    model_files = [p for p in (REAL_TREE / "providers").glob("*/models/**/*.toml")]
    assert len(model_files) == 5307  # README section 4
    assert len(parsed.offers) + sum(parsed.skipped.values()) == len(model_files)  # every file counted once
    assert parsed.skipped["dangling symlink"] == 31
    assert parsed.skipped["not a provider: openrouter"] == 337
    claude = by_key(parsed.offers)[("anthropic", "claude-sonnet-4.5", "")]
    assert (claude.input_per_1m, claude.output_per_1m, claude.dimensions.cache_write) == (D("3"), D("15"), D("3.75"))


@pytest.mark.real_data
def test_the_fixture_files_are_unchanged_copies() -> None:
    """Every fixture file is byte for byte the file in ../shared/data/models.dev; a symlink here points where
    that tree's link file (git's form of a symlink) says."""
    for path in sorted(TREE.rglob("*")):
        real = REAL_TREE / path.relative_to(TREE)
        if path.is_symlink():
            assert os.readlink(path) == real.read_text(encoding="utf-8").strip(), path
        elif path.is_file():
            assert path.read_bytes() == real.read_bytes(), path


# ---------------------------------------------------------------------------------------------
# Edited copies: the legacy tier table, inherited tier rates, free, bad files
# ---------------------------------------------------------------------------------------------

# providers/google/models/gemini-2.5-pro.toml before 5e344ded49d8 (2026-05-12) moved context_over_200k to
# [[cost.tiers]]: `git show 5e344ded49d8^:providers/google/models/gemini-2.5-pro.toml` in anomalyco/models.dev
# (MIT, Copyright (c) 2025 models.dev).
LEGACY_GEMINI = """\
name = "Gemini 2.5 Pro"
family = "gemini-pro"
release_date = "2025-03-20"
last_updated = "2025-06-05"
attachment = true
reasoning = true
temperature = true
knowledge = "2025-01"
tool_call = true
structured_output = true
open_weights = false

[cost]
input = 1.25
output = 10.00
cache_read = 0.125

[cost.context_over_200k]
input = 2.50
output = 15.00
cache_read = 0.25

[limit]
context = 1_048_576
output = 65_536

[modalities]
input = ["text", "image", "audio", "video", "pdf"]
output = ["text"]
"""


def test_the_legacy_context_over_200k_table_is_one_tier(tmp_path: Path, report: ModelsDevParse) -> None:
    tree = copy_tree(tmp_path)
    (tree / "providers/google/models/gemini-2.5-pro.toml").write_text(LEGACY_GEMINI)
    legacy = by_key(parse_modelsdev_dir(tree))[("google", "gemini-2.5-pro", "")]
    current = by_key(report.offers)[("google", "gemini-2.5-pro", "")]
    assert legacy.dimensions.tiers == current.dimensions.tiers == (Tier(200_000, Rates(D("2.5"), D("15"), D("0.25"))),)
    assert legacy.price == current.price


def test_a_tier_without_input_or_output_takes_the_base_rate(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    path = tree / "providers/openai/models/gpt-5.4.toml"
    path.write_text(path.read_text().replace("input = 5.00\n", "").replace("output = 22.50\n", ""))
    offer = by_key(parse_modelsdev_dir(tree))[("openai", "gpt-5.4", "")]
    assert offer.dimensions.tiers == (Tier(272_000, Rates(D("2.5"), D("15"), D("0.5"))),)


def test_free_only_when_the_id_says_so(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    models = tree / "providers/groq/models"
    zero = (models / "llama-3.3-70b-versatile.toml").read_text().replace("0.59", "0").replace("0.79", "0")
    (models / "llama-3.3-70b-versatile.toml").write_text(zero)
    (models / "llama-3.1-8b-instant-free.toml").write_text(zero)
    offers = by_key(parse_modelsdev_dir(tree))
    assert offers[("groq", "llama-3.3-70b", "")].price.kind is PriceKind.UNPRICED
    free = offers[("groq", "llama-3.1-8b", "free")]
    assert free.dimensions.free and free.price.kind is PriceKind.FREE


def test_a_malformed_file_names_the_file_and_line(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    path = tree / "providers/deepseek/models/deepseek-chat.toml"
    lines = path.read_text().splitlines()
    lineno = lines.index("output = 0.28") + 1
    lines[lineno - 1] = "output = 0.28 0.42"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CatalogFormatError) as caught:
        parse_modelsdev_dir(tree)
    assert caught.value.path == str(path) and caught.value.entry == "deepseek-chat"
    assert f"line {lineno}" in caught.value.reason and "invalid TOML" in caught.value.reason


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("input = 0.14", "input = -0.14", "cost.input is -0.14"),
        ("input = 0.14", 'input = "0.14"', "cost.input is '0.14', not a number"),
        ("input = 0.14\n", "", "cost has no input price"),
        ("output = 384_000", "output = 1.5", "limit.output is Decimal('1.5')"),
        ('input = ["text"]', 'input = "text"', "modalities.input is 'text'"),
        ("[cost]", 'base_model = "deepseek/nope"\n[cost]', "no file models/deepseek/nope.toml"),
        ("[limit]", "[[cost.tiers]]\ninput = 1\n[limit]", "cost.tiers[0].tier is None"),
    ],
)
def test_a_bad_value_names_the_file(tmp_path: Path, old: str, new: str, reason: str) -> None:
    tree = copy_tree(tmp_path)
    path = tree / "providers/deepseek/models/deepseek-chat.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(CatalogFormatError) as caught:
        parse_modelsdev_dir(tree)
    assert caught.value.path == str(path) and caught.value.entry == "deepseek-chat"
    assert reason in caught.value.reason


def test_not_a_tree(tmp_path: Path) -> None:
    with pytest.raises(CatalogFormatError, match="no providers/ directory"):
        parse_modelsdev_dir(tmp_path)


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def run(url: URL, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url.render_as_string(hide_password=False)}
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )


async def counts(url: URL) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            offers = (await session.execute(select(func.count()).select_from(Offer))).scalar_one()
            ticks = (await session.execute(select(func.count()).select_from(PriceTick))).scalar_one()
        return offers, ticks
    finally:
        await engine.dispose()


async def test_cli_imports_the_tree_once(databases: Databases, tmp_path: Path) -> None:
    assert FORMATS["modelsdev"] is parse_modelsdev_dir
    url = await databases.new()
    bad = copy_tree(tmp_path)
    (bad / "providers/groq/models/llama-3.1-8b-instant.toml").write_text("[cost\n")
    failed = run(url, "import", str(bad), "--format", "modelsdev")
    assert failed.returncode != 0 and "nothing was written" in failed.stderr
    assert "llama-3.1-8b-instant.toml" in failed.stderr and "line 1" in failed.stderr
    assert await counts(url) == (0, 0)  # nothing of the bad tree, though every other file in it is good

    first = run(url, "import", str(TREE), "--format", "modelsdev")
    assert first.returncode == 0, first.stderr
    offers, ticks = await counts(url)
    assert offers == len(EXPECTED) and ticks > 0
    again = run(url, "import", str(TREE), "--format", "modelsdev")
    assert again.returncode == 0, again.stderr
    assert " 0 price ticks" in again.stdout and f"{offers} unchanged" in again.stdout
    assert await counts(url) == (offers, ticks)
