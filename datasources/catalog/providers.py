"""The provider registry and the mapping from a source's provider names to our provider slugs.

Slugs follow the Coaxiom price API document (`together`, `fireworks`, `lambda`, `digitalocean`, ...).
A source names providers its own way: LiteLLM's `litellm_provider` (`together_ai`, `gradient_ai`,
`vertex_ai-anthropic_models`) and OpenRouter's endpoint `provider_slug` (`together`, `fireworks/fast`,
`google-vertex/us-east5`, where the part after `/` is an endpoint variant, not a provider).

Not providers of their own (`provider_slug()` returns None, the importers skip their rows), decided
case by case from the data in /work/shared/data:

* Aggregators, routers and gateways that resell other providers' endpoints: `openrouter`,
  `vercel_ai_gateway`, `clf_ai_gateway` (Cloudflare AI Gateway), `hostinger_router`, `aihubmix`,
  `kyma` (Claude at a 35% markup), `inferenceapis` (mirrors Groq's and Together's model ids),
  `opencode_go`, `zerogpu`, `scx-ai`, `prism`, `pinstripes`, `coralbricks`, `refuseless`,
  `abliteration`, `libertai`, `llamagate`, `darkbloom`, `aiand`, `heroku` (a proxy, no prices),
  `azure_ai` model-router rows (see identity's skip list).
* Subscriptions and products, not per-token inference APIs: `github_copilot`, `microsoft_365_copilot`,
  `v0`, `cognition`, `scaledown` (prompt compression), `fal_ai`.
* Local or self-deployed runtimes whose "price" is 0 by construction: `ollama`, `lemonade`,
  `sagemaker`, `publicai`.
* Placeholders with only zero prices or no prices: `gigachat`, `sarvam`, `nlp_cloud`, `meta_llama`.
* Mirrors of a provider we already carry: `bigmodel` (Zhipu's mainland-China platform, prices
  converted from CNY; `zai` is the canonical Zhipu provider).

Folded into one provider: `bedrock`, `bedrock_converse`, `bedrock_mantle`, `amazon_nova` → bedrock;
`azure`, `azure_ai`, `azure_text` → azure; every `vertex_ai*` → vertex; `gemini` → google;
`mistral`, `codestral`, `text-completion-codestral` → mistral; `dashscope`, `qwen_ai_platform`,
`qwencloud` → alibaba (the same Model Studio catalog under three names); `cohere`, `cohere_chat` →
cohere; `openai`, `text-completion-openai` → openai.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderInfo:
    slug: str
    name: str
    signup_url: str
    base_url: str | None = None


def _p(slug: str, name: str, signup_url: str, base_url: str | None = None) -> ProviderInfo:
    return ProviderInfo(slug, name, signup_url, base_url)


PROVIDERS: dict[str, ProviderInfo] = {
    p.slug: p
    for p in (
        # Inference specialists (the price API document's list).
        _p("together", "Together AI", "https://api.together.ai", "https://api.together.xyz/v1"),
        _p("groq", "Groq", "https://console.groq.com", "https://api.groq.com/openai/v1"),
        _p("fireworks", "Fireworks AI", "https://fireworks.ai", "https://api.fireworks.ai/inference/v1"),
        _p("deepinfra", "DeepInfra", "https://deepinfra.com", "https://api.deepinfra.com/v1/openai"),
        _p("nebius", "Nebius AI Studio", "https://studio.nebius.com", "https://api.studio.nebius.com/v1"),
        _p("cerebras", "Cerebras", "https://cloud.cerebras.ai", "https://api.cerebras.ai/v1"),
        _p("mistral", "Mistral AI", "https://console.mistral.ai", "https://api.mistral.ai/v1"),
        _p("sambanova", "SambaNova Cloud", "https://cloud.sambanova.ai", "https://api.sambanova.ai/v1"),
        _p("xai", "xAI", "https://console.x.ai", "https://api.x.ai/v1"),
        _p("hyperbolic", "Hyperbolic", "https://app.hyperbolic.xyz", "https://api.hyperbolic.xyz/v1"),
        _p("novita", "Novita AI", "https://novita.ai", "https://api.novita.ai/v3/openai"),
        _p("lambda", "Lambda", "https://lambda.ai", "https://api.lambda.ai/v1"),
        _p("nvidia", "NVIDIA NIM", "https://build.nvidia.com", "https://integrate.api.nvidia.com/v1"),
        _p("perplexity", "Perplexity", "https://www.perplexity.ai/settings/api", "https://api.perplexity.ai"),
        _p("cloudflare", "Cloudflare Workers AI", "https://dash.cloudflare.com"),
        _p("digitalocean", "DigitalOcean Gradient", "https://cloud.digitalocean.com", "https://inference.do-ai.run/v1"),
        _p("openai", "OpenAI", "https://platform.openai.com", "https://api.openai.com/v1"),
        # Model labs selling their own models.
        _p("anthropic", "Anthropic", "https://console.anthropic.com"),
        _p(
            "google",
            "Google AI Studio",
            "https://aistudio.google.com",
            "https://generativelanguage.googleapis.com/v1beta/openai",
        ),
        _p("deepseek", "DeepSeek", "https://platform.deepseek.com", "https://api.deepseek.com/v1"),
        _p("cohere", "Cohere", "https://dashboard.cohere.com", "https://api.cohere.ai/compatibility/v1"),
        _p("ai21", "AI21 Labs", "https://studio.ai21.com"),
        _p("moonshot", "Moonshot AI", "https://platform.moonshot.ai", "https://api.moonshot.ai/v1"),
        _p("minimax", "MiniMax", "https://www.minimax.io", "https://api.minimax.io/v1"),
        _p("zai", "Z.ai (Zhipu)", "https://z.ai", "https://api.z.ai/api/paas/v4"),
        _p(
            "alibaba",
            "Alibaba Cloud Model Studio",
            "https://www.alibabacloud.com/product/modelstudio",
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        ),
        _p("meta", "Meta", "https://llama.developer.meta.com"),
        _p("inception", "Inception Labs", "https://platform.inceptionlabs.ai", "https://api.inceptionlabs.ai/v1"),
        _p("xiaomi", "Xiaomi MiMo", "https://platform.xiaomimimo.com"),
        _p("morph", "Morph", "https://morphllm.com", "https://api.morphllm.com/v1"),
        # Hyperscaler and data-platform model gardens.
        _p("bedrock", "Amazon Bedrock", "https://aws.amazon.com/bedrock"),
        _p("azure", "Microsoft Azure AI Foundry", "https://ai.azure.com"),
        _p("vertex", "Google Vertex AI", "https://console.cloud.google.com/vertex-ai"),
        _p("oci", "Oracle OCI Generative AI", "https://www.oracle.com/artificial-intelligence/generative-ai"),
        _p("databricks", "Databricks", "https://www.databricks.com"),
        _p("snowflake", "Snowflake Cortex", "https://www.snowflake.com"),
        _p("watsonx", "IBM watsonx.ai", "https://www.ibm.com/watsonx"),
        _p("volcengine", "Volcano Engine (ByteDance)", "https://www.volcengine.com"),
        _p("tencent", "Tencent Cloud", "https://www.tencentcloud.com"),
        _p("baidu", "Baidu AI Cloud", "https://cloud.baidu.com"),
        # GPU clouds and other hosts with their own serverless inference.
        _p("replicate", "Replicate", "https://replicate.com"),
        _p("baseten", "Baseten", "https://www.baseten.co", "https://inference.baseten.co/v1"),
        _p("crusoe", "Crusoe Cloud", "https://crusoe.ai"),
        _p("nscale", "Nscale", "https://www.nscale.com", "https://inference.api.nscale.com/v1"),
        _p("scaleway", "Scaleway", "https://www.scaleway.com", "https://api.scaleway.ai/v1"),
        _p("ovhcloud", "OVHcloud AI Endpoints", "https://endpoints.ai.cloud.ovh.net"),
        _p("friendliai", "FriendliAI", "https://friendli.ai", "https://api.friendli.ai/serverless/v1"),
        _p("gmi", "GMI Cloud", "https://www.gmicloud.ai"),
        _p("wandb", "W&B Inference (CoreWeave)", "https://wandb.ai", "https://api.inference.wandb.ai/v1"),
        _p("coreweave", "CoreWeave", "https://www.coreweave.com"),
        _p("streamlake", "StreamLake (Kuaishou)", "https://www.streamlake.ai"),
        _p("sail", "Sail Research", "https://sail.dev"),
        _p("tensormesh", "Tensormesh", "https://www.tensormesh.ai"),
        _p("featherless", "Featherless AI", "https://featherless.ai", "https://api.featherless.ai/v1"),
        _p("anyscale", "Anyscale Endpoints", "https://www.anyscale.com"),
        _p("parasail", "Parasail", "https://www.parasail.io"),
        _p("siliconflow", "SiliconFlow", "https://siliconflow.com", "https://api.siliconflow.com/v1"),
        _p("chutes", "Chutes", "https://chutes.ai"),
        _p("atlascloud", "Atlas Cloud", "https://www.atlascloud.ai"),
        _p("venice", "Venice", "https://venice.ai", "https://api.venice.ai/api/v1"),
        _p("phala", "Phala", "https://phala.network"),
        _p("akashml", "AkashML", "https://akash.network"),
        _p("modal", "Modal", "https://modal.com"),
        _p("mancer", "Mancer", "https://mancer.tech"),
        _p("wafer", "Wafer", "https://wafer.ai"),
        _p("inceptron", "Inceptron", "https://inceptron.io"),
        _p("decart", "Decart", "https://decart.ai"),
        _p("ambient", "Ambient", "https://ambient.xyz"),
        _p("mara", "MARA", "https://www.mara.com"),
        _p("openinference", "OpenInference", "https://openinference.ai"),
    )
}

# Source provider name (lowercased) → provider slug; None marks a known non-provider.
SOURCE_PROVIDER_NAMES: dict[str, str | None] = {
    # LiteLLM `litellm_provider` values.
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "lambda_ai": "lambda",
    "gradient_ai": "digitalocean",
    "nvidia_nim": "nvidia",
    "gemini": "google",
    "bedrock_converse": "bedrock",
    "bedrock_mantle": "bedrock",
    "amazon_nova": "bedrock",
    "azure_ai": "azure",
    "azure_text": "azure",
    "codestral": "mistral",
    "text-completion-codestral": "mistral",
    "text-completion-openai": "openai",
    "cohere_chat": "cohere",
    "dashscope": "alibaba",
    "qwen_ai_platform": "alibaba",
    "qwencloud": "alibaba",
    "xiaomi_mimo": "xiaomi",
    "featherless_ai": "featherless",
    "friendliai": "friendliai",
    # OpenRouter endpoint `provider_slug` bases.
    "amazon-bedrock": "bedrock",
    "google-vertex": "vertex",
    "google-ai-studio": "google",
    "moonshotai": "moonshot",
    "z-ai": "zai",
    "gmicloud": "gmi",
    "friendli": "friendliai",
    "sail-research": "sail",
    "sambanova-turbo": "sambanova",
    "atlas-cloud": "atlascloud",
    "open-inference": "openinference",
    "x-ai": "xai",
    "mistralai": "mistral",
    "qwen": "alibaba",
    # ---- models.dev `providers/<dir>` names (datasources/catalog/modelsdev.py) ----------------------
    # Directories named like one of our slugs (`openai`, `deepinfra`, `groq`, `zai`, ...) need no entry;
    # `moonshotai`, `amazon-bedrock`, `google-vertex`, `friendli`, `gmicloud` are mapped above.
    "togetherai": "together",
    "fireworks-ai": "fireworks",
    "novita-ai": "novita",
    "google-vertex-anthropic": "vertex",  # Claude on Vertex AI
    "azure-cognitive-services": "azure",  # the same Azure deployments (its files link to azure's)
    "cloudflare-workers-ai": "cloudflare",
    "wafer.ai": "wafer",
    "llama": "meta",  # Meta's Llama API (api.llama.com)
    "snowflake-cortex": "snowflake",
    "tencent-tokenhub": "tencent",  # Tencent Cloud's MaaS
    **dict.fromkeys(
        (
            # Aggregators, routers, gateways and resellers of other providers' models.
            "302ai",
            "abacus",
            "abliteration-ai",
            "anyapi",
            "auriko",
            "cloudflare-ai-gateway",
            "cortecs",
            "fastrouter",
            "frogbot",
            "helicone",
            "huggingface",
            "jiekou",
            "kilo",
            "llmgateway",
            "merge-gateway",
            "nano-gpt",
            "neon",
            "opencode",
            "opencode-go",
            "orcarouter",
            "perplexity-agent",
            "poe",
            "qiniu-ai",
            "requesty",
            "routing-run",
            "sap-ai-core",
            "vercel",
            "vivgrid",
            "zenmux",
            # Subscriptions, coding and token plans, and products (not per-token APIs).
            "alibaba-coding-plan",
            "alibaba-coding-plan-cn",
            "alibaba-token-plan",
            "alibaba-token-plan-cn",
            "github-copilot",
            "github-models",
            "gitlab",
            "kimi-for-coding",
            "kuae-cloud-coding-plan",
            "minimax-coding-plan",
            "minimax-cn-coding-plan",
            "tencent-coding-plan",
            "umans-ai-coding-plan",
            "xiaomi-token-plan-ams",
            "xiaomi-token-plan-cn",
            "xiaomi-token-plan-sgp",
            "zai-coding-plan",
            "zhipuai-coding-plan",
            # Local runtimes and local proxies.
            "atomic-chat",
            "lmstudio",
            "ollama-cloud",
            "privatemode-ai",
            # Mainland-China platforms of a provider we carry (as `bigmodel` below: prices in CNY terms).
            "alibaba-cn",
            "minimax-cn",
            "moonshotai-cn",
            "siliconflow-cn",
            "zhipuai",
        ),
        None,
    ),
    # ---- end of models.dev names ---------------------------------------------------------------------
    # Aggregators, resellers, products, local runtimes, placeholders, mirrors (module docstring).
    **dict.fromkeys(
        (
            "openrouter",
            "vercel_ai_gateway",
            "clf_ai_gateway",
            "hostinger_router",
            "aihubmix",
            "kyma",
            "inferenceapis",
            "opencode_go",
            "zerogpu",
            "scx-ai",
            "prism",
            "pinstripes",
            "coralbricks",
            "refuseless",
            "abliteration",
            "libertai",
            "llamagate",
            "darkbloom",
            "aiand",
            "heroku",
            "github_copilot",
            "microsoft_365_copilot",
            "v0",
            "cognition",
            "scaledown",
            "fal_ai",
            "ollama",
            "ollama_chat",
            "lemonade",
            "sagemaker",
            "sagemaker_chat",
            "publicai",
            "gigachat",
            "sarvam",
            "nlp_cloud",
            "meta_llama",
            "bigmodel",
        ),
        None,
    ),
}


def provider_slug(source_name: str) -> str | None:
    """Our slug for a source's provider name, or None for aggregators, non-providers and unknowns.

    A suffix after `/` (OpenRouter's `fireworks/fast`, `deepinfra/turbo`) is an endpoint variant and
    is ignored here; see `split_provider_variant`.
    """
    name = source_name.strip().lower().split("/", 1)[0]
    if name.startswith("vertex_ai"):
        return "vertex"
    if name.startswith("bedrock"):
        return "bedrock"
    if name.startswith("azure"):
        return "azure"
    if name in SOURCE_PROVIDER_NAMES:
        return SOURCE_PROVIDER_NAMES[name]
    return name if name in PROVIDERS else None


def split_provider_variant(source_name: str) -> tuple[str | None, str]:
    """OpenRouter's `fireworks/fast` → ("fireworks", "fast"); `sambanova-turbo` → ("sambanova", "turbo")."""
    base, _, suffix = source_name.strip().lower().partition("/")
    if base == "sambanova-turbo":
        suffix = "-".join(part for part in ("turbo", suffix) if part)
    return provider_slug(base), suffix
