"""Capability history: one JSON line per run in ``<report dir>/history.jsonl``.

A line holds what a trend needs and what makes a point reproducible (time, commit, models with
their fingerprints and served identities, dataset digests, seed, package versions, whether the
run was cut short) and, per cell, its metrics, coverage
and outcome; never predictions or answers, so the file stays small after years of nightly runs
and never accumulates model text. One line per run, written in one append, so concurrent runs
into one directory cannot interleave inside a line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from iqa_eval.report.html import state

HISTORY_NAME = "history.jsonl"
RUN_KEYS = (
    "started",
    "finished",
    "git_commit",
    "git_dirty",
    "suite_version",
    "seed",
    "models",
    "datasets",
    "packages",
    "platform",
    "gates",
    "baseline",
    "partial",
    "merged_from",
    "identity_changes",
    "exit_status",
)
CELL_KEYS = (
    "id",
    "test",
    "stage",
    "model",
    "dataset",
    "setting",
    "attribute",
    "protocol",
    "strategy",
    "subset",
    "n_items",
    "n_queries",
    "n_failed",
    "coverage",
    "primary_metric",
    "metrics",
    "outcome",
)


class HistoryError(ValueError):
    """A history file that cannot be read; the message names the file and the line."""


def history_line(report: Mapping[str, Any]) -> dict[str, Any]:
    run = report["run"]
    cells = []
    for cell in report["cells"]:
        entry = {key: cell[key] for key in CELL_KEYS if key in cell}
        entry["known_gap"] = state(cell)[0] == "known gap"
        baseline = cell.get("baseline")
        if baseline:
            entry["baseline"] = {k: baseline.get(k) for k in ("delta", "ci", "p_value", "regressed")}
        cells.append(entry)
    line = {
        "schema_version": report["schema_version"],
        "run": {key: run[key] for key in RUN_KEYS if key in run},
        "cells": cells,
    }
    if report.get("tests"):
        # A user's own tests by id, with how many of their judgements held: enough to chart
        # a must-hold behaviour over model versions without the answers themselves.
        line["tests"] = [
            {
                "test": t["test"],
                "outcome": t["outcome"],
                "judgements": len(t["judgements"]),
                "failed_judgements": sum(j.get("failure") is not None for j in t["judgements"]),
                "cells": list(t["cells"]),
            }
            for t in report["tests"]
        ]
    return line


def append_history(directory: Path, report: Mapping[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / HISTORY_NAME
    data = (json.dumps(history_line(report), separators=(",", ":"), allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every run of a history file, oldest first (by start time: shards and merges may append
    out of order)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HistoryError(f"{path}: no history yet (every pytest run of the suite appends to it)") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as err:
            raise HistoryError(f"{path}:{number}: not a JSON line: {err.msg}") from None
        if not isinstance(line, dict) or not isinstance(line.get("run"), dict) or "cells" not in line:
            raise HistoryError(f"{path}:{number}: not a history line (no 'run' and 'cells')")
        if not isinstance(line["run"].get("started"), str):
            raise HistoryError(f"{path}:{number}: run has no start time")
        lines.append(line)
    return sorted(lines, key=lambda line: str(line["run"]["started"]))
