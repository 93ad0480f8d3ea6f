"""The report's JSON Schema: shipped with the package, and every report the tests make obeys it.

``validate_report`` and ``make_cell`` are shared with the other report tests.
"""

from __future__ import annotations

import copy
import json
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from iqa_eval.report.history import history_line
from iqa_eval.report.writer import assemble

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCHEMA = json.loads((files("iqa_eval.report") / "schema.json").read_text(encoding="utf-8"))
_REPORT = jsonschema.Draft202012Validator(SCHEMA)
_HISTORY = jsonschema.Draft202012Validator({"$ref": "#/$defs/history_line", "$defs": SCHEMA["$defs"]})


def validate_report(report: dict[str, Any]) -> None:
    _REPORT.validate(report)


def validate_history_line(line: dict[str, Any]) -> None:
    _HISTORY.validate(line)


def make_cell(**overrides: Any) -> dict[str, Any]:
    """A plausible stage-1 SS cell record; predictions rank items perfectly inside 2 groups."""
    cell: dict[str, Any] = {
        "id": "m/builtin/fr_color/ss/standard/uniform",
        "stage": 1,
        "model": "m",
        "dataset": "builtin",
        "setting": "fr",
        "attribute": "color",
        "protocol": "ss",
        "strategy": "standard",
        "subset": "uniform",
        "n_items": 6,
        "n_queries": 6,
        "n_failed": {},
        "coverage": 1.0,
        "primary_metric": "srcc",
        "metrics": {
            "srcc": {"value": 0.9, "ci": [0.8, 1.0], "n": 2, "aggregation": "local_mean", "note": ""}
        },
        "gate": {
            "metric": "srcc",
            "threshold": 0.5,
            "bound": "lower",
            "min_coverage": 0.9,
            "known_gap": None,
            "baseline_tolerance": 0.02,
            "source": "gates.toml [[gate]] #1",
        },
        "outcome": "passed",
        "message": "srcc lower bound 0.800 must exceed 0.5",
        "notes": [],
        "predictions": [
            {"item": f"g{g}/{k}", "truth": float(k), "predicted": 10.0 * k, "group": f"g{g}", "image": None}
            for g in range(2)
            for k in range(3)
        ],
        "examples": [{"query": "q0", "items": ["g0/0"], "text": "Score: 0", "failure": None}],
        "fingerprint": "m@1",
        "dataset_digest": "abc",
    }
    cell.update(overrides)
    parts = (f"{cell['setting']}_{cell['attribute']}", cell["protocol"], cell["strategy"], cell["subset"])
    cell["id"] = "/".join([cell["model"], cell["dataset"], *parts])
    return cell


def make_report(cells: list[dict[str, Any]], **run: Any) -> dict[str, Any]:
    base = {"started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00", "seed": 0}
    return assemble(cells, {"partial": False, "gates": "gates.toml", "shard": None, **base, **run})


def test_the_schema_is_a_valid_draft_2020_12_schema_shipped_as_package_data():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "report/schema.json" in project["tool"]["setuptools"]["package-data"]["iqa_eval"]


def test_a_plausible_report_and_its_history_line_validate():
    report = make_report([make_cell(), make_cell(strategy="cot")])
    validate_report(report)
    validate_history_line(history_line(report))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("cells", 0, "outcome"), "fine"),
        (("cells", 0, "metrics", "srcc", "ci"), [0.1]),
        (("cells", 0, "coverage"), 1.5),
        (("cells", 0, "setting"), "rr"),
        (("run", "seed"), "0"),
        (("cells", 0, "baseline"), {"delta": 0.1}),
    ],
)
def test_the_schema_rejects_what_a_consumer_could_not_read(path, value):
    report = make_report([make_cell()])
    broken = copy.deepcopy(report)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    validate_report(report)
    with pytest.raises(jsonschema.ValidationError):
        validate_report(broken)


def test_a_history_line_must_not_carry_predictions_or_answers():
    report = make_report([make_cell()])
    line = history_line(report)
    line["cells"][0]["predictions"] = report["cells"][0]["predictions"]
    with pytest.raises(jsonschema.ValidationError):
        validate_history_line(line)
