"""history.jsonl and the capability trend drawn from it."""

from __future__ import annotations

import json
import re

import pytest
from test_report_schema import make_cell, make_report, validate_history_line

from iqa_eval.cli import main
from iqa_eval.report.history import HistoryError, append_history, history_line, read_history
from iqa_eval.report.trend import render_trend


def _run(started, srcc, model="m", **run):
    cells = [
        make_cell(model=model, metrics={"srcc": {**make_cell()["metrics"]["srcc"], "value": srcc}}),
        make_cell(model=model, protocol="ds", strategy="cot"),
        make_cell(model=model, stage=2, subset="finegrained", strategy="icl"),
    ]
    return make_report(
        cells,
        started=started,
        git_commit="0123456789abcdef",
        packages={"numpy": "2.0"},
        models=[],
        **run,
    )


def test_a_history_line_keeps_metadata_and_metrics_but_no_predictions_or_answers():
    report = _run("2026-01-01T00:00:00+00:00", 0.9)
    line = history_line(report)
    validate_history_line(line)
    assert set(line["run"]) >= {"started", "git_commit", "seed", "models", "datasets", "packages"}
    assert line["run"]["models"] == [{"spec": "m", "fingerprint": "m@1"}]
    assert line["run"]["datasets"] == [{"name": "builtin", "digest": "abc"}]
    cell = line["cells"][0]
    assert cell["metrics"]["srcc"]["value"] == 0.9 and cell["coverage"] == 1.0 and cell["outcome"] == "passed"
    text = json.dumps(line)
    assert "predictions" not in text and "examples" not in text and "Score: 0" not in text


def test_runs_append_one_line_each_and_read_back_oldest_first(tmp_path):
    append_history(tmp_path, _run("2026-01-02T00:00:00+00:00", 0.8))
    append_history(tmp_path, _run("2026-01-01T00:00:00+00:00", 0.9))
    assert len((tmp_path / "history.jsonl").read_text().splitlines()) == 2
    runs = read_history(tmp_path / "history.jsonl")
    assert [r["run"]["started"][:10] for r in runs] == ["2026-01-01", "2026-01-02"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"run": {"started": "x"}, "cells": []}\n{oops\n', r"history\.jsonl:2: not a JSON line"),
        ("[1, 2]\n", r"history\.jsonl:1: not a history line"),
        ('\n{"run": {}, "cells": []}\n', r"history\.jsonl:2: run has no start time"),
    ],
)
def test_a_damaged_history_names_the_file_and_line(tmp_path, content, message):
    (tmp_path / "history.jsonl").write_text(content)
    with pytest.raises(HistoryError, match=message):
        read_history(tmp_path / "history.jsonl")


def test_the_trend_draws_each_model_over_its_runs_and_tables_the_latest_change():
    history = [
        history_line(_run("2026-01-01T00:00:00+00:00", 0.9)),
        history_line(_run("2026-01-02T00:00:00+00:00", 0.7)),
        history_line(_run("2026-01-02T00:00:00+00:00", 0.5, model="<b>other</b>")),
    ]
    page = render_trend(history)
    assert "<script" not in page and "default-src 'none'" in page
    assert page.count('<img src="data:image/png;base64,') == 2  # one figure per model and dataset
    assert "&lt;b&gt;other&lt;/b&gt; · builtin" in page and "<b>other</b>" not in page
    assert "3 runs from 2026-01-01T00:00:00+00:00" in page
    section = page[page.index("<h2>m · builtin</h2>") :]
    header = re.search(r"<tr><th>latest run</th>(.*?)</tr>", section).group(1)
    assert re.findall(r"<th>(.*?)</th>", header) == ["ss", "ds", "best (stage 2)"]
    assert '<td>0.700 <span class="down">(-0.200)</span></td>' in section


def test_trend_command_writes_beside_the_history_and_explains_a_missing_one(tmp_path, capsys):
    assert main(["trend", f"--report-dir={tmp_path}"]) == 2
    assert "no history yet" in capsys.readouterr().err
    append_history(tmp_path, _run("2026-01-01T00:00:00+00:00", 0.9))
    assert main(["trend", f"--report-dir={tmp_path}", "-o", str(tmp_path / "t.html")]) == 0
    assert (tmp_path / "t.html").read_text().startswith("<!doctype html>")


def test_trend_and_compare_leave_partial_runs_out_unless_asked(tmp_path, capsys):
    whole = _run("2026-01-01T00:00:00+00:00", 0.9)
    cut = _run("2026-01-02T00:00:00+00:00", 0.1, partial=True)
    assert "0.100" not in render_trend([history_line(whole), history_line(cut)])
    assert "0.100" in render_trend([history_line(whole), history_line(cut)], include_partial=True)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(whole))
    b.write_text(json.dumps(cut))
    assert main(["compare", str(a), str(b)]) == 2
    assert "cut short" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--include-partial"]) == 0


def test_trend_labels_each_point_with_the_model_identity_that_answered():
    from iqa_eval.report.trend import _label

    run = {
        "started": "2026-03-04T05:06:07+00:00",
        "git_commit": "abcdef0123",
        "models": [{"spec": "openai:m@r7", "fingerprint": "openai:m@r7",
                    "identity": {"key": "openai:m@r7#0123456789abcdef", "fingerprint": "openai:m@r7",
                                 "served": {"model": "m"}}}],
    }  # fmt: skip
    assert _label(run, "openai:m@r7") == "03-04 05:06 r7 #01234567 abcdef0"
