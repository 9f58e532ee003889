"""Which model a provider's model id names: canonical slug, variant, display name, family, size.

Every provider spells the same model its own way (`meta-llama/Llama-3.3-70B-Instruct-Turbo`,
`llama-3.3-70b-versatile`, `accounts/fireworks/models/llama-v3p3-70b-instruct`,
`us.meta.llama3-3-70b-instruct-v1:0`, `@cf/meta/llama-3.3-70b-instruct-fp8-fast`); all of them are
`llama-3.3-70b`. Resolution is a fixed pipeline of normalisation rules (`_canonical`) followed by the
alias tables below, which hold every case the rules get wrong. All tables are at the top of this file.

Canonical slugs: lowercase, dashes, version numbers with dots, no vendor or org prefix, no
`-instruct`/`-it`/`-hf` (and no `-chat` after a size: `llama-2-70b-chat` → `llama-2-70b`).

Decisions (see the tests in tests/test_identity.py for the concrete cases):

* Different weights stay different models: sizes, versions (3.1 vs 3.3, v3 vs v3.1 vs v3.2), base vs
  instruct (`-base`), fine-tunes and distills (`deepseek-r1-distill-llama-70b`), reasoning/thinking
  releases (`qwen3-235b-a22b-thinking-2507`), and 4-digit release tags (`deepseek-v3-0324`,
  `qwen3-235b-a22b-2507`, `mistral-large-2411`): those are separate checkpoints, priced separately.
* Full dates (`-2024-08-06`, `-20250929`, `@20241022`) are snapshot pins of the same model and are
  dropped, except the snapshots in DISTINCT_SNAPSHOTS, which were priced differently.
* Moving aliases are their own models: `deepseek-chat`/`deepseek-reasoner` (DeepSeek re-points them at
  each release, so merging them into a versioned model would corrupt its price history). `-latest`
  is dropped (`mistral-large-latest` → `mistral-large`, the line rather than a release).
* Deployment flavours of one model are variants, not models: quantisations (`fp8`, `fp4`, `bf16`...),
  speed tiers (`turbo`, `fast`, `highspeed`, `lightning`, `tput`...), regions (bedrock `us.`/`us-east-1`,
  azure `eu/`), OpenRouter `:batch`/`:free` tags. The default variant is "".
  VARIANT_NAME_EXCEPTIONS lists the models whose names contain such a word (`gpt-4-turbo`,
  `grok-4-fast`, `glm-5-turbo`).
* Fireworks and Replicate name base models bare and chat models with `-instruct`/`-chat`, so there
  a bare llama/mixtral/mistral/qwen2/gemma/code-llama id is the base model (`llama-2-70b-base`).
* Not chat models (None): guard/safety classifiers, OCR, image (flux), music (lyria), TTS, drafts,
  routers, the Together/Fireworks size-tier fallback keys, OpenAI fine-tuning (`ft:`) prices.

`provider` selects provider-only aliases; the pseudo-provider "openrouter" selects OpenRouter's model
namespace (where `deepseek/deepseek-chat` is DeepSeek V3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from datasources.catalog.entries import ModelIdentity

# --------------------------------------------------------------------------------------------
# Data tables
# --------------------------------------------------------------------------------------------

# Suffix tokens that name a deployment flavour of a model (→ variant), popped from the end of the id.
VARIANT_TOKENS = frozenset(
    {
        "fp8",
        "fp4",
        "fp16",
        "bf16",
        "int8",
        "int4",
        "awq",
        "nvfp4",
        "mxfp4",
        "gguf",
        "dynamic",
        "mtp",
        "turbo",
        "fast",
        "highspeed",
        "lightning",
        "ultra",
        "tput",
        "specdec",
        "free",
        "basic",
        "long",
        "lora",
        "us",
        "eu",
        "spot",
        # ---- models.dev spellings (modelsdev.py): no LiteLLM key has these, so the seed is unchanged ----
        "tee",  # Chutes: the model served inside a trusted execution environment (`GLM-5.1-TEE`)
    }
)

# Model names (after popping) that really end in a variant word: the word stays in the slug.
VARIANT_NAME_EXCEPTIONS = re.compile(
    r"^(gpt-3\.5|gpt-4|qwen|glm-5v?|glm-4\.5|doubao-.*|grok(-.*)?|morph-v\d+|.*nemotron(-[\d.]+)?"
    r"|mistral-vibe-cli|swe-[\d.]+|gemini-.*|mercury.*|hermes.*|minimax-m\d\.\d-her)$"
)

# Tokens dropped wherever they appear.
NOISE_TOKENS = frozenset({"instruct", "it", "hf", "maas", "versatile"})

# Bedrock / OCI dotted ids: "[region.]vendor.model".
DOTTED_VENDOR = re.compile(
    r"^(?:(us|eu|apac|au|jp|in|ca|global|us-gov)\.)?"
    r"(meta|anthropic|amazon|mistral|deepseek|qwen|openai|xai|zai|cohere|ai21|writer|twelvelabs"
    r"|minimax|moonshot|moonshotai|google|nvidia|stability)\.(.+)$"
)

# Leading path segments that are a variant (a region, a deployment pool) rather than an org.
REGION_SEGMENT = re.compile(r"^((us|eu|ap|ca|sa|me|af|il|mx)(-gov)?-[a-z]+-\d+|\*)$")
PATH_VARIANT_SEGMENTS = frozenset(
    {"eu", "us", "us-gov", "jp", "au", "in", "global", "global-standard", "apac", "claude_platform"}
)
TRAILING_PATH_VARIANTS = frozenset({"community"})

# Dash-prefixes that are a vendor or platform name, not part of the model name ("fw-" = Fireworks
# deployments on Azure, kept as the variant "fw").
VENDOR_DASH_PREFIX = re.compile(
    r"^(databricks-|anthropic-|openai-|alibaba-|cohere-(?=command)|meta-(?=llama)|snowflake-(?=llama)"
    r"|nvidia-(?=nemotron)|gemini-(?=gemma)|zai-(?=glm)"
    # ---- models.dev spellings (Venice: `google-gemma-4-31b-it`, `zai-org-glm-5-1`, `z-ai-glm-5-turbo`,
    # `xiaomi-mimo-v2-5`) ----
    r"|google-(?=gemma)|zai-org-(?=glm)|z-ai-(?=glm)|xiaomi-(?=mimo))"
)

# Dated snapshots that were priced differently from the undated model: they keep their date.
DISTINCT_SNAPSHOTS = frozenset({"gpt-4o-2024-05-13"})

# Exact aliases, applied to the normalised name (left) → canonical slug (right).
ALIASES: dict[str, str] = {
    # Groq and Lambda product names.
    "llama-3.1-8b-instant": "llama-3.1-8b",
    "llama-3-70b-8192": "llama-3-70b",
    "llama-3-8b-8192": "llama-3-8b",
    "mixtral-8x7b-32768": "mixtral-8x7b",
    "deepseek-llama-3.3-70b": "deepseek-r1-distill-llama-70b",
    "deepseek-r1-671b": "deepseek-r1",
    "hermes3-405b": "hermes-3-llama-3.1-405b",
    "hermes3-70b": "hermes-3-llama-3.1-70b",
    "hermes3-8b": "hermes-3-llama-3.1-8b",
    "qwen25-coder-32b": "qwen2.5-coder-32b",
    # OpenAI / Azure spellings.
    "gpt-35-turbo": "gpt-3.5-turbo",
    "gpt-35-turbo-16k": "gpt-3.5-turbo-16k",
    "gpt-35-turbo-16k-0613": "gpt-3.5-turbo-16k-0613",
    "chat-latest": "gpt-chat-latest",
    "gpt-chat": "gpt-chat-latest",
    # Anthropic legacy names on Bedrock.
    "claude-v2:1": "claude-2.1",
    "claude-v2": "claude-2",
    "claude-v1": "claude-1",
    "claude-instant-v1": "claude-instant-1",
    # Mistral renames and release tags.
    "open-mistral-nemo": "mistral-nemo",
    "mistral-nemo-2407": "mistral-nemo",
    "mistral-nemo-base-2407": "mistral-nemo-base",
    "open-mixtral-8x22b": "mixtral-8x22b",
    "open-mixtral-8x7b": "mixtral-8x7b",
    "mixtral-8x7b-v0.1": "mixtral-8x7b",
    "mixtral-8x22b-v0.1": "mixtral-8x22b",
    "mistral-7b-v3": "mistral-7b-v0.3",
    "mistral-small-24b-2501": "mistral-small-3",
    "mistral-small-2501": "mistral-small-3",
    "mistral-small-3.1-24b": "mistral-small-3.1",
    "mistral-small-3.1-24b-2503": "mistral-small-3.1",
    "mistral-small-2503": "mistral-small-3.1",
    "mistral-small-3.2-24b": "mistral-small-3.2",
    "mistral-small-3.2-24b-2506": "mistral-small-3.2",
    "mistral-small-2506": "mistral-small-3.2",
    "mistral-large-2512": "mistral-large-3",
    "mistral-large-3-675b": "mistral-large-3",
    # Qwen.
    "qwen-qwq-32b-preview": "qwq-32b-preview",
    # NVIDIA, Meta, DeepSeek distills, Mistral: one name per model.
    "nemotron-3-ultra": "nemotron-3-ultra-550b-a55b",
    "nemotron-3.5-lightning": "nemotron-3.5-lightning-30b-a3b",
    "nemotron-lightning-3.5-30b-a3b": "nemotron-3.5-lightning-30b-a3b",
    "muse-spark-open-816b-a42b": "muse-spark-open",
    "deepseek-r1-0528-distill-qwen3-8b": "deepseek-r1-0528-qwen3-8b",
    "mistral-large-4.0": "mistral-large-4",
    # Fireworks spellings.
    "code-llama-7b": "codellama-7b",
    "code-llama-13b": "codellama-13b",
    "code-llama-34b": "codellama-34b",
    "code-llama-70b": "codellama-70b",
    # Morph's shorthand ids.
    "morph-dsv41flash": "deepseek-v4.1-flash",
    "morph-dsv41flash-1017": "deepseek-v4.1-flash-1017",
    "morph-dsv4flash": "deepseek-v4-flash",
    "morph-glm53-744b": "glm-5.3",
    "morph-glm53flash": "glm-5.3-flash",
    "morph-kimik3": "kimi-k3",
    # ---- models.dev spellings (modelsdev.py), each checked against the file's name or base_model; no
    # LiteLLM key normalises to these, so the seed is unchanged ----
    "claude-opus-4.0": "claude-opus-4",  # Anthropic's `claude-opus-4-0` alias of claude-opus-4-20250514
    "claude-sonnet-4.0": "claude-sonnet-4",
    "kimi-k2-0711-preview": "kimi-k2",  # Moonshot's API names of Kimi K2 (0711, the first) and K2 0905
    "kimi-k2-0905-preview": "kimi-k2-0905",
    "mistral-large-3-675b-2512": "mistral-large-3",  # NVIDIA
    "mistral-small-4-119b-2603": "mistral-small-2603",  # NVIDIA; Mistral's own id for Mistral Small 4
    "mistral-7b-v03": "mistral-7b-v0.3",  # NVIDIA
    "devstral-2512": "devstral-2-123b",  # Mistral's id for Devstral 2 (123B)
    "devstral-2-123b-2512": "devstral-2-123b",  # Scaleway
    "deepseek-3.2": "deepseek-v3.2",  # DigitalOcean
    "mistral-3-14b": "ministral-3-14b",  # DigitalOcean ("Ministral 3 14B Instruct")
}

# Pattern aliases (first match wins), for families with many spellings.
PATTERN_ALIASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^llama-4-(maverick|scout)(-17b)?(-\d+e)?$"), r"llama-4-\1"),
    (re.compile(r"^llama-3\.2-(11|90)b$"), r"llama-3.2-\1b-vision"),
    (re.compile(r"^ministral-3-(3|8|14)b(-2512)?$|^ministral-(3|8|14)b-2512$"), r"ministral-3-\1\3b"),
    (re.compile(r"^nova-(.+)-v1$"), r"nova-\1"),
    (re.compile(r"^code-llama-(.+)$"), r"codellama-\1"),
    (re.compile(r"^gpt-35-(.+)$"), r"gpt-3.5-\1"),
    (re.compile(r"^qwen35-(.+)$"), r"qwen3.5-\1"),
    (re.compile(r"^l31-(.+)$"), r"l3.1-\1"),
    # ---- models.dev spellings (Venice: `openai-gpt-54-mini` = gpt-5.4-mini, `minimax-m25` = minimax-m2.5) ----
    (re.compile(r"^gpt-([5-9])([1-9])((?:-.+)?)$"), r"gpt-\1.\2\3"),
    (re.compile(r"^minimax-m(\d)(\d)$"), r"minimax-m\1.\2"),
)

# Aliases that hold only within one provider's (or OpenRouter's) namespace.
PROVIDER_ALIASES: dict[str, dict[str, str]] = {
    "openrouter": {
        "deepseek-chat": "deepseek-v3",
        "deepseek-chat-v3-0324": "deepseek-v3-0324",
        "deepseek-chat-v3.1": "deepseek-v3.1",
        "llama-4-maverick": "llama-4-maverick",
    },
}

# Fireworks and Replicate serve base models under the bare name (see the module docstring).
BARE_IS_BASE_PROVIDERS = frozenset({"fireworks", "replicate"})
BASE_CANDIDATE = re.compile(
    r"^(llama-[23](\.\d)?-\d+b|mixtral-8x\d+b|mistral-7b(-v0\.\d)?|qwen2(\.5)?(-coder|-math)?-[\d.]+b"
    r"|gemma-(\d-)?\d+b|codegemma-\d+b|codellama-\d+b)$"
)
CHAT_MARKERS = frozenset({"instruct", "chat", "it"})

# Ids that are not chat models (tokens of the normalised name, or the whole raw id).
SKIP_TOKENS = frozenset({"tts", "embed", "embedding", "rerank", "draft", "router", "ttm"})
SKIP_SUBSTRINGS = ("guard", "ocr", "content-safety")
SKIP_PREFIXES = ("flux-", "lyria", "together-ai-", "fireworks-ai-", "ft:", "container")

# Families: first matching prefix of the slug wins; "nemotron" anywhere wins over "llama".
FAMILY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("llama", "llama"),
    ("codellama", "llama"),
    ("deepseek", "deepseek"),
    ("qwen", "qwen"),
    ("qwq", "qwen"),
    ("mistral", "mistral"),
    ("mixtral", "mistral"),
    ("ministral", "mistral"),
    ("codestral", "mistral"),
    ("pixtral", "mistral"),
    ("magistral", "mistral"),
    ("devstral", "mistral"),
    ("voxtral", "mistral"),
    ("open-mistral", "mistral"),
    ("gpt", "gpt"),
    ("o1", "gpt"),
    ("o3", "gpt"),
    ("o4", "gpt"),
    ("chatgpt", "gpt"),
    ("claude", "claude"),
    ("gemini", "gemini"),
    ("gemma", "gemma"),
    ("codegemma", "gemma"),
    ("grok", "grok"),
    ("glm", "glm"),
    ("kimi", "kimi"),
    ("moonshot", "kimi"),
    ("minimax", "minimax"),
    ("phi", "phi"),
    ("nova", "nova"),
    ("titan", "nova"),
    ("command", "command"),
    ("c4ai", "command"),
    ("jamba", "jamba"),
    ("hermes", "hermes"),
    ("nous-hermes", "hermes"),
    ("sonar", "sonar"),
    ("granite", "granite"),
    ("ernie", "ernie"),
    ("doubao", "doubao"),
    ("seed", "doubao"),
    ("mimo", "mimo"),
    ("palmyra", "palmyra"),
    ("muse", "muse"),
    ("inkling", "inkling"),
)

# Sizes the name does not say (total parameters, billions).
PARAMS_BY_PATTERN: tuple[tuple[re.Pattern[str], Decimal], ...] = (
    (re.compile(r"^deepseek-(v3|r1)(?!.*distill)"), Decimal(671)),
    (re.compile(r"^deepseek-v2(\.5)?$"), Decimal(236)),
    (re.compile(r"^kimi-k2"), Decimal(1000)),
    (re.compile(r"^llama-4-maverick"), Decimal(400)),
    (re.compile(r"^llama-4-scout"), Decimal(109)),
    (re.compile(r"^mixtral-8x7b"), Decimal("46.7")),
    (re.compile(r"^mixtral-8x22b"), Decimal(141)),
    (re.compile(r"^glm-4\.5-air"), Decimal(106)),
    (re.compile(r"^glm-4\.[567]$"), Decimal(355)),
    (re.compile(r"^mistral-nemo"), Decimal(12)),
    (re.compile(r"^mistral-small-3(\.\d)?$"), Decimal(24)),
)

# Widely sold reference models: the benchmark feed.
BENCHMARK_SLUGS = frozenset(
    {
        "llama-3.1-8b",
        "llama-3.1-70b",
        "llama-3.1-405b",
        "llama-3.3-70b",
        "deepseek-v3",
        "deepseek-r1",
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4.5",
        "qwen3-235b-a22b",
        "gpt-oss-120b",
        "mixtral-8x7b",
    }
)

DISPLAY_NAMES: dict[str, str] = {
    "gpt-oss-120b": "gpt-oss-120b",
    "gpt-oss-20b": "gpt-oss-20b",
    "deepseek-chat": "DeepSeek Chat (moving alias)",
    "deepseek-reasoner": "DeepSeek Reasoner (moving alias)",
    "gpt-4o-2024-05-13": "GPT-4o (2024-05-13)",
}

DISPLAY_TOKENS: dict[str, str] = {
    "gpt": "GPT",
    "llama": "Llama",
    "deepseek": "DeepSeek",
    "glm": "GLM",
    "minimax": "MiniMax",
    "vl": "VL",
    "moe": "MoE",
    "oss": "OSS",
    "codellama": "CodeLlama",
    "qwq": "QwQ",
    "mimo": "MiMo",
}

# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    model: ModelIdentity
    variant: str


def resolve_offer(provider: str, model_id: str) -> Resolution | None:
    """The model and the variant a provider's model id names, or None when it is not a chat model."""
    parsed = _canonical(provider, model_id)
    if parsed is None:
        return None
    slug, variant = parsed
    return Resolution(identity_for(slug), variant)


def resolve(provider: str, model_id: str) -> ModelIdentity | None:
    found = resolve_offer(provider, model_id)
    return found.model if found else None


def variant_of(provider: str, model_id: str) -> str:
    found = resolve_offer(provider, model_id)
    return found.variant if found else ""


def lookup_slug(text: str) -> str:
    """A user-typed model name or alias (`claude-3-5-sonnet`, `openai/gpt-4o-mini`) → canonical slug."""
    cleaned = "-".join(text.strip().split())
    parsed = _canonical("", cleaned)
    return parsed[0] if parsed else cleaned.lower()


def identity_for(slug: str) -> ModelIdentity:
    return ModelIdentity(
        slug=slug,
        display_name=display_name(slug),
        family=family_of(slug),
        params_b=params_of(slug),
        is_benchmark=slug in BENCHMARK_SLUGS,
    )


# --------------------------------------------------------------------------------------------
# The normalisation pipeline
# --------------------------------------------------------------------------------------------


def _canonical(provider: str, model_id: str) -> tuple[str, str] | None:
    raw = model_id.strip()
    if not raw or raw.lower().startswith(SKIP_PREFIXES):
        return None
    variants: list[str] = []
    whole, tag = _split_tag(raw)
    name = _strip_path(whole, variants)
    if name is None:
        return None
    name = _strip_vendor(name, variants)
    name = _spell(name, variants)
    had_chat_marker = bool(CHAT_MARKERS & set(name.split("-")))
    name = _strip_tokens(name, variants)
    name = _alias(provider, name)
    if provider in BARE_IS_BASE_PROVIDERS and not had_chat_marker and BASE_CANDIDATE.match(name):
        name += "-base"
    if tag:
        variants.append(tag)
    if _is_skipped(name):
        return None
    return name, "-".join(v for v in variants if v)


def _split_tag(raw: str) -> tuple[str, str]:
    """OpenRouter's `model:batch` / `model:free` → (model, tag)."""
    match = re.search(r":([a-z][a-z-]*)$", raw, flags=re.IGNORECASE)
    if match is None:
        return raw, ""
    return raw[: match.start()], match.group(1).lower()


def _strip_path(name: str, variants: list[str]) -> str | None:
    """Drop org and routing path segments; regions and pools become variants."""
    segments = [s for s in name.split("/") if s]
    if not segments:
        return None
    if len(segments) > 1 and segments[-1].lower() in TRAILING_PATH_VARIANTS:
        variants.append(segments.pop().lower())
    for segment in segments[:-1]:
        lowered = segment.lower()
        if "commitment" in lowered:
            return None
        if lowered == "*":
            continue
        if REGION_SEGMENT.match(lowered) or lowered in PATH_VARIANT_SEGMENTS:
            variants.append(lowered.replace("_", "-"))
    return segments[-1]


def _strip_vendor(name: str, variants: list[str]) -> str:
    """`us.meta.llama3-3-70b-instruct-v1:0` → `llama3-3-70b-instruct` (variant `us`)."""
    lowered = name.lower()
    if lowered in ALIASES:
        return ALIASES[lowered]
    match = DOTTED_VENDOR.match(lowered)
    if match is None:
        return re.sub(r"-v?\d+:\d+$|:\d+$", "", lowered)
    region, vendor, rest = match.groups()
    if region:
        variants.append(region)
    if rest in ALIASES:
        return ALIASES[rest]
    rest = re.sub(r"-v?\d+:\d+$|:\d+$|-v1$", "", rest)
    if vendor == "deepseek" and re.match(r"[vr]\d", rest):
        rest = "deepseek-" + rest
    return rest


def _spell(name: str, variants: list[str]) -> str:
    """Spelling fixes on the whole name: separators, decimals, dates, vendor prefixes."""
    s = name.lower()
    s = re.sub(r"(\d)_(\d)", r"\1.\2", s).replace("_", "-").replace(" ", "-")
    s = re.sub(r"(\d)p(\d)", r"\1.\2", s)  # fireworks: v3p1 → v3.1, 1p5b → 1.5b
    s = re.sub(r"@(\d{4})(-\d+)?$", r"-\1", s)  # vertex: mistral-large@2407 → -2407
    s = re.sub(r"@[^@]*$", "", s)  # vertex pins: @001, @default, @20241022
    for prefix in ("fw-", "spot-"):
        if s.startswith(prefix):
            variants.append(prefix[:-1])
            s = s[len(prefix) :]
    while (stripped := VENDOR_DASH_PREFIX.sub("", s, count=1)) != s:
        s = stripped
    s = _strip_date(s)
    s = re.sub(r"\bllama-?v?(\d)", r"llama-\1", s)
    s = re.sub(r"\bgemma(\d)", r"gemma-\1", s)
    s = re.sub(r"\bqwen-v?(\d(?:\.\d+)?)(?=-|$)", r"qwen\1", s)  # qwen-2.5-72b, not qwen-14b
    s = re.sub(r"(?<![\d.])(\d)-(\d{1,2})(?!\d|\.\d|x\d|[bkmt](?![a-z]))", r"\1.\2", s)
    s = re.sub(r"^claude-(\d+(?:\.\d+)?)-(opus|sonnet|haiku)", _claude_order, s)
    s = re.sub(r"^claude-(opus|sonnet|haiku)-(3(?:\.\d)?)(?=-|$)", r"claude-\2-\1", s)
    return s


def _strip_date(s: str) -> str:
    match = re.search(r"-(20\d\d)-?(\d\d)-?(\d\d)$|-(2[3-9][01]\d[0-3]\d)$", s)
    if match is None or s in DISTINCT_SNAPSHOTS:
        return s
    return s[: match.start()]


def _claude_order(match: re.Match[str]) -> str:
    version, tier = match.group(1), match.group(2)
    if Decimal(version) >= 4:
        return f"claude-{tier}-{version}"
    return match.group(0)


def _strip_tokens(name: str, variants: list[str]) -> str:
    tokens = [t for t in name.split("-") if t and t not in NOISE_TOKENS]
    tokens = _drop_chat(tokens)
    if "latest" in tokens and [t for t in tokens if t != "latest"] not in ([], ["chat"]):
        tokens = [t for t in tokens if t != "latest"]
    popped: list[str] = []
    while len(tokens) > 1 and tokens[-1] in VARIANT_TOKENS:
        if VARIANT_NAME_EXCEPTIONS.match("-".join(tokens[:-1])):
            break
        popped.insert(0, tokens.pop())
    variants.extend(popped)
    return "-".join(tokens)


def _drop_chat(tokens: list[str]) -> list[str]:
    """`llama-2-70b-chat` → `llama-2-70b`; `deepseek-chat`, `gpt-5-chat` keep theirs."""
    sized = [i for i, t in enumerate(tokens) if re.fullmatch(r"\d+(\.\d+)?b", t)]
    if not sized:
        return tokens
    return [t for i, t in enumerate(tokens) if not (t == "chat" and i > sized[0])]


def _alias(provider: str, name: str) -> str:
    provider_table = PROVIDER_ALIASES.get(provider, {})
    if name in provider_table:
        return provider_table[name]
    if name in ALIASES:
        return ALIASES[name]
    for pattern, replacement in PATTERN_ALIASES:
        if pattern.match(name):
            return pattern.sub(replacement, name)
    return name


def _is_skipped(name: str) -> bool:
    if name.startswith(SKIP_PREFIXES) or any(part in name for part in SKIP_SUBSTRINGS):
        return True
    return bool(SKIP_TOKENS & set(name.split("-")))


# --------------------------------------------------------------------------------------------
# Model metadata from the slug
# --------------------------------------------------------------------------------------------


def family_of(slug: str) -> str:
    if "nemotron" in slug:
        return "nemotron"
    for prefix, family in FAMILY_PREFIXES:
        if slug.startswith(prefix):
            return family
    return re.sub(r"[\d.]+$", "", slug.split("-")[0]) or slug.split("-")[0]


def params_of(slug: str) -> Decimal | None:
    for pattern, size in PARAMS_BY_PATTERN:
        if pattern.search(slug):
            return size
    for token in slug.split("-"):
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([bt])", token)
        if match:
            value = Decimal(match.group(1))
            return value * 1000 if match.group(2) == "t" else value
    return None


def display_name(slug: str) -> str:
    if slug in DISPLAY_NAMES:
        return DISPLAY_NAMES[slug]
    if re.match(r"^o\d", slug):
        return slug
    tokens = slug.split("-")
    if tokens[0] == "gpt" and len(tokens) > 1:
        rest = [_display_token(t) if _is_size(t) else t for t in tokens[2:]]
        return " ".join([f"GPT-{tokens[1]}", *rest])
    return " ".join(_display_token(t) for t in tokens)


def _is_size(token: str) -> bool:
    return bool(re.fullmatch(r"\d+(\.\d+)?[bmkt]", token))


def _display_token(token: str) -> str:
    if token in DISPLAY_TOKENS:
        return DISPLAY_TOKENS[token]
    if _is_size(token) or re.fullmatch(r"[a-z]\d+(\.\d+)?[a-z]?", token):
        return token.upper()
    if re.fullmatch(r"\d+x\d+b", token):
        return token.replace("b", "B")
    return token[:1].upper() + token[1:]
