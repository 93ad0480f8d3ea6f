"""The HTML report's comparison of several models: the study's two tables and a capability profile
per setting.

A run with more than one model under test is read side by side: the same tables ``iqa-eval
tables`` prints, and per setting one chart of each model's primary metric per attribute on the
stage-2 subsets (each model with its own best system), with intervals, so a reader sees at a
glance where one model's capability ends and another's goes on. Models under test are those
with stage-1 cells; the classical measures' stage-2 reference rows of ``--iqa-study`` are in the
table, not in the chart, where five more bars per attribute would hide the models compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from iqa_eval.report.plots import Estimate, profile_figure
from iqa_eval.report.tables import LEGEND, Table, missing_cells, stage1, stage2, titles
from iqa_eval.types import ATTRIBUTES, SETTINGS


def models_under_test(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({str(c["model"]) for c in cells if c["stage"] == 1})


def _table(table: Table) -> dict[str, Any]:
    return {"title": table.title, "header": titles(table), "rows": table.rows, "missing": table.missing}


def _estimate(cell: Mapping[str, Any] | None) -> Estimate:
    if cell is None or cell["outcome"] == "skipped":
        return (None, None, None)
    metric = cell["metrics"].get(cell.get("primary_metric") or "") or {}
    low, high = metric.get("ci") or (None, None)
    return (metric.get("value"), low, high)


def profiles(cells: Sequence[Mapping[str, Any]], models: Sequence[str]) -> list[dict[str, str]]:
    """One chart per setting that has stage-2 cells of the models under test."""
    charts = []
    for setting in SETTINGS:
        second = {
            (c["model"], c["dataset"], c["attribute"]): c
            for c in cells
            if c["stage"] == 2 and c["setting"] == setting and c["model"] in models
        }
        columns = sorted(
            {(dataset, attribute) for _, dataset, attribute in second},
            key=lambda da: (ATTRIBUTES.index(da[1]), da[0]),
        )
        if not columns:
            continue
        bars = {m: [_estimate(second.get((m, d, a))) for d, a in columns] for m in models}
        categories = [f"{attribute}\n{dataset}" for dataset, attribute in columns]
        title = f"{setting.upper()}: each model's best system, stage-2 subsets"
        charts.append({"setting": setting, "uri": profile_figure(title, categories, bars)})
    return charts


def comparison(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The comparison section's content, or None for a run of one model."""
    cells = [c for c in report["cells"] if "test" not in c]  # a user's own tests are not compared
    models = models_under_test(cells)
    if len(models) < 2:
        return None
    missing = missing_cells([("report", report)])
    tables = [stage1(cells, missing=missing), stage2(cells, missing=missing)]
    return {
        "models": models,
        "tables": [_table(t) for t in tables if t.rows],
        "legend": LEGEND,
        "profiles": profiles(cells, models),
    }
