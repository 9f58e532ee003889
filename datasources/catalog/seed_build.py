"""Build seed.json from a LiteLLM price file.

    .venv/bin/python -m datasources.catalog.seed_build /work/shared/data/litellm_model_prices.json \
        [--version 1.109.1] [--out datasources/catalog/seed.json]

The output is deterministic (sorted, no timestamps), one offer per line so diffs stay readable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from pathlib import Path

from datasources.catalog.entries import OfferEntry
from datasources.catalog.litellm import SERVICE_TIERS, load_json, parse_litellm_report
from datasources.catalog.seed import LICENSE, SEED_PATH, offer_to_dict


def render_seed(offers: list[OfferEntry], source: str) -> str:
    head = json.dumps({"source": source, "license": LICENSE}, ensure_ascii=False)[:-1]
    lines = [json.dumps(offer_to_dict(o), ensure_ascii=False, sort_keys=False) for o in offers]
    return head + ', "offers": [\n' + ",\n".join(lines) + "\n]}\n"


def build(source_path: Path, out: Path, version: str | None) -> tuple[list[OfferEntry], Counter[str]]:
    digest = hashlib.sha256(source_path.read_bytes()).hexdigest()
    report = parse_litellm_report(load_json(source_path), str(source_path))
    source = f"litellm {version or '(version unknown)'} model_prices_and_context_window.json sha256:{digest}"
    out.write_text(render_seed(report.offers, source), encoding="utf-8")
    return report.offers, report.skipped


def summary(offers: list[OfferEntry], skipped: Counter[str]) -> str:
    providers: dict[str, set[str]] = {}
    for offer in offers:
        providers.setdefault(offer.model.slug, set()).add(offer.provider)
    top = sorted(providers.items(), key=lambda item: (-len(item[1]), item[0]))[:40]
    dimensions: Counter[str] = Counter()
    for offer in offers:
        d = offer.dimensions
        for name in ("cache_read", "cache_write", "cache_write_1h", "reasoning", "per_request", "per_search"):
            dimensions[name] += getattr(d, name) is not None
        dimensions["tiers"] += bool(d.tiers)
    services = Counter(tier for o in offers if (tier := o.variant.rsplit("-", 1)[-1]) in set(SERVICE_TIERS.values()))
    lines = [
        f"offers: {len(offers)}  models: {len(providers)}  providers: {len({o.provider for o in offers})}",
        "offers pricing a dimension: " + "  ".join(f"{name}: {n}" for name, n in dimensions.items()),
        "service-tier variants: " + "  ".join(f"{name}: {n}" for name, n in sorted(services.items())),
        "skipped:",
        *(f"  {count:5}  {reason}" for reason, count in sorted(skipped.items(), key=lambda i: (-i[1], i[0]))),
        "most offered models (providers):",
        *(f"  {slug}: {len(names)}" for slug, names in top),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--out", type=Path, default=SEED_PATH)
    parser.add_argument("--version", default=None, help="LiteLLM release the file comes from")
    args = parser.parse_args(argv)
    offers, skipped = build(args.source, args.out, args.version)
    print(f"wrote {args.out}")
    print(summary(offers, skipped))


if __name__ == "__main__":
    main()
