"""What every benchmark scenario returns, and the table, JSON and Markdown written from it."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS_DIR = Path(__file__).with_name("results")


@dataclass
class Row:
    """One measured figure: `case` is what ran (e.g. "pricegraph sqlite c=16"), `metric` what was measured."""

    scenario: str
    case: str
    metric: str
    value: float
    unit: str
    target: str = ""  # e.g. "<= 0.5" — a goal, reported, never asserted
    note: str = ""
    extra: dict[str, float | str] = field(default_factory=dict)


def table(rows: list[Row]) -> str:
    headers = ["scenario", "case", "metric", "value", "unit", "target", "note"]
    cells = [
        [r.scenario, r.case, r.metric, f"{r.value:,.3f}".rstrip("0").rstrip("."), r.unit, r.target, r.note]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def markdown(rows: list[Row], title: str) -> str:
    out = [
        f"# {title}",
        "",
        f"{platform.node()} · {platform.python_version()} · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "| scenario | case | metric | value | unit | target | note |",
        "|---|---|---|---:|---|---|---|",
    ]
    out += [
        f"| {r.scenario} | {r.case} | {r.metric} | {r.value:,.3f} | {r.unit} | {r.target} | {r.note} |" for r in rows
    ]
    return "\n".join(out) + "\n"


def write(rows: list[Row], name: str) -> tuple[Path, Path]:
    RESULTS_DIR.mkdir(exist_ok=True)
    json_path, md_path = RESULTS_DIR / f"{name}.json", RESULTS_DIR / f"{name}.md"
    json_path.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    md_path.write_text(markdown(rows, f"Pricegraph benchmarks ({name})"))
    return json_path, md_path
