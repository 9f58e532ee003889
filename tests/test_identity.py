"""Model identity: real provider ids (LiteLLM keys, price_history.csv keys, OpenRouter ids) → slug + variant."""

from __future__ import annotations

from decimal import Decimal

import pytest

from datasources.catalog.identity import lookup_slug, resolve, resolve_offer, variant_of

# (provider, model id as sent to the provider, expected slug, expected variant)
CASES: list[tuple[str, str, str, str]] = [
    # Llama 3.3 70B, every spelling in the data.
    ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3-70b", "turbo"),
    ("groq", "llama-3.3-70b-versatile", "llama-3.3-70b", ""),  # price_history.csv
    ("groq", "llama-3.3-70b-specdec", "llama-3.3-70b", "specdec"),  # price_history.csv
    ("fireworks", "accounts/fireworks/models/llama-v3p3-70b-instruct", "llama-3.3-70b", ""),
    ("cerebras", "llama-3.3-70b", "llama-3.3-70b", ""),
    ("cerebras", "llama3.3-70b", "llama-3.3-70b", ""),  # price_history.csv
    ("sambanova", "Meta-Llama-3.3-70B-Instruct", "llama-3.3-70b", ""),
    ("lambda", "llama3.3-70b-instruct-fp8", "llama-3.3-70b", "fp8"),
    ("cloudflare", "@cf/meta/llama-3.3-70b-instruct-fp8-fast", "llama-3.3-70b", "fp8-fast"),
    ("bedrock", "meta.llama3-3-70b-instruct-v1:0", "llama-3.3-70b", ""),
    ("bedrock", "us.meta.llama3-3-70b-instruct-v1:0", "llama-3.3-70b", "us"),
    ("openrouter", "meta-llama/llama-3.3-70b-instruct", "llama-3.3-70b", ""),
    ("deepinfra", "meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b", ""),
    ("deepinfra", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3-70b", "turbo"),
    ("databricks", "databricks-meta-llama-3-3-70b-instruct", "llama-3.3-70b", ""),
    ("ovhcloud", "Meta-Llama-3_3-70B-Instruct", "llama-3.3-70b", ""),
    ("oci", "meta.llama-3.3-70b-instruct-fp8-dynamic", "llama-3.3-70b", "fp8-dynamic"),
    ("vertex", "meta/llama-3.3-70b-instruct-maas", "llama-3.3-70b", ""),
    ("digitalocean", "llama3.3-70b-instruct", "llama-3.3-70b", ""),
    ("snowflake", "snowflake-llama-3.3-70b", "llama-3.3-70b", ""),
    ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo-Free", "llama-3.3-70b", "turbo-free"),
    # Other Llamas.
    ("groq", "llama-3.1-8b-instant", "llama-3.1-8b", ""),
    ("groq", "llama-3.1-70b-versatile", "llama-3.1-70b", ""),
    ("groq", "llama3-70b-8192", "llama-3-70b", ""),
    ("cerebras", "llama3.1-70b", "llama-3.1-70b", ""),
    ("deepinfra", "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", "llama-3.1-8b", "turbo"),
    ("bedrock", "us-east-1/meta.llama3-70b-instruct-v1:0", "llama-3-70b", "us-east-1"),
    ("together", "meta-llama/Llama-3-8b-chat-hf", "llama-3-8b", ""),
    ("fireworks", "accounts/fireworks/models/llama-v2-70b", "llama-2-70b-base", ""),
    ("fireworks", "accounts/fireworks/models/llama-v2-70b-chat", "llama-2-70b", ""),
    ("replicate", "meta/llama-3-70b", "llama-3-70b-base", ""),
    ("replicate", "meta/llama-3-70b-instruct", "llama-3-70b", ""),
    ("deepinfra", "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8", "llama-4-maverick", "fp8"),
    ("bedrock", "us.meta.llama4-maverick-17b-instruct-v1:0", "llama-4-maverick", "us"),
    ("fireworks", "accounts/fireworks/models/llama4-maverick-instruct-basic", "llama-4-maverick", "basic"),
    ("cloudflare", "@cf/meta/llama-3.2-11b-vision-instruct", "llama-3.2-11b-vision", ""),
    ("bedrock", "us.meta.llama3-2-11b-instruct-v1:0", "llama-3.2-11b-vision", "us"),
    ("cloudflare", "@cf/meta/llama-2-7b-chat-fp16", "llama-2-7b", "fp16"),
    # Fine-tunes and distills keep their own identity.
    ("fireworks", "accounts/fireworks/models/dobby-unhinged-llama-3-3-70b-new", "dobby-unhinged-llama-3.3-70b-new", ""),
    ("deepinfra", "nvidia/Llama-3.1-Nemotron-70B-Instruct", "llama-3.1-nemotron-70b", ""),
    ("lambda", "llama3.1-nemotron-70b-instruct-fp8", "llama-3.1-nemotron-70b", "fp8"),
    ("deepinfra", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "deepseek-r1-distill-llama-70b", ""),
    ("lambda", "deepseek-llama3.3-70b", "deepseek-r1-distill-llama-70b", ""),
    ("lambda", "hermes3-405b", "hermes-3-llama-3.1-405b", ""),
    # DeepSeek.
    ("together", "deepseek-ai/DeepSeek-V3", "deepseek-v3", ""),
    ("fireworks", "accounts/fireworks/models/deepseek-v3", "deepseek-v3", ""),
    ("bedrock", "deepseek.v3-v1:0", "deepseek-v3", ""),
    ("novita", "deepseek/deepseek_v3", "deepseek-v3", ""),
    ("novita", "deepseek/deepseek-v3/community", "deepseek-v3", "community"),
    ("novita", "deepseek/deepseek-v3-turbo", "deepseek-v3", "turbo"),
    ("deepseek", "deepseek-v3", "deepseek-v3", ""),
    ("openrouter", "deepseek/deepseek-chat", "deepseek-v3", ""),
    ("deepseek", "deepseek-chat", "deepseek-chat", ""),
    ("deepinfra", "deepseek-ai/DeepSeek-V3-0324", "deepseek-v3-0324", ""),
    ("openrouter", "deepseek/deepseek-chat-v3-0324", "deepseek-v3-0324", ""),
    ("fireworks", "accounts/fireworks/models/deepseek-v3p1", "deepseek-v3.1", ""),
    ("openrouter", "deepseek/deepseek-chat-v3.1", "deepseek-v3.1", ""),
    ("bedrock", "deepseek.v3.2", "deepseek-v3.2", ""),
    ("volcengine", "deepseek-v3-2-251201", "deepseek-v3.2", ""),
    ("deepinfra", "deepseek-ai/DeepSeek-R1-Turbo", "deepseek-r1", "turbo"),
    ("lambda", "deepseek-r1-671b", "deepseek-r1", ""),
    ("azure", "FW-DeepSeek-V3.2", "deepseek-v3.2", "fw"),
    # OpenAI.
    ("openai", "gpt-4o", "gpt-4o", ""),
    ("openai", "gpt-4o-2024-08-06", "gpt-4o", ""),
    ("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13", ""),
    ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", ""),
    ("azure", "eu/gpt-4o", "gpt-4o", "eu"),
    ("azure", "gpt-35-turbo", "gpt-3.5-turbo", ""),
    ("openrouter", "openai/gpt-4o:batch", "gpt-4o", "batch"),
    ("openai", "o3-mini-2025-01-31", "o3-mini", ""),
    ("bedrock", "us-gov.openai.gpt-oss-20b-1:0", "gpt-oss-20b", "us-gov"),
    ("deepinfra", "openai/gpt-oss-120b-Turbo", "gpt-oss-120b", "turbo"),
    # Anthropic.
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4.5", ""),
    ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4.5", ""),
    ("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4.5", ""),
    ("bedrock", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4.5", "eu"),
    ("bedrock", "claude_platform/claude-sonnet-4-5", "claude-sonnet-4.5", "claude-platform"),
    ("vertex", "claude-sonnet-4-5@20250929", "claude-sonnet-4.5", ""),
    ("replicate", "anthropic/claude-4.5-sonnet", "claude-sonnet-4.5", ""),
    ("openrouter", "anthropic/claude-sonnet-4.5", "claude-sonnet-4.5", ""),
    ("anthropic", "claude-3-5-sonnet-20241022", "claude-3.5-sonnet", ""),  # price_history.csv
    ("anthropic", "claude-3-7-sonnet-latest", "claude-3.7-sonnet", ""),
    ("deepinfra", "anthropic/claude-4-opus", "claude-opus-4", ""),
    ("bedrock", "anthropic.claude-v2:1", "claude-2.1", ""),
    ("openrouter", "anthropic/claude-opus-4.8-fast", "claude-opus-4.8", "fast"),
    # Qwen.
    ("fireworks", "accounts/fireworks/models/qwen3-235b-a22b", "qwen3-235b-a22b", ""),
    ("novita", "qwen/qwen3-235b-a22b-fp8", "qwen3-235b-a22b", "fp8"),
    ("together", "Qwen/Qwen3-235B-A22B-fp8-tput", "qwen3-235b-a22b", "fp8-tput"),  # price_history.csv
    ("fireworks", "accounts/fireworks/models/qwen3-235b-a22b-instruct-2507", "qwen3-235b-a22b-2507", ""),
    ("openrouter", "qwen/qwen3-235b-a22b-2507", "qwen3-235b-a22b-2507", ""),
    ("bedrock", "qwen.qwen3-235b-a22b-2507-v1:0", "qwen3-235b-a22b-2507", ""),
    ("deepinfra", "Qwen/Qwen3-235B-A22B-Thinking-2507", "qwen3-235b-a22b-thinking-2507", ""),
    ("cerebras", "qwen-3-32b", "qwen3-32b", ""),
    ("openrouter", "qwen/qwen-2.5-72b-instruct", "qwen2.5-72b", ""),
    ("fireworks", "accounts/fireworks/models/qwen2p5-72b-instruct", "qwen2.5-72b", ""),
    # Mistral, Google, xAI, others.
    ("groq", "mixtral-8x7b-32768", "mixtral-8x7b", ""),
    ("together", "mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b", ""),
    ("fireworks", "accounts/fireworks/models/mixtral-8x7b", "mixtral-8x7b-base", ""),
    ("mistral", "mistral-large-latest", "mistral-large", ""),
    ("vertex", "mistral-large@2407", "mistral-large-2407", ""),
    ("openrouter", "mistralai/mistral-small-3.2-24b-instruct", "mistral-small-3.2", ""),
    ("deepinfra", "mistralai/Mistral-Small-3.2-24B-Instruct-2506", "mistral-small-3.2", ""),
    ("groq", "gemma2-9b-it", "gemma-2-9b", ""),
    ("deepinfra", "google/gemma-4-31B-it-Ultra", "gemma-4-31b", "ultra"),
    ("google", "gemini-2.5-flash", "gemini-2.5-flash", ""),
    ("oci", "google.gemini-2.5-flash", "gemini-2.5-flash", ""),
    ("azure", "grok-4-20-reasoning", "grok-4.20-reasoning", ""),
    ("xai", "grok-4.20-reasoning", "grok-4.20-reasoning", ""),
    ("fireworks", "accounts/fireworks/models/kimi-k2p5", "kimi-k2.5", ""),
    ("together", "moonshotai/Kimi-K2.5-fp4", "kimi-k2.5", "fp4"),
    ("fireworks", "accounts/fireworks/models/glm-4p7", "glm-4.7", ""),
    ("mistral", "zai-glm-5-3-flash", "glm-5.3-flash", ""),
    ("openrouter", "amazon/nova-pro-v1", "nova-pro", ""),
    ("bedrock", "amazon.nova-pro-v1:0", "nova-pro", ""),
]

# Pairs that must stay different models.
NOT_SAME: list[tuple[tuple[str, str], tuple[str, str]]] = [
    (
        ("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"),
        ("together", "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo"),
    ),
    (("deepinfra", "meta-llama/Meta-Llama-3.1-70B-Instruct"), ("deepinfra", "meta-llama/Llama-3.3-70B-Instruct")),
    (("groq", "llama3-70b-8192"), ("groq", "llama-3.1-70b-versatile")),
    (("deepinfra", "deepseek-ai/DeepSeek-V3"), ("deepinfra", "deepseek-ai/DeepSeek-V3.1")),
    (("deepinfra", "deepseek-ai/DeepSeek-V3.1"), ("deepinfra", "deepseek-ai/DeepSeek-V3.2")),
    (("deepinfra", "deepseek-ai/DeepSeek-V3"), ("deepinfra", "deepseek-ai/DeepSeek-R1")),
    (("deepinfra", "deepseek-ai/DeepSeek-V3"), ("deepinfra", "deepseek-ai/DeepSeek-V3-0324")),
    (("deepinfra", "deepseek-ai/DeepSeek-R1"), ("deepinfra", "deepseek-ai/DeepSeek-R1-Distill-Llama-70B")),
    (
        ("fireworks", "accounts/fireworks/models/deepseek-v3p1"),
        ("fireworks", "accounts/fireworks/models/deepseek-v3p1-terminus"),
    ),
    (("openai", "gpt-4o"), ("openai", "gpt-4o-mini")),
    (("openai", "gpt-4o"), ("openai", "gpt-4o-2024-05-13")),
    (("deepinfra", "meta-llama/Meta-Llama-3.1-70B-Instruct"), ("deepinfra", "nvidia/Llama-3.1-Nemotron-70B-Instruct")),
    (
        ("fireworks", "accounts/fireworks/models/dobby-unhinged-llama-3-3-70b-new"),
        ("fireworks", "accounts/fireworks/models/llama-v3p3-70b-instruct"),
    ),
    (
        ("fireworks", "accounts/fireworks/models/llama-v2-70b"),
        ("fireworks", "accounts/fireworks/models/llama-v2-70b-chat"),
    ),
    (
        ("fireworks", "accounts/fireworks/models/qwen3-235b-a22b"),
        ("fireworks", "accounts/fireworks/models/qwen3-235b-a22b-instruct-2507"),
    ),
    (
        ("fireworks", "accounts/fireworks/models/qwen3-235b-a22b-instruct-2507"),
        ("fireworks", "accounts/fireworks/models/qwen3-235b-a22b-thinking-2507"),
    ),
    (("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-sonnet-4-6")),
    (("anthropic", "claude-3-5-sonnet-20241022"), ("anthropic", "claude-3-7-sonnet-20250219")),
    (("deepseek", "deepseek-chat"), ("deepseek", "deepseek-v3")),
    (("openai", "gpt-4-turbo"), ("openai", "gpt-4")),
    (("azure", "grok-4-fast-reasoning"), ("xai", "grok-4")),
    (("cloudflare", "@cf/meta/llama-3.2-1b-instruct"), ("cloudflare", "@cf/meta/llama-3.2-3b-instruct")),
    (("mistral", "mistral-large-2411"), ("vertex", "mistral-large@2407")),
    (("together", "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"), ("nebius", "Qwen/Qwen3-14B")),
]

NOT_CHAT: list[tuple[str, str]] = [
    ("together", "together-ai-4.1b-8b"),
    ("fireworks", "fireworks-ai-up-to-4b"),
    ("groq", "meta-llama/llama-prompt-guard-2-22m"),
    ("deepinfra", "meta-llama/Llama-Guard-4-12B"),
    ("fireworks", "accounts/fireworks/models/flux-1-dev"),
    ("openai", "ft:gpt-4o-2024-08-06"),
    ("google", "lyria-3.5"),
    ("azure", "model-router"),
    ("bedrock", "ap-northeast-1/1-month-commitment/anthropic.claude-v2:1"),
]


@pytest.mark.parametrize(("provider", "model_id", "slug", "variant"), CASES)
def test_resolves_real_ids(provider: str, model_id: str, slug: str, variant: str) -> None:
    found = resolve_offer(provider, model_id)
    assert found is not None
    assert (found.model.slug, found.variant) == (slug, variant)
    assert variant_of(provider, model_id) == variant


def test_case_table_is_large_enough() -> None:
    assert len(CASES) >= 60
    assert len(NOT_SAME) >= 15


@pytest.mark.parametrize(("a", "b"), NOT_SAME)
def test_different_models_stay_apart(a: tuple[str, str], b: tuple[str, str]) -> None:
    left, right = resolve(*a), resolve(*b)
    assert left is not None and right is not None
    assert left.slug != right.slug


@pytest.mark.parametrize(("provider", "model_id"), NOT_CHAT)
def test_non_chat_ids_are_not_models(provider: str, model_id: str) -> None:
    assert resolve(provider, model_id) is None


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("claude-3-5-sonnet", "claude-3.5-sonnet"),
        ("claude-sonnet-4-5", "claude-sonnet-4.5"),
        ("Llama-3.3-70B-Instruct", "llama-3.3-70b"),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct", "llama-3.1-70b"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o", "gpt-4o"),
        ("DeepSeek V3", "deepseek-v3"),
        ("llama 3.1 70b", "llama-3.1-70b"),
        ("llama-3.1-70b", "llama-3.1-70b"),
        ("Qwen/Qwen3-235B-A22B", "qwen3-235b-a22b"),
        ("something-unknown", "something-unknown"),
    ],
)
def test_lookup_slug(text: str, slug: str) -> None:
    assert lookup_slug(text) == slug


def test_identity_metadata() -> None:
    llama = resolve("groq", "llama-3.3-70b-versatile")
    assert llama is not None
    assert (llama.display_name, llama.family, llama.params_b, llama.is_benchmark) == (
        "Llama 3.3 70B",
        "llama",
        Decimal(70),
        True,
    )
    deepseek = resolve("together", "deepseek-ai/DeepSeek-V3")
    assert deepseek is not None
    assert (deepseek.display_name, deepseek.family, deepseek.params_b, deepseek.is_benchmark) == (
        "DeepSeek V3",
        "deepseek",
        Decimal(671),
        True,
    )
    mini = resolve("openai", "gpt-4o-mini")
    assert mini is not None and (mini.display_name, mini.family) == ("GPT-4o mini", "gpt")
    qwen = resolve("nebius", "Qwen/Qwen3-235B-A22B")
    assert qwen is not None and (qwen.family, qwen.params_b) == ("qwen", Decimal(235))
    nemotron = resolve("deepinfra", "nvidia/Llama-3.1-Nemotron-70B-Instruct")
    assert nemotron is not None and nemotron.family == "nemotron" and not nemotron.is_benchmark
