"""What a CI system shows of a run: JUnit properties, the job summary, and why a cell failed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from fake_openai import constant
from suite_runs import SYSTEMS, fresh_cache
from test_report_schema import make_cell, make_report

from iqa_eval.cli import main as cli
from iqa_eval.report.junit import junit_properties
from iqa_eval.report.reasons import failure_reasons, quote
from iqa_eval.report.step_summary import ENV, append_step_summary, step_summary

ONE_CELL = ("-m", "fr_structure and ss and standard and not metamorphic")  # 80 queries


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv(ENV, raising=False)


def properties(xml_path):
    """{test name: [(property, value), ...]} of a JUnit XML file."""
    root = ET.parse(xml_path).getroot()
    return {
        case.get("name"): [(p.get("name"), p.get("value")) for p in case.iter("property")]
        for case in root.iter("testcase")
    }


def test_a_failed_answer_line_names_the_top_reasons_with_counts_and_one_escaped_answer():
    cell = make_cell(
        n_failed={"no_score": 302, "refusal": 4, "timeout": 0},
        examples=[
            {"query": "a", "items": ["x"], "text": "ok", "failure": None},
            {"query": "b", "items": ["x"], "text": "sorry", "failure": "refusal"},
            {"query": "c", "items": ["x"], "text": 'It looks "fine"\n' + "x" * 200, "failure": "no_score"},
        ],
    )
    line = failure_reasons(cell)
    assert line is not None and "\n" not in line
    assert line.startswith("failed answers: no_score 302, refusal 4; e.g. no_score: ")
    assert '"It looks \\"fine\\"\\n' in line and line.endswith('…"') and len(line) < 160
    assert failure_reasons(make_cell(n_failed={"no_score": 0})) is None
    assert quote("\x1b[31mred") == '"\\x1b[31mred"'  # no terminal control reaches a log


def test_junit_properties_are_scalars_with_the_baseline_delta_only_when_gated():
    cell = make_cell(
        primary_metric="srcc",
        metrics={"srcc": {"value": 0.8125, "ci": [0.7, 0.9], "n": 16, "aggregation": "x", "note": ""}},
        coverage=0.975,
    )
    assert junit_properties(cell, "passed") == [
        ("iqa.metric", "srcc"), ("iqa.value", "0.8125"), ("iqa.ci_low", "0.7"), ("iqa.ci_high", "0.9"),
        ("iqa.coverage", "0.975"), ("iqa.outcome", "passed"),
    ]  # fmt: skip
    gated = {**cell, "baseline": {"delta": -0.05, "regressed": True}}
    assert junit_properties(gated, "failed")[-1] == ("iqa.baseline_delta", "-0.05")


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "xdist"])
def test_junit_xml_carries_the_scalars_of_each_cell_and_no_record(
    suite_dir, builtin, tmp_path, fake_openai, accurate_responder, workers
):
    cache = fresh_cache(builtin, tmp_path / "cache")
    server = fake_openai(responder=accurate_responder)
    args = (
        *SYSTEMS,
        f"--iqa-cache={cache}",
        "--iqa-model",
        "openai:m",
        "--iqa-base-url",
        server.url,
        *ONE_CELL,
    )
    suite_dir.runpytest(*args).assert_outcomes(passed=1)
    assert cli(["baseline", "bless", str(suite_dir.path / "reports/iqa-report.json"), "--to", "b.json"]) == 0
    xml = tmp_path / "junit.xml"
    suite_dir.runpytest(*args, "--iqa-baseline=b.json", f"--junitxml={xml}", *workers).assert_outcomes(
        passed=1
    )
    cell = json.loads((suite_dir.path / "reports/iqa-report.json").read_text())["cells"][0]
    ((name, props),) = properties(xml).items()
    assert cell["id"] in name
    metric = cell["metrics"]["srcc"]
    assert dict(props) == {
        "iqa.metric": "srcc",
        "iqa.value": f"{metric['value']:.6g}",
        "iqa.ci_low": f"{metric['ci'][0]:.6g}",
        "iqa.ci_high": f"{metric['ci'][1]:.6g}",
        "iqa.coverage": f"{cell['coverage']:.6g}",
        "iqa.outcome": "passed",
        "iqa.baseline_delta": f"{cell['baseline']['delta']:.6g}",
    }
    assert len(props) == 7  # no property holds the record


def test_a_failed_cell_says_why_in_the_terminal_and_the_step_summary(
    suite_dir, builtin, tmp_path, fake_openai, monkeypatch
):
    cache = fresh_cache(builtin, tmp_path / "cache")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv(ENV, str(summary))
    server = fake_openai(responder=constant("I'd rather not | <b>say</b>"))
    result = suite_dir.runpytest(
        *SYSTEMS, f"--iqa-cache={cache}", "--iqa-model", "openai:m", "--iqa-base-url", server.url, *ONE_CELL
    )
    result.assert_outcomes(failed=1)
    why = 'failed answers: no_score 80; e.g. no_score: "I\'d rather not | <b>say</b>"'
    result.stdout.fnmatch_lines([f"*{why}*"])
    text = summary.read_text()
    assert text.startswith("earlier step\n## iqa-eval\n")  # appended: other steps' summaries stay
    assert "1 cell: 1 failed" in text
    assert "| fr_structure | n/a ❌ |" in text
    assert "**failed**" in text and "no\\_score 80" in text
    assert "<b>" not in text and "&lt;b&gt;say&lt;/b&gt;" in text  # the model's text is shown, not run


def test_the_step_summary_grid_marks_each_system_and_lists_only_the_problems():
    def cell(protocol, outcome, value, **extra):
        return make_cell(
            id=f"m/builtin/fr_color/{protocol}/standard/uniform", protocol=protocol, outcome=outcome,
            metrics={"srcc": {"value": value, "ci": [value - 0.1, value + 0.1], "n": 16,
                              "aggregation": "x", "note": ""}},
            message=f"gate {outcome}", **extra,
        )  # fmt: skip

    regressed = cell("ms", "failed", 0.4, baseline={"delta": -0.3, "regressed": True})
    report = make_report([cell("ss", "passed", 0.9), cell("ds", "failed", 0.1), regressed])
    text = step_summary(report)
    assert "| | ds/standard | ms/standard | ss/standard |" in text
    assert "| fr_color | 0.100 ❌ | 0.400 ❌ 📉 | 0.900 ✅ |" in text
    problems = text.split("### Failed, error and regressed cells")[1]
    assert "- `m/builtin/fr_color/ds/standard/uniform` **failed**: gate failed" in problems
    assert "- `m/builtin/fr_color/ms/standard/uniform` **failed** (regressed)" in problems
    assert "ss/standard" not in problems
    assert append_step_summary(report, {}) is None and append_step_summary(report, {ENV: ""}) is None
