"""The ``iqa-eval`` command: run the suite, and work with reports, the cache and datasets outside
a pytest run.

The evaluation itself runs under pytest: ``iqa-eval run ARGS`` is ``pytest --pyargs iqa_eval.suite
ARGS`` (the suite as the package ships it, from any folder); the other commands cover what comes
before and after a run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from iqa_eval.datasets.builtin import BuiltinDataset
from iqa_eval.datasets.registry import NAMES
from iqa_eval.evaluation.baseline import DEFAULT_TOLERANCE
from iqa_eval.evaluation.gates_init import DEFAULT_MARGIN, profile_text
from iqa_eval.execution.cache import ResponseCache, export_replay
from iqa_eval.models.measurements import MeasurementCache
from iqa_eval.models.replay import ReplayError
from iqa_eval.report.compare import compare_reports
from iqa_eval.report.history import HISTORY_NAME, HistoryError, append_history, read_history
from iqa_eval.report.html import write_html
from iqa_eval.report.merge import MergeError, merge_reports
from iqa_eval.report.step_summary import append_step_summary
from iqa_eval.report.tables import FORMATS, TablesError, tables
from iqa_eval.report.trend import write_trend
from iqa_eval.report.writer import HTML_NAME, write_json
from iqa_eval.sampling import subsets

BASELINES = Path("fixtures/baselines")
TREND_NAME = "iqa-trend.html"


class CliError(Exception):
    """A user mistake, reported in one line without a traceback."""


def _load_report(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"{path}: no such report") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CliError(f"{path}: not a JSON report: {err}") from None
    if not isinstance(report, dict) or "cells" not in report or "run" not in report:
        raise CliError(f"{path}: not an iqa-eval report (no 'run' and 'cells')")
    return report


def _finished_reports(paths: Sequence[str], include_partial: bool) -> list[tuple[str, dict[str, Any]]]:
    """The reports at ``paths``; one of a run that was cut short only when asked for, since its
    cells are whatever happened to finish."""
    reports = [(path, _load_report(Path(path))) for path in paths]
    for path, report in reports:
        if report["run"].get("partial") and not include_partial:
            raise CliError(
                f"{path} is the report of a run that was cut short; pass --include-partial to use it"
            )
    return reports


def _whole_run(path: str, what: str) -> dict[str, Any]:
    """The report of a whole run (neither cut short nor one shard), for what is built from it."""
    report = _load_report(Path(path))
    run = report["run"]
    if run.get("partial") or run.get("shard"):
        part = f"shard {run['shard']}" if run.get("shard") else "a partial run"
        raise CliError(f"{path} is {part}; {what} the report of a whole run (iqa-eval merge the shards)")
    return report


def cmd_report(args: argparse.Namespace) -> int:
    report = _load_report(Path(args.json))
    out = Path(args.output) if args.output else Path(args.json).with_name(HTML_NAME)
    write_html(out, report)
    print(out)
    return 0


def cmd_trend(args: argparse.Namespace) -> int:
    directory = Path(args.report_dir)
    try:
        history = read_history(directory / HISTORY_NAME)
    except HistoryError as err:
        raise CliError(str(err)) from None
    out = Path(args.output) if args.output else directory / TREND_NAME
    write_trend(out, history, include_partial=args.include_partial)
    print(out)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    (_, before), (_, after) = _finished_reports([args.a, args.b], args.include_partial)
    table, notes = compare_reports(before, after, tolerance=args.tolerance, seed=int(after["run"]["seed"]))
    print(f"A = {args.a}\nB = {args.b}  (delta = B - A; paired over the items both judged)")
    if not table.empty:
        signed = {name: (lambda x: "n/a" if pd.isna(x) else f"{x:+.3f}") for name in ("A", "B", "delta")}
        width = int(table["cell"].str.len().max())
        formatters = {
            **signed,
            "cell": lambda text: str(text).ljust(width),
            "p": lambda x: "n/a" if pd.isna(x) else f"{x:.3g}",
        }
        with pd.option_context("display.width", 250, "display.max_colwidth", 120, "display.max_rows", None):
            print(table.to_string(index=False, formatters=formatters, justify="left"))
    print("; ".join(notes))
    return 1 if args.fail_on_regression and bool(table["regressed"].any()) else 0


def cmd_tables(args: argparse.Namespace) -> int:
    reports = _finished_reports(args.reports, args.include_partial)
    try:
        text = tables(reports, args.format, plcc=args.plcc)
    except TablesError as err:
        raise CliError(str(err)) from None
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(args.output)
    else:
        print(text, end="")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    reports = [(path, _load_report(Path(path))) for path in args.reports]
    try:
        merged = merge_reports(reports)
    except MergeError as err:
        raise CliError(str(err)) from None
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, merged)
    write_html(out.with_suffix(".html"), merged)
    print(out)
    print(out.with_suffix(".html"))
    if not args.no_history:
        print(append_history(out.parent, merged))
    # The final job of a sharded CI run: its summary is the one that covers the whole run.
    summary = append_step_summary(merged)
    if summary is not None:
        print(summary)
    return 0


def _baseline_name(report: dict[str, Any]) -> str:
    specs = report["run"].get("model_specs") or [m["spec"] for m in report["run"]["models"]]
    return "+".join(re.sub(r"[^A-Za-z0-9._-]+", "-", str(spec)).strip("-") for spec in specs) or "baseline"


def cmd_bless(args: argparse.Namespace) -> int:
    """A baseline is the report minus the model's answers: the paired test needs predictions
    only, and a file kept in the repository should not hold model text."""
    report = _whole_run(args.report, "bless")
    run = report["run"]
    if not report["cells"]:
        raise CliError(f"{args.report} has no cells")
    out = Path(args.to) if args.to else BASELINES / f"{_baseline_name(report)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    blessed = {**report, "cells": [{**cell, "examples": []} for cell in report["cells"]]}
    blessed["run"] = {**run, "blessed_from": str(args.report)}
    write_json(out, blessed)
    print(f"{out}: baseline of {len(report['cells'])} cells; use it with --iqa-baseline {out}")
    return 0


def cmd_gates_init(args: argparse.Namespace) -> int:
    report = _whole_run(args.report, "adopt the gate from")
    if not 0 <= args.margin < 1:
        raise CliError(f"--margin must lie in [0, 1), got {args.margin}")
    out = Path(args.to)
    if out.exists() and not args.force:
        raise CliError(f"{out} exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(profile_text(report, str(args.report), args.margin), encoding="utf-8")
    outcomes = report["run"].get("outcomes") or {}
    print(
        f"{out}: {outcomes.get('passed', 0)} passed cells held to their bound less {args.margin:g}, "
        f"{outcomes.get('failed', 0)} failed cells as known gaps; use it with --iqa-gates={out}"
    )
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    cache = ResponseCache(args.cache)
    measurements = MeasurementCache(args.cache)
    if args.action == "stats":
        print(
            f"{cache.path}: {cache.count()} answers, integrity {'ok' if cache.integrity_ok() else 'FAILED'}"
        )
        for held in cache.identities():
            print(f"  {held.answers:>8} answers of {held.key}: {held.describe()}")
        unidentified = cache.unidentified()
        if unidentified:
            print(
                f"  {unidentified:>8} answers from before identities were recorded: never replayed "
                "(iqa-eval cache clear removes them)"
            )
        print(f"{measurements.path}: {measurements.count()} expert measurements")
    elif args.action == "clear":
        print(f"{cache.path}: removed {cache.clear()} answers")
        print(f"{measurements.path}: removed {measurements.clear()} expert measurements")
    elif args.action == "export":
        if not args.file:
            raise CliError("cache export needs a FILE to write")
        try:
            count = export_replay(cache, Path(args.file), model=args.model)
        except ReplayError as err:
            raise CliError(str(err)) from None
        print(f"{args.file}: {count} recorded answers; replay them with --iqa-model replay:{args.file}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    builtin = BuiltinDataset(args.cache)
    card = builtin.card
    print(f"{card.name}: {card.description}")
    print(f"  ground truth: {card.ground_truth}; aggregation: {card.aggregation}")
    print(f"  license: {card.license}")
    for setting, attribute in builtin.cells():
        print(f"  {setting}_{attribute}: {len(builtin.items(setting, attribute))} items")
    return subsets.cmd_datasets_list(args)


SUITE = "iqa_eval.suite"


def run_suite(pytest_args: Sequence[str]) -> int:
    """The shipped suite under pytest, from the current folder: its pyproject.toml, conftest.py,
    reports and cache are the ones that count, as with ``pytest --pyargs iqa_eval.suite``."""
    return int(pytest.main(["--pyargs", SUITE, *pytest_args]))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="iqa-eval", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "run",
        help=f"run the suite from this folder: everything after 'run' goes to pytest --pyargs {SUITE}",
        add_help=False,
    )
    r = sub.add_parser("report", help="render the HTML report again from a JSON report")
    r.add_argument("json", help="path of iqa-report.json")
    r.add_argument("-o", "--output", help="HTML file to write (default: beside the JSON)")
    r.set_defaults(func=cmd_report)
    t = sub.add_parser("trend", help="chart capability per attribute and protocol over the run history")
    t.add_argument(
        "--report-dir", default="reports", help="directory holding history.jsonl (default reports)"
    )
    t.add_argument("-o", "--output", help=f"HTML file to write (default: {TREND_NAME} in the report dir)")
    t.add_argument("--include-partial", action="store_true", help="also chart runs that were cut short")
    t.set_defaults(func=cmd_trend)
    m = sub.add_parser("compare", help="table of metric deltas for the cells two reports share")
    m.add_argument("a", help="the earlier report (iqa-report.json)")
    m.add_argument("b", help="the later report")
    m.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"drop a cell may show before it counts as regressed (default {DEFAULT_TOLERANCE})",
    )
    m.add_argument("--fail-on-regression", action="store_true", help="exit with 1 when any cell regressed")
    m.add_argument(
        "--include-partial", action="store_true", help="accept reports of runs that were cut short"
    )
    m.set_defaults(func=cmd_compare)
    tb = sub.add_parser("tables", help="the study's stage-1 and stage-2 tables from one or more reports")
    tb.add_argument(
        "reports", nargs="+", help="iqa-report.json files (one run with several models, or one per model)"
    )
    tb.add_argument(
        "--format", choices=FORMATS, default="md", help="md (default), csv (long form: a row per cell), latex"
    )
    tb.add_argument("--plcc", action="store_true", help="show PLCC beside SRCC")
    tb.add_argument(
        "--include-partial", action="store_true", help="accept reports of runs that were cut short"
    )
    tb.add_argument("-o", "--output", help="file to write (default: standard output)")
    tb.set_defaults(func=cmd_tables)
    g = sub.add_parser("merge", help="join the reports of shards (--iqa-shard) into the report of one run")
    g.add_argument("reports", nargs="+", help="iqa-report.json files to merge")
    g.add_argument("-o", "--output", required=True, help="merged JSON report to write (HTML beside it)")
    g.add_argument(
        "--no-history", action="store_true", help="do not append the run to history.jsonl beside it"
    )
    g.set_defaults(func=cmd_merge)
    b = sub.add_parser("baseline", help="manage baselines for --iqa-baseline")
    b_sub = b.add_subparsers(dest="action", required=True)
    bless = b_sub.add_parser("bless", help="store a report as the baseline later runs are compared with")
    bless.add_argument("report", help="iqa-report.json of a whole run")
    bless.add_argument("--to", help=f"baseline file (default {BASELINES}/<models>.json)")
    bless.set_defaults(func=cmd_bless)
    gt = sub.add_parser("gates", help="gate profiles for --iqa-gates")
    gt_sub = gt.add_subparsers(dest="action", required=True)
    gi = gt_sub.add_parser("init", help="write a profile that holds a model to what a run measured")
    gi.add_argument("report", help="iqa-report.json of a whole run")
    gi.add_argument("--to", default="iqa-gates.toml", help="profile to write (default iqa-gates.toml)")
    gi.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"how far under its measured bound a passed cell's threshold goes (default {DEFAULT_MARGIN})",
    )
    gi.add_argument("--force", action="store_true", help="replace an existing profile")
    gi.set_defaults(func=cmd_gates_init)
    c = sub.add_parser("cache", help="inspect, clear or export the response cache")
    c.add_argument("action", choices=["stats", "clear", "export"])
    c.add_argument("file", nargs="?", help="export: the JSON Lines replay file to write")
    c.add_argument("--model", help="export: only the answers of this identity (see cache stats)")
    c.add_argument("--cache", default=".iqa_cache", help="cache directory (default .iqa_cache)")
    c.set_defaults(func=cmd_cache)
    d = sub.add_parser("datasets", help="list the datasets, verify a copy, build Aug-KADID")
    dsub = d.add_subparsers(dest="action", required=True)
    dl = dsub.add_parser(
        "list", help="the built-in's cells, the public datasets and your own data's CSV layout"
    )
    dl.add_argument("--cache", default=".iqa_cache", help="cache directory (default .iqa_cache)")
    dl.set_defaults(func=cmd_datasets)
    dv = dsub.add_parser("verify", help="check a dataset copy or your own CSV: files, rows, counts, range")
    dv.add_argument("name", help=f"one of {', '.join(NAMES)}; or NAME[:ATTRIBUTE] for your own CSV")
    dv.add_argument("path", help="the dataset folder; or your CSV, or a folder holding labels.csv")
    dv.add_argument("--decode", action="store_true", help="also decode every image (slow)")
    dv.set_defaults(func=subsets.cmd_datasets_verify)
    da = dsub.add_parser("make-aug-kadid", help="build Aug-KADID from a KADID-10k copy")
    da.add_argument("kadid", help="the KADID-10k folder (dmos.csv, images/)")
    da.add_argument("out", help="a new folder for Aug-KADID")
    da.add_argument("--seed", type=int, default=0)
    da.set_defaults(func=subsets.cmd_make_aug_kadid)
    s = sub.add_parser("select", help="difficult subsets of a public dataset, cached for the suite")
    s.add_argument("name", help=f"one of {', '.join(NAMES)}")
    s.add_argument("path", help="the dataset folder")
    s.add_argument("--n", type=int, default=150, help="items per cell (default 150)")
    s.add_argument("--cell", action="append", help="e.g. fr_structure (repeatable; default: all cells)")
    s.add_argument("--features", default="handcrafted", help="handcrafted or hf:<CLIP path or hub id>")
    s.add_argument(
        "--proxy", action="append", help="expert measure as proxy (repeatable; default per setting)"
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--max-candidates", type=int, default=None, help="select among a seeded random subset")
    s.add_argument("--cache", default=".iqa_cache", help="where the suite looks for selections")
    s.add_argument("-o", "--output", help="also write the manifests to this JSON file")
    s.set_defaults(func=subsets.cmd_select)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:
        # Not through argparse: pytest's options (-m, -k, -n, --iqa-*) are pytest's to parse.
        return run_suite(argv[1:])
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as err:
        print(f"iqa-eval: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
