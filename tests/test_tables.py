"""The study's two tables, from one multi-model run or from one run per model.

The formats are pinned by snapshots in tests/snapshots/; after a deliberate change, regenerate
them with ``IQA_REGEN_TABLES=1 pytest tests/test_tables.py``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_report_schema import make_cell, make_report

from iqa_eval.cli import main
from iqa_eval.report.tables import BEST, INVENTED, LOW_COVERAGE, TablesError, tables

SNAPSHOTS = Path(__file__).parent / "snapshots"


def metric(value: float, low: float, high: float, note: str = "") -> dict[str, Any]:
    return {"value": value, "ci": [low, high], "n": 16, "aggregation": "local_mean", "note": note}


def cell(model: str, stage: int, attribute: str, protocol: str, strategy: str, srcc: float, **extra: Any):
    subset = "uniform" if stage == 1 else "finegrained"
    metrics = {"srcc": metric(srcc, srcc - 0.1, min(1.0, srcc + 0.05)), "plcc": metric(srcc - 0.01, 0.0, 1.0)}
    metrics.update(extra.pop("metrics", {}))
    return make_cell(
        id=f"{model}/builtin/fr_{attribute}/{protocol}/{strategy}/{subset}",
        stage=stage, model=model, attribute=attribute, protocol=protocol, strategy=strategy,
        subset=subset, metrics=metrics, **extra,
    )  # fmt: skip


def model_cells(model: str, shift: float) -> list[dict[str, Any]]:
    cells = []
    for attribute in ("structure", "color"):
        for protocol, strategy, srcc in (
            ("ss", "standard", 0.8),
            ("ss", "cot", 0.85),
            ("ds", "standard", 0.6),
        ):
            cells.append(cell(model, 1, attribute, protocol, strategy, round(srcc - shift, 3)))
        cells.append(cell(model, 2, attribute, "ss", "cot", round(0.7 - shift, 3)))
    return cells


@pytest.fixture
def two_models() -> list[dict[str, Any]]:
    cells = model_cells("openai:gpt-4o", 0.0) + model_cells("hf:llava", 0.3)
    # A low-coverage cell and a cell with invented answers (paper mode) are marked, not dropped.
    cells[2] = {**cells[2], "coverage": 0.5}
    noted = metric(0.2, 0.1, 0.3, note="includes 7 random-fill judgements")
    cells[6] = {**cells[6], "metrics": {**cells[6]["metrics"], "srcc": noted}}
    return cells


def snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("IQA_REGEN_TABLES"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed; regenerate with IQA_REGEN_TABLES=1"


@pytest.mark.parametrize("fmt", ["md", "csv", "latex"])
def test_the_formats_are_pinned(two_models, fmt):
    snapshot(
        f"tables.{'tex' if fmt == 'latex' else fmt}", tables([("run.json", make_report(two_models))], fmt)
    )


def test_the_tables_say_what_the_study_shows(two_models):
    text = tables([("run.json", make_report(two_models))], "md")
    stage1, stage2 = text.split("**Stage 2")
    assert "| openai:gpt-4o · SS cot | 0.850 [0.75, 0.90]* | 0.850 [0.75, 0.90]* |" in stage1
    assert f"| openai:gpt-4o · DS standard | 0.600 [0.50, 0.65]{LOW_COVERAGE} |" in stage1
    assert f"0.200 [0.10, 0.30]{INVENTED}" in stage1
    assert "| hf:llava · SS cot | 0.550 [0.45, 0.60]* | 0.550 [0.45, 0.60]* |" in stage1
    assert "builtin FR structure (finegrained)" in stage2 and "| openai:gpt-4o · SS cot | 0.700" in stage2
    assert stage1.count("]" + BEST) == 4  # two models x two attributes


def test_one_run_with_two_models_tables_as_two_runs_with_one(two_models):
    together = [("both.json", make_report(two_models))]
    apart = [
        ("a.json", make_report([c for c in two_models if c["model"] == "openai:gpt-4o"])),
        ("b.json", make_report([c for c in two_models if c["model"] == "hf:llava"])),
    ]
    for fmt in ("md", "csv", "latex"):
        assert tables(together, fmt) == tables(apart, fmt)


def test_the_same_cell_with_other_numbers_in_two_reports_is_an_error(two_models):
    changed = [dict(c) for c in two_models]
    changed[0] = {**changed[0], "metrics": {"srcc": metric(0.1, 0.0, 0.2)}}
    with pytest.raises(TablesError, match=r"a\.json and in b\.json with other numbers"):
        tables([("a.json", make_report(two_models)), ("b.json", make_report(changed))])
    assert tables([("a.json", make_report(two_models)), ("b.json", make_report(two_models))])


def test_plcc_on_request_and_the_long_csv_has_a_row_per_cell(two_models):
    assert " / 0.840 [0.00, 1.00]" in tables([("r", make_report(two_models))], "md", plcc=True)
    rows = list(csv.DictReader(io.StringIO(tables([("r", make_report(two_models))], "csv"))))
    assert len(rows) == len(two_models)
    best = {(r["model"], r["attribute"]) for r in rows if r["stage"] == "1" and r["best_system"] == "True"}
    assert len(best) == 4 and rows[0]["srcc_low"] != ""


def test_the_command_writes_tables_and_refuses_partial_runs(two_models, tmp_path, capsys):
    whole, cut = tmp_path / "whole.json", tmp_path / "cut.json"
    whole.write_text(json.dumps(make_report(two_models)))
    cut.write_text(json.dumps(make_report(two_models, partial=True)))
    assert main(["tables", str(whole), "--format", "latex"]) == 0
    assert r"\begin{tabular}" in capsys.readouterr().out
    assert main(["tables", str(cut)]) == 2 and "cut short" in capsys.readouterr().err
    assert main(["tables", str(cut), "--include-partial", "-o", str(tmp_path / "t.md")]) == 0
    assert (tmp_path / "t.md").read_text().startswith("**Stage 1")


@pytest.fixture
def study_run(two_models) -> dict[str, Any]:
    """The two models in an --iqa-study run that lacked TQD, with a classical measure's row."""
    cells = list(two_models)
    for model in ("openai:gpt-4o", "hf:llava"):
        lacked = {"model": model, "dataset": "tqd", "attribute": "texture", "outcome": "skipped"}
        lacked.update(metrics={}, coverage=0.0, gate=None, message="tqd not given")
        for protocol, strategy in (("ss", "standard"), ("ss", "cot"), ("ds", "standard")):
            cells.append(make_cell(**lacked, protocol=protocol, strategy=strategy))
        cells.append(make_cell(**lacked, stage=2, protocol="best", strategy="best", subset="difficult"))
    cells.append(cell("expert:psnr", 2, "structure", "ss", "standard", 0.35))
    missing = [{"dataset": "tqd", "cells": ["fr_texture"], "add": "add --iqa-data tqd=PATH (PATH: ...)"}]
    return make_report(cells, study={"datasets": ["builtin", "tqd"], "missing": missing})


@pytest.mark.parametrize("fmt", ["md", "csv", "latex"])
def test_the_formats_of_a_study_run_with_a_missing_dataset_are_pinned(study_run, fmt):
    text = tables([("run.json", study_run)], fmt)
    snapshot(f"tables-study.{'tex' if fmt == 'latex' else fmt}", text)
    assert text.count("tqd=PATH") == (0 if fmt == "csv" else 2)  # under each table
    assert ("missing" in text) and ("expert:psnr" in text)


def test_a_skipped_cell_of_a_dataset_that_was_given_is_not_called_missing(study_run):
    given = {**study_run, "run": {**study_run["run"], "study": {"datasets": ["tqd"], "missing": []}}}
    text = tables([("run.json", given)], "md")
    assert "missing" not in text and "tqd" not in text
