"""The HTML report: one self-contained file, every model-written string escaped.

The page fetches nothing (plots and thumbnails are data: URIs, styles inline) and runs no
script at all; its Content-Security-Policy forbids scripts and every network fetch, so even a
model answer that slipped past escaping could neither execute nor call home. Model text only
ever reaches the page through jinja2's autoescaping.

A reader wants the verdict first: the summary grid (attribute × protocol × strategy, coloured by
outcome) and what needs attention come before the per-cell detail, which follows in the order
of the grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iqa_eval.evaluation.cells import SUBSETS
from iqa_eval.report.comparison import comparison
from iqa_eval.report.files import atomic_write
from iqa_eval.report.plots import ScatterPlotter, thumbnail
from iqa_eval.report.templating import ENV
from iqa_eval.types import ATTRIBUTES, BEST, PROTOCOLS, SETTINGS, STRATEGIES

WORST_SHOWN = 4
EXAMPLES_OPEN = 2

_TEMPLATE = ENV.get_template("report.html")


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _ci(metric: Mapping[str, Any] | None) -> str:
    if not metric or metric.get("ci") is None:
        return ""
    lo, hi = metric["ci"]
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def state(cell: Mapping[str, Any]) -> tuple[str, str]:
    """(label, css class) of a cell: a known gap is its own state, not a plain failure."""
    gate = cell.get("gate") or {}
    if cell["outcome"] == "failed" and gate.get("known_gap") and not _regressed(cell):
        return "known gap", "known-gap"
    return str(cell["outcome"]), str(cell["outcome"])


def _regressed(cell: Mapping[str, Any]) -> bool:
    return bool((cell.get("baseline") or {}).get("regressed"))


@dataclass
class _Thumbs:
    """Each stimulus's thumbnail is embedded once as a CSS class, however many cells show it."""

    classes: dict[str, str | None] = field(default_factory=dict)
    styles: list[tuple[str, str]] = field(default_factory=list)

    def css_class(self, path: str | None) -> str | None:
        if path is None:
            return None
        if path not in self.classes:
            uri = thumbnail(path)
            name = f"t{len(self.styles)}" if uri is not None else None
            if uri is not None and name is not None:
                self.styles.append((name, uri))
            self.classes[path] = name
        return self.classes[path]


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def worst_judged(cell: Mapping[str, Any], limit: int = WORST_SHOWN) -> list[dict[str, Any]]:
    """The items whose rank by the model is furthest from their true rank.

    Ranks are taken inside each item's group when the cell's metric is a local mean (that is
    what the metric judged), over all items otherwise; the distance is scaled by the group size
    so a big miss in a small group is not drowned by small misses in a large one.
    """
    metric = cell["metrics"].get(cell.get("primary_metric") or "") or {}
    local = metric.get("aggregation") == "local_mean"
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for p in cell.get("predictions", []):
        groups.setdefault(str(p["group"]) if local else "", []).append(p)
    scored = []
    for members in groups.values():
        if len(members) < 2:
            continue
        truth = _ranks([float(-p["truth"]) for p in members])
        model = _ranks([float(-p["predicted"]) for p in members])
        for p, t, m in zip(members, truth, model, strict=True):
            miss = abs(t - m) / (len(members) - 1)
            if miss > 0:
                scored.append((miss, p, t, m, len(members)))
    scored.sort(key=lambda s: (-s[0], str(s[1]["item"])))
    return [
        {"item": p["item"], "image": p.get("image"), "truth_rank": f"{t:g}", "model_rank": f"{m:g}", "of": n}
        for _, p, t, m, n in scored[:limit]
    ]


def _failure_ledger(cell: Mapping[str, Any]) -> list[tuple[str, int, str | None]]:
    examples: dict[str, str] = {}
    for e in cell.get("examples", []):
        if e.get("failure"):
            examples.setdefault(e["failure"], e["text"])
    return [(reason, n, examples.get(reason)) for reason, n in sorted(cell["n_failed"].items())]


def _cell_view(
    cell: Mapping[str, Any], anchor: str, plotter: ScatterPlotter, thumbs: _Thumbs
) -> dict[str, Any]:
    label, css = state(cell)
    metrics = cell["metrics"]
    pairwise = None
    # Reports written before the rename carry the same number as "bias".
    balance = "position_balance" if "position_balance" in metrics else "bias"
    if "consistency" in metrics or balance in metrics:
        pairwise = {
            key: f"{_fmt(metrics[name]['value'])} {_ci(metrics[name])}" if name in metrics else "n/a"
            for key, name in (("consistency", "consistency"), ("balance", balance))
        }
    worst = worst_judged(cell)
    for w in worst:
        w["thumb"] = thumbs.css_class(w.pop("image"))
    baseline = cell.get("baseline")
    rows = list(metrics.items())
    if cell.get("noise_ceiling"):
        rows.append(("human-noise ceiling (srcc)", cell["noise_ceiling"]))
    return {
        **cell,
        "anchor": anchor,
        "label": label + (" · regressed" if _regressed(cell) else ""),
        "css": css + (" regressed" if _regressed(cell) else ""),
        "known_gap": (cell.get("gate") or {}).get("known_gap"),
        "baseline": baseline,
        "baseline_text": _baseline_text(baseline) if baseline else "",
        "selected_by": cell.get("selected_by"),
        "coverage": f"{100 * cell['coverage']:.1f}%",
        "format_compliance": (
            None if cell.get("format_compliance") is None else f"{100 * cell['format_compliance']:.1f}%"
        ),
        "metrics": [
            {
                "name": name,
                "value": _fmt(m["value"]),
                "ci": _ci(m),
                "n": m["n"],
                "aggregation": m["aggregation"],
                "note": m["note"],
            }
            for name, m in rows
        ],
        "pairwise": pairwise,
        "scatter": plotter.render(cell.get("predictions", []), f"{cell['setting']}_{cell['attribute']}"),
        "ledger": _failure_ledger(cell),
        "worst": worst,
        "examples": [_example_view(e) for e in cell.get("examples", [])],
        "probability_based": cell.get("probability_based", False),
    }


def _example_view(example: Mapping[str, Any]) -> dict[str, Any]:
    """An example as shown: a levels answer's probabilities in their order, and what fell on no
    answer word (from which the reader sees whether the model meant to answer in a level)."""
    probabilities = example.get("probabilities")
    if not probabilities:
        return {**example, "probabilities": None}
    pairs = [(str(word), float(p)) for word, p in probabilities.items()]
    return {**example, "probabilities": pairs, "no_level_mass": max(0.0, 1.0 - sum(p for _, p in pairs))}


def _baseline_text(b: Mapping[str, Any]) -> str:
    if b.get("status") == "no baseline":
        return f"No baseline: {b.get('note', '')}; this cell is not guarded against regressions."
    if b.get("delta") is None:
        return f"Baseline: no comparison ({b.get('note', '')})."
    lo, hi = b["ci"]
    verdict = "REGRESSED" if b["regressed"] else "improved" if lo is not None and lo > 0 else "no regression"
    text = (
        f"Baseline {verdict}: {b['metric']} {_fmt(b['baseline_value'])} → {_fmt(b['now_value'])}, "
        f"Δ {_fmt(b['delta'], True)} (95% CI [{_fmt(lo, True)}, {_fmt(hi, True)}], p={b['p_value']:.3g}, "
        f"{'paired over' if b['unit'] != 'cases' else 'over'} {b['n_units']} {b['unit']}, "
        f"tolerance {b['tolerance']:g})"
    )
    return text + (f"; {b['note']}" if b.get("note") else "")


def _system_order(cell: Mapping[str, Any]) -> tuple[int, str, int, int]:
    """The study's subsets first (uniform, finegrained, all), then protocol and strategy order."""
    p, s, subset = cell["protocol"], cell["strategy"], str(cell["subset"])
    return (
        SUBSETS.index(subset) if subset in SUBSETS else len(SUBSETS),
        subset,
        PROTOCOLS.index(p) if p in PROTOCOLS else len(PROTOCOLS),
        STRATEGIES.index(s) if s in STRATEGIES else len(STRATEGIES),
    )


def _row_order(key: str) -> tuple[int, str]:
    rows = [f"{s}_{a}" for s in SETTINGS for a in ATTRIBUTES]
    return (rows.index(key) if key in rows else len(rows), key)


def _column(cell: Mapping[str, Any]) -> tuple[int, str, str, str]:
    """Where a cell sits in its grid: the study's stage-1 subsets, stage 2, then other subsets."""
    if cell["stage"] == 2:
        return (1, BEST, BEST, str(cell["subset"]))
    return (0 if cell["subset"] in SUBSETS else 2, cell["protocol"], cell["strategy"], str(cell["subset"]))


def _grid(model: str, dataset: str, cells: Sequence[tuple[Mapping[str, Any], str]]) -> dict[str, Any]:
    """Rows: setting × attribute; columns: prompting systems per subset, and stage 2's best."""
    columns = sorted(
        {_column(c) for c, _ in cells},
        key=lambda k: (k[0], _system_order({"protocol": k[1], "strategy": k[2], "subset": k[3]})),
    )
    several = len({(part, subset) for part, _, _, subset in columns if part != 1}) > 1
    index: dict[tuple[Any, ...], dict[str, Any]] = {}
    rows: set[str] = set()
    for c, anchor in cells:
        row = f"{c['setting']}_{c['attribute']}"
        rows.add(row)
        metric = c["metrics"].get(c.get("primary_metric") or "")
        label, css = state(c)
        index[(row, *_column(c))] = {
            "css": css + (" regressed" if _regressed(c) else ""),
            "anchor": anchor,
            "value": _fmt(metric["value"]) if metric else "—",
            "ci": _ci(metric),
            "system": f"{c['protocol']}/{c['strategy']}" if c["stage"] == 2 else "",
            "title": f"{c['id']}: {label}",
        }
    groups: list[tuple[str, int]] = []
    for part, protocol, _, subset in columns:
        head = f"stage 2 · {subset}" if part == 1 else protocol.upper() + (f" · {subset}" if several else "")
        if groups and groups[-1][0] == head:
            groups[-1] = (head, groups[-1][1] + 1)
        else:
            groups.append((head, 1))
    return {
        "model": model,
        "dataset": dataset,
        "groups": groups,
        "columns": [{"label": "best system" if part == 1 else strategy} for part, _, strategy, _ in columns],
        "rows": [
            {"label": row, "squares": [index.get((row, *col)) for col in columns]}
            for row in sorted(rows, key=_row_order)
        ],
    }


def _best_systems(cells: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in cells:
        chosen = c.get("selected_by")
        key = (c["model"], c["dataset"], c["setting"])
        # A classical measure's reference row chose nothing: it has no ranking to show.
        if c["stage"] != 2 or not chosen or "ranking" not in chosen or key in seen:
            continue
        seen[key] = {
            "model": c["model"],
            "dataset": c["dataset"],
            "setting": c["setting"],
            "chosen": f"{c['protocol']}/{c['strategy']}",
            "srcc": _fmt(chosen.get("srcc")),
            "ranking": [(system, _fmt(v)) for system, v in chosen.get("ranking", [])],
        }
    return [seen[k] for k in sorted(seen)]


def _display_order(cell: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        cell["model"],
        cell["dataset"],
        cell["stage"],
        _row_order(f"{cell['setting']}_{cell['attribute']}"),
        _system_order(cell),
        cell["id"],
    )


_TOTALS = (
    ("passed", "passed"),
    ("failed", "failed"),
    ("known gap", "known-gap"),
    ("error", "error"),
    ("skipped", "skipped"),
)


def _tests(tests: Iterable[Mapping[str, Any]], anchors: Mapping[str, str]) -> list[dict[str, Any]]:
    """The user's own tests with their judgements' images by file name and links to their cells."""
    return [
        {
            **t,
            "cells": [{"id": c, "anchor": anchors.get(c, "")} for c in t.get("cells", [])],
            "judgements": [
                {
                    **j,
                    "images": [Path(im["path"]).name for im in j.get("images", [])],
                    "reference": Path(j["reference"]["path"]).name if j.get("reference") else None,
                    "value": _judged_value(j.get("value")),
                }
                for j in t.get("judgements", [])
            ],
        }
        for t in tests
    ]


def _judged_value(value: object) -> str:
    if isinstance(value, list):
        return "ranks " + ", ".join(str(v) for v in value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_html(report: Mapping[str, Any]) -> str:
    cells = sorted(report["cells"], key=_display_order)
    anchored = [(c, f"c{n}") for n, c in enumerate(cells, start=1)]
    plotter, thumbs = ScatterPlotter(), _Thumbs()
    views = [_cell_view(c, anchor, plotter, thumbs) for c, anchor in anchored]
    by_grid: dict[tuple[str, str], list[tuple[Mapping[str, Any], str]]] = {}
    for c, anchor in anchored:
        if "test" not in c:  # a user's test's cells are shown with the test, not in the grids
            by_grid.setdefault((c["model"], c["dataset"]), []).append((c, anchor))
    counts: dict[str, int] = {}
    for v in views:
        label = state(v)[0]
        counts[label] = counts.get(label, 0) + 1
    attention = [
        {"id": v["id"], "anchor": v["anchor"], "label": v["label"], "css": v["css"], "message": v["message"]}
        for v in views
        if v["outcome"] in ("failed", "error") and (v["known_gap"] is None or _regressed(v))
    ]
    return _TEMPLATE.render(
        run=report["run"],
        totals=[(label, css, counts[label]) for label, css in _TOTALS if counts.get(label)],
        attention=attention,
        grids=[_grid(model, dataset, members) for (model, dataset), members in by_grid.items()],
        best=_best_systems(c for c in cells if "test" not in c),
        tests=_tests(report.get("tests", []), {str(c["id"]): anchor for c, anchor in anchored}),
        comparison=comparison(report),
        cells=views,
        thumb_styles=thumbs.styles,
        examples_open=EXAMPLES_OPEN,
    )


def write_html(path: Path, report: Mapping[str, Any]) -> None:
    atomic_write(path, render_html(report))
