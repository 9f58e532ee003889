"""`coaxiom prices MODEL`, `coaxiom history MODEL PROVIDER`, `coaxiom watch MODEL`: a table, or `--json`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from coaxiom.client import CoaxiomClient
from coaxiom.errors import CoaxiomError


def dumps(value: Any) -> str:
    """JSON with Decimal written as the exact number it is."""
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coaxiom", description="LLM-inference prices from Coaxiom.")
    p.add_argument("--api-key", help="API key (default: $COAXIOM_API_KEY)")
    p.add_argument("--base-url", help="API base URL (default: $COAXIOM_BASE_URL, else https://coaxiom.io/api/v1/)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub = p.add_subparsers(dest="command", required=True)
    prices = sub.add_parser("prices", help="live prices of a model (or every model)")
    prices.add_argument("model", nargs="?")
    prices.add_argument("--provider")
    history = sub.add_parser("history", help="OHLC candles of one model at one provider")
    history.add_argument("model")
    history.add_argument("provider")
    history.add_argument("--days", type=int, default=30)
    history.add_argument("--interval", default="1d", choices=["1d", "1h"])
    watch = sub.add_parser("watch", help="stream live price changes")
    watch.add_argument("model", nargs="?")
    watch.add_argument("--provider")
    watch.add_argument("--min-change-pct")
    for name in ("models", "providers"):
        sub.add_parser(name, help=f"the tracked {name}")
    return p


def run(args: argparse.Namespace, out: Any) -> None:
    # --json is accepted before or after the subcommand
    client = CoaxiomClient(api_key=args.api_key, base_url=args.base_url)
    try:
        if args.command == "prices":
            result = client.prices(args.model, args.provider)
            if args.json:
                print(dumps(result.raw), file=out)
                return
            rows: list[tuple[Any, ...]] = [
                (
                    p.model or result.model,
                    p.provider,
                    p.variant,
                    p.input_per_1m,
                    p.output_per_1m,
                    p.blended_per_1m,
                    p.context_window,
                    p.status,
                )
                for p in result.prices
            ]
            headers = ("model", "provider", "variant", "input/1M", "output/1M", "blended/1M", "context", "status")
            print(table(headers, rows), file=out)
        elif args.command == "history":
            h = client.history(args.model, args.provider, args.days, args.interval)
            if args.json:
                print(dumps(h.raw), file=out)
                return
            candles: list[tuple[Any, ...]] = [(c.date, c.open, c.high, c.low, c.close, c.change_pct) for c in h.candles]
            print(table(("date", "open", "high", "low", "close", "change %"), candles), file=out)
        elif args.command == "models":
            models = client.models()
            if args.json:
                print(dumps([m.raw for m in models]), file=out)
                return
            listed: list[tuple[Any, ...]] = [
                (m.slug, m.display_name, m.family, m.context_window, m.provider_count) for m in models
            ]
            print(table(("slug", "name", "family", "context", "providers"), listed), file=out)
        elif args.command == "providers":
            providers = client.providers()
            if args.json:
                print(dumps([p.raw for p in providers]), file=out)
                return
            print(
                table(
                    ("slug", "name", "models", "status"), [(p.slug, p.name, p.model_count, p.status) for p in providers]
                ),
                file=out,
            )
        elif args.command == "watch":
            columns = ("observed", "model", "provider", "variant", "blended/1M", "change %")
            if not args.json:
                print(table(columns, []), file=out, flush=True)
            for tick in client.subscribe_prices(args.model, args.provider, args.min_change_pct):
                if args.json:
                    print(dumps(tick.raw), file=out, flush=True)
                else:
                    row = (
                        tick.observed_at,
                        tick.model,
                        tick.provider,
                        tick.variant,
                        tick.blended_per_1m,
                        tick.change_pct,
                    )
                    print(table(columns, [row]).splitlines()[1], file=out, flush=True)
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    args = parser().parse_args([a for a in argv if a != "--json"])
    args.json = as_json
    try:
        run(args, sys.stdout)
    except KeyboardInterrupt:
        return 130
    except CoaxiomError as exc:
        print(f"coaxiom: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
