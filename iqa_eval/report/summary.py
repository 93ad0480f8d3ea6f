"""The table of cells printed at the end of a pytest run, grouped by model and dataset.

It answers "what happened" without opening the HTML: each cell's metric with its interval,
coverage, gate and outcome, known gaps marked as such, and one line of totals to grep in CI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from iqa_eval.report.html import state
from iqa_eval.report.reasons import failure_reasons

_HEAD = ("outcome", "cell", "metric", "value", "95% CI", "coverage", "gate")


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def _gate(cell: Mapping[str, Any]) -> str:
    gate = cell.get("gate")
    if not gate:
        return "-"
    judged = "lower bound" if gate.get("bound") == "lower" else "value"
    return f"{gate['metric']} {judged} > {gate['threshold']:g}, coverage >= {gate['min_coverage']:.0%}"


def _row(cell: Mapping[str, Any]) -> tuple[str, ...]:
    label = state(cell)[0]
    baseline = cell.get("baseline") or {}
    if baseline.get("regressed"):
        label += " (regressed)"
    elif baseline.get("status") == "no baseline":
        label += " (no baseline)"
    metric_name = cell.get("primary_metric") or ""
    metric = cell["metrics"].get(metric_name) or {}
    lo, hi = metric.get("ci") or (None, None)
    short = "/".join(str(cell["id"]).split("/")[2:])
    value = _num(metric.get("value"))
    if baseline.get("delta") is not None:
        value += f" (Δ {baseline['delta']:+.3f})"
    return (
        label,
        short,
        metric_name or "-",
        value,
        f"[{_num(lo)}, {_num(hi)}]" if metric else "",
        f"{100 * cell['coverage']:.1f}%",
        _gate(cell),
    )


def _widths(rows: Sequence[tuple[str, ...]]) -> list[int]:
    return [max(len(r[k]) for r in rows) for k in range(len(_HEAD))]


def _line(row: tuple[str, ...], widths: Sequence[int]) -> str:
    right = {3, 5}  # numbers align on the right
    cells = (
        v.rjust(w) if k in right else v.ljust(w) for k, (v, w) in enumerate(zip(row, widths, strict=True))
    )
    return ("  " + "  ".join(cells)).rstrip()


def totals(cells: Sequence[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for cell in cells:
        label = state(cell)[0]
        counts[label] = counts.get(label, 0) + 1
    parts = [
        f"{counts[k]} {k}" for k in ("passed", "failed", "known gap", "error", "skipped") if counts.get(k)
    ]
    regressed = sum(bool((c.get("baseline") or {}).get("regressed")) for c in cells)
    if regressed:
        parts.append(f"{regressed} regressed vs baseline")
    unguarded = sum((c.get("baseline") or {}).get("status") == "no baseline" for c in cells)
    if unguarded:
        parts.append(f"{unguarded} without baseline")
    return f"{len(cells)} cell{'' if len(cells) == 1 else 's'}: " + ", ".join(parts)


def summary_lines(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Lines of the table: one header, a heading per model and dataset, its cells (stage 1
    first), then the totals; columns aligned across all groups. Under a failed or error cell
    whose answers failed, one more line says how they failed."""
    groups: dict[tuple[str, str], list[tuple[tuple[str, ...], str | None]]] = {}
    for cell in sorted(cells, key=lambda c: (c["model"], c["dataset"], c["stage"], c["id"])):
        why = failure_reasons(cell) if state(cell)[0] in ("failed", "error") else None
        groups.setdefault((cell["model"], cell["dataset"]), []).append((_row(cell), why))
    widths = _widths([_HEAD, *(row for rows in groups.values() for row, _ in rows)])
    lines = [_line(_HEAD, widths)]
    for (model, dataset), rows in groups.items():
        lines.append(f"{model} · {dataset}")
        for row, why in rows:
            lines.append(_line(row, widths))
            if why:
                lines.append(f"      {why}")
    lines.append(totals(cells))
    return lines
