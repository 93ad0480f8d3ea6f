"""Reports as a pytest run of the real suite writes them: terminal table, files, history, extras."""

from __future__ import annotations

import json
from pathlib import Path

from test_report_schema import validate_history_line, validate_report

from iqa_eval.cli import main

SELECTION = ("-m", "fr_color and ss and standard", "-k", "not metamorphic")


def run(pytester, shared_cache, *args):
    return pytester.runpytest(f"--iqa-cache={shared_cache}", "-p", "no:randomly", *SELECTION, *args)


def test_a_run_prints_the_table_writes_valid_reports_and_one_history_line(suite_dir, shared_cache, capsys):
    result = run(suite_dir, shared_cache)
    result.assert_outcomes(passed=1)
    reports = suite_dir.path / "reports"
    result.stdout.fnmatch_lines(
        [
            "*iqa-eval cells*",
            "  outcome  cell * metric * value * 95% CI * coverage * gate",
            "expert · builtin",
            "  passed   fr_color/ss/standard/uniform * srcc * +1.000 * [[]+1.000, +1.000[]] * 100.0%*",
            "1 cell: 1 passed",
            "*iqa-eval reports (written in *s)*",
            str(reports / "iqa-report.json"),
            str(reports / "iqa-report.html"),
            str(reports / "history.jsonl"),
        ]
    )
    report = json.loads((reports / "iqa-report.json").read_text())
    validate_report(report)
    for cell in report["cells"]:
        assert cell["predictions"] and all(Path(p["image"]).is_file() for p in cell["predictions"])
    lines = (reports / "history.jsonl").read_text().splitlines()
    assert len(lines) == 1
    validate_history_line(json.loads(lines[0]))

    run(suite_dir, shared_cache).assert_outcomes(passed=1)
    assert len((reports / "history.jsonl").read_text().splitlines()) == 2
    assert main(["trend", f"--report-dir={reports}"]) == 0
    trend = (reports / "iqa-trend.html").read_text()
    assert "expert · builtin" in trend and trend.count('src="data:image/png;base64,') == 1
    capsys.readouterr()


def test_with_pytest_html_installed_each_cell_gets_its_scatter_as_an_extra(suite_dir, shared_cache):
    package = suite_dir.mkpydir("pytest_html")
    (package / "extras.py").write_text(
        "def png(content, name=None):\n    return {'format_type': 'image', 'name': name}\n"
    )
    suite_dir.syspathinsert()
    suite_dir.makeconftest(
        """
import json

def pytest_runtest_logreport(report):
    if report.when == "call":
        with open("extras.jsonl", "a") as out:
            out.write(json.dumps([e["name"] for e in getattr(report, "extras", [])]) + "\\n")
"""
    )
    run(suite_dir, shared_cache, "-p", "no:cacheprovider").assert_outcomes(passed=1)
    seen = [json.loads(line) for line in (suite_dir.path / "extras.jsonl").read_text().splitlines()]
    assert seen == [["prediction vs ground truth"]]
