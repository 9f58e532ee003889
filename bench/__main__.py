"""`python -m bench [--smoke] [--only NAME ...] [--out NAME]`: run the benchmark scenarios, print the table,
write bench/results/<out>.json and .md (out: `latest`, or `smoke` with --smoke).

Each scenario is a module `bench/<name>.py` with `run(smoke: bool) -> list[Row]`. A module that does not
exist yet is reported as skipped; a scenario that raises becomes an error row and the others still run.
`--smoke` uses tiny durations and sizes so CI can run it in about a minute.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import Row, table, write  # noqa: E402

SCENARIOS = ["gateway", "graphql", "fanout", "history", "catalog"]


def run_scenario(name: str, smoke: bool) -> list[Row]:
    if importlib.util.find_spec(f"bench.{name}") is None:
        return [Row(name, "-", "skipped", 0, "", note=f"bench/{name}.py does not exist yet")]
    started = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{name}")
        rows = list(module.run(smoke))
    except Exception as exc:  # noqa: BLE001 — one broken scenario must not stop the others
        traceback.print_exc(file=sys.stderr)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return [Row(name, "-", "error", 0, "", note=f"{type(exc).__name__}: {first}")]
    rows.append(Row(name, "-", "scenario wall time", time.monotonic() - started, "s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny durations and sizes (CI)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--out", metavar="NAME", help="results file name (default: latest, or smoke with --smoke)")
    args = parser.parse_args(argv)
    out = args.out or ("smoke" if args.smoke else "latest")
    rows: list[Row] = []
    for name in args.only or SCENARIOS:
        print(f"== {name}{' (smoke)' if args.smoke else ''}", file=sys.stderr, flush=True)
        rows += run_scenario(name, args.smoke)
    print(table(rows))
    json_path, md_path = write(rows, out)
    print(f"\nwrote {json_path} and {md_path}")
    errors = [r for r in rows if r.metric == "error"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
