"""Capability over time: per model and dataset, SRCC per attribute × protocol across runs.

A protocol's point in a run is the mean stage-1 SRCC over the prompting strategies the run
measured for it, the study's summary of a psychophysical method; stage 2 (each model's best
system on the harder subset) is its own dashed line. A run that did not measure a line adds no
point to it, never a made-up one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iqa_eval.report.files import atomic_write
from iqa_eval.report.plots import trend_figure
from iqa_eval.report.templating import ENV
from iqa_eval.types import ATTRIBUTES, PROTOCOLS, SETTINGS

METRIC = "srcc"
BEST_LINE = "best (stage 2)"
STYLES = {"ss": "-", "ds": "-", "ms": "-", BEST_LINE: "--"}

_TEMPLATE = ENV.get_template("trend.html")


def _label(run: Mapping[str, Any], model: str) -> str:
    """When the run was, which model answered (its pinned revision and served identity: the same
    name may stand for other weights from one run to the next) and the suite's commit."""
    started = str(run.get("started", ""))
    commit = str(run.get("git_commit") or "")[:7]
    entry: Mapping[str, Any] = next((m for m in run.get("models") or [] if m.get("spec") == model), {})
    identity = str((entry.get("identity") or {}).get("key") or entry.get("fingerprint") or "")
    _, _, version = identity.partition("@")
    _, _, served = identity.partition("#")
    who = " ".join(part for part in (version.partition("#")[0][:12], served[:8] and f"#{served[:8]}") if part)
    return f"{started[5:10]} {started[11:16]}" + (f" {who}" if who else "") + (f" {commit}" if commit else "")


def _points(line: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """(model, dataset) -> panel -> series -> value, for one run."""
    sums: dict[tuple[str, str, str, str], list[float]] = {}
    for cell in line["cells"]:
        value = ((cell.get("metrics") or {}).get(METRIC) or {}).get("value")
        if value is None or cell.get("outcome") in ("error", "skipped"):
            continue
        series = cell["protocol"] if cell["stage"] == 1 else BEST_LINE
        panel = f"{cell['setting']}_{cell['attribute']}"
        sums.setdefault((cell["model"], cell["dataset"], panel, series), []).append(float(value))
    out: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for (model, dataset, panel, series), values in sums.items():
        out.setdefault((model, dataset), {}).setdefault(panel, {})[series] = sum(values) / len(values)
    return out


def _panel_order(name: str) -> int:
    order = [f"{s}_{a}" for s in SETTINGS for a in ATTRIBUTES]
    return order.index(name) if name in order else len(order)


def _delta(now: float | None, before: float | None) -> tuple[str, str]:
    if now is None or before is None:
        return "", ""
    d = now - before
    return f"{d:+.3f}", "down" if d < -0.005 else "up" if d > 0.005 else ""


def render_trend(history: Sequence[Mapping[str, Any]], *, include_partial: bool = False) -> str:
    """The trend page; runs that were cut short are left out unless asked for, since their cells
    are whatever happened to finish."""
    if not include_partial:
        history = [line for line in history if not line["run"].get("partial")]
    per_run = [_points(line) for line in history]
    keys = sorted({key for points in per_run for key in points})
    models = []
    for key in keys:
        runs = [
            (line["run"], points[key]) for line, points in zip(history, per_run, strict=True) if key in points
        ]
        panels_seen = sorted({p for _, points in runs for p in points}, key=_panel_order)
        lines = [
            s
            for s in (*PROTOCOLS, BEST_LINE)
            if any(s in points.get(p, {}) for _, points in runs for p in points)
        ]
        panels = {
            panel: {s: [points.get(panel, {}).get(s) for _, points in runs] for s in lines}
            for panel in panels_seen
        }
        figure = trend_figure(
            f"{key[0]} · {key[1]}", panels, STYLES, [_label(run, key[0]) for run, _ in runs]
        )
        latest = []
        for panel, series in panels.items():
            row = []
            for s in lines:
                values = series[s]
                now = values[-1]
                before = next((v for v in reversed(values[:-1]) if v is not None), None)
                row.append(("—" if now is None else f"{now:.3f}", *_delta(now, before)))
            latest.append({"panel": panel, "cells": row})
        models.append(
            {"model": key[0], "dataset": key[1], "figure": figure, "lines": lines, "latest": latest}
        )
    return _TEMPLATE.render(
        n_runs=len(history),
        first=history[0]["run"]["started"] if history else "—",
        last=history[-1]["run"]["started"] if history else "—",
        metric=METRIC,
        models=models,
    )


def write_trend(path: Path, history: Sequence[Mapping[str, Any]], *, include_partial: bool = False) -> None:
    atomic_write(path, render_trend(history, include_partial=include_partial))
