"""The ``iqa-eval`` command: work with reports, the cache and datasets outside a pytest run.

The evaluation itself runs under pytest (``pytest`` in the repository root); this command covers
what comes before and after it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from iqa_eval.cache import ResponseCache
from iqa_eval.datasets.builtin import BuiltinDataset
from iqa_eval.report.html import write_html
from iqa_eval.report.writer import HTML_NAME


class CliError(Exception):
    """A user mistake, reported in one line without a traceback."""


def _load_report(path: Path) -> dict[str, object]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"{path}: no such report") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CliError(f"{path}: not a JSON report: {err}") from None
    if not isinstance(report, dict) or "cells" not in report or "run" not in report:
        raise CliError(f"{path}: not an iqa-eval report (no 'run' and 'cells')")
    return report


def cmd_report(args: argparse.Namespace) -> int:
    report = _load_report(Path(args.json))
    out = Path(args.output) if args.output else Path(args.json).with_name(HTML_NAME)
    write_html(out, report)
    print(out)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    cache = ResponseCache(args.cache)
    if args.action == "stats":
        print(
            f"{cache.path}: {cache.count()} answers, integrity {'ok' if cache.integrity_ok() else 'FAILED'}"
        )
    elif args.action == "clear":
        print(f"{cache.path}: removed {cache.clear()} answers")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    builtin = BuiltinDataset(args.cache)
    card = builtin.card
    print(f"{card.name}: {card.description}")
    print(f"  ground truth: {card.ground_truth}; aggregation: {card.aggregation}")
    print(f"  license: {card.license}")
    for setting, attribute in builtin.cells():
        print(f"  {setting}_{attribute}: {len(builtin.items(setting, attribute))} items")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="iqa-eval", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="render the HTML report again from a JSON report")
    r.add_argument("json", help="path of iqa-report.json")
    r.add_argument("-o", "--output", help="HTML file to write (default: beside the JSON)")
    r.set_defaults(func=cmd_report)
    c = sub.add_parser("cache", help="inspect or clear the response cache")
    c.add_argument("action", choices=["stats", "clear"])
    c.add_argument("--cache", default=".iqa_cache", help="cache directory (default .iqa_cache)")
    c.set_defaults(func=cmd_cache)
    d = sub.add_parser("datasets", help="list the datasets and their cells")
    d.add_argument("action", choices=["list"])
    d.add_argument("--cache", default=".iqa_cache", help="cache directory (default .iqa_cache)")
    d.set_defaults(func=cmd_datasets)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as err:
        print(f"iqa-eval: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
