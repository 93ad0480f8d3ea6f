"""A gate profile written from a run: adopting the gate for a model as it is today.

On its first run a typical open model misses many absolute gates (the study found open models
near chance on several attributes). Hand-writing a ``known_gap`` per cell is the only other
remedy; this writes the profile from the report instead: every failed cell becomes a known gap
whose reason carries its measured value and interval, every passed cell a threshold ``margin``
under the bound its gate judged, so the next run fails only on a real drop or a fixed gap.
Rules name each cell by its id (stage-2 cells with their system left open, since the run chooses
it), so they hold for exactly the cells the run measured.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_MARGIN = 0.05
"""Under the judged bound: about the spread of a lower bound between two runs of one model on the
built-in set's 16-group cells, so an unchanged model passes and a drop of a few points fails."""


def _literal(text: str) -> str:
    """``text`` as an fnmatch pattern that matches only itself."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def cell_pattern(cell: Mapping[str, Any]) -> str:
    """The cell's id as a pattern; a stage-2 cell's system is whatever the run chooses."""
    if cell["stage"] == 2:
        head = "/".join(
            _literal(str(part))
            for part in (cell["model"], cell["dataset"], f"{cell['setting']}_{cell['attribute']}")
        )
        return f"{head}/*/*/{_literal(str(cell['subset']))}"
    return _literal(str(cell["id"]))


def _toml(value: object) -> str:
    # A JSON string with ASCII escapes is a valid TOML basic string; numbers and booleans agree.
    return json.dumps(value, ensure_ascii=True)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def rule_for(cell: Mapping[str, Any], margin: float, started: str) -> tuple[dict[str, object], str] | None:
    """(the rule's keys, a comment) for one cell; None for a cell no rule should judge."""
    outcome = cell.get("outcome")
    gate = cell.get("gate") or {}
    name = str(gate.get("metric") or cell.get("primary_metric") or "")
    metric = (cell.get("metrics") or {}).get(name) or {}
    value = metric.get("value")
    low, high = metric.get("ci") or (None, None)
    measured = f"{name} {_num(value)} [{_num(low)}, {_num(high)}], coverage {cell.get('coverage', 0):.1%}"
    keys: dict[str, object] = {"models": _literal(str(cell["model"])), "cells": cell_pattern(cell)}
    if gate.get("metric"):
        keys["metric"] = name
    bound = str(gate.get("bound") or "lower")
    if outcome == "failed":
        # The gap is a gap against the gate it missed: kept, so that closing it is noticed.
        keys.update(
            bound=bound, threshold=gate.get("threshold", 0.0), min_coverage=gate.get("min_coverage", 0.9)
        )
        keys["known_gap"] = f"measured {measured} in the run of {started}"
        return keys, f"failed: {measured}"
    if outcome != "passed":
        return None
    judged = low if bound == "lower" else value
    if judged is None:
        return None
    keys["bound"] = bound
    keys["threshold"] = round(max(-1.0, float(judged) - margin), 3)
    keys["min_coverage"] = gate.get("min_coverage", 0.9)
    return keys, f"passed: {measured}; threshold {margin:g} under its {bound} bound"


def profile_text(report: Mapping[str, Any], source: str, margin: float = DEFAULT_MARGIN) -> str:
    """The TOML profile for the report's cells."""
    run = report["run"]
    models = ", ".join(str(m.get("spec")) for m in run.get("models") or [])
    lines = [
        f"# Gate profile adopted from {source} (run started {run.get('started')}; models: {models}).",
        "# Written by `iqa-eval gates init`: failed cells are known gaps with their measured values,",
        f"# passed cells must stay within {margin:g} of the bound their gate judged. Edit freely; a known",
        "# gap that starts to pass fails its test and asks for its rule to be removed.",
        "",
        "[defaults]",
        "threshold = 0.0",
        'bound = "lower"',
        "min_coverage = 0.9",
    ]
    skipped = []
    for cell in _ordered(report["cells"]):
        if "test" in cell:
            skipped.append(f"#   {cell['id']}: a cell of a user's test, gated by the test itself")
            continue
        made = rule_for(cell, margin, str(run.get("started")))
        if made is None:
            skipped.append(f"#   {cell['id']}: {cell.get('outcome')}")
            continue
        keys, comment = made
        lines += ["", f"# {cell['id']}: {comment}", "[[gate]]"]
        lines += [f"{key} = {_toml(value)}" for key, value in keys.items()]
    if skipped:
        lines += ["", "# Cells left to [defaults] (not measured, or skipped):", *skipped]
    return "\n".join(lines) + "\n"


def _ordered(cells: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(cells, key=lambda c: (c["stage"], str(c["id"])))
