"""``iqa-eval gates init``: a profile that holds a model to what one run measured."""

from __future__ import annotations

import json

import pytest
from suite_runs import SYSTEMS
from test_report_schema import make_cell, make_report

from iqa_eval.cli import main
from iqa_eval.evaluation.gates import GateProfile
from iqa_eval.evaluation.gates_init import cell_pattern, profile_text
from iqa_eval.types import CellSpec


def metric(value, low, high):
    return {"srcc": {"value": value, "ci": [low, high], "n": 16, "aggregation": "local_mean", "note": ""}}


def test_failed_cells_become_known_gaps_and_passed_cells_thresholds_under_their_bound(tmp_path):
    passed = make_cell(metrics=metric(0.9, 0.8, 0.95))
    failed = make_cell(id="m/builtin/fr_color/ss/cot/uniform", strategy="cot", outcome="failed",
                       metrics=metric(0.1, -0.2, 0.3))  # fmt: skip
    error = make_cell(id="m/builtin/fr_color/ds/standard/uniform", protocol="ds", outcome="error")
    stage2 = make_cell(id="m/builtin/fr_color/ss/cot/finegrained", stage=2, strategy="cot",
                       subset="finegrained", metrics=metric(0.7, 0.6, 0.8))  # fmt: skip
    path = tmp_path / "adopted.toml"
    path.write_text(profile_text(make_report([passed, failed, error, stage2]), "run.json", margin=0.05))
    profile = GateProfile.load(path)

    def gate(model="m", protocol="ss", strategy="standard", subset="uniform"):
        return profile.gate_for(CellSpec(model, "builtin", "fr", "color", protocol, strategy, subset))

    assert gate().threshold == pytest.approx(0.75) and gate().known_gap is None
    assert "measured srcc 0.100 [-0.200, 0.300]" in gate(strategy="cot").known_gap
    assert gate(protocol="ds").threshold == 0.0  # not measured: left to the defaults, and said why
    assert "m/builtin/fr_color/ds/standard/uniform: error" in path.read_text()
    # Stage 2 holds whatever system the next run chooses.
    assert gate(protocol="ds", strategy="icl", subset="finegrained").threshold == pytest.approx(0.55)
    assert gate(model="other").threshold == 0.0


def test_cell_patterns_match_only_their_cell():
    cell = make_cell(id="hf:/models/[v2]/builtin/fr_color/ss/standard/uniform", model="hf:/models/[v2]")
    pattern = cell_pattern(cell)
    profile_spec = CellSpec("hf:/models/[v2]", "builtin", "fr", "color", "ss", "standard", "uniform")
    import fnmatch

    assert fnmatch.fnmatchcase(profile_spec.id, pattern)
    assert not fnmatch.fnmatchcase(profile_spec.id.replace("[v2]", "v"), pattern)


def test_a_run_gated_on_its_adopted_profile_passes_and_a_worse_one_fails(
    suite_dir, shared_cache, fake_openai, accurate_responder, reversed_responder
):
    # The first run's own gate makes one cell fail, as an open model's absolute gates would.
    strict = suite_dir.path / "strict.toml"
    strict.write_text('[[gate]]\ncells = "*/ss/cot/*"\nthreshold = 1.5\n')
    server = fake_openai(responder=accurate_responder)
    args = (
        *SYSTEMS,
        f"--iqa-cache={shared_cache}",
        "--iqa-model",
        "openai:adopted",
        "-m",
        "fr_structure and ss and not levels",
    )
    first = suite_dir.runpytest(*args, "--iqa-base-url", server.url, f"--iqa-gates={strict}")
    first.assert_outcomes(passed=2, failed=1)
    report = suite_dir.path / "reports" / "iqa-report.json"
    adopted = suite_dir.path / "adopted.toml"
    assert main(["gates", "init", str(report), "--to", str(adopted)]) == 0
    assert main(["gates", "init", str(report), "--to", str(adopted)]) == 2  # no silent overwrite

    again = suite_dir.runpytest(*args, "--iqa-base-url", server.url, f"--iqa-gates={adopted}")
    again.assert_outcomes(passed=2, xfailed=1)
    assert again.ret == 0

    worse = fake_openai(responder=reversed_responder)
    result = suite_dir.runpytest(
        *args, "--iqa-base-url", worse.url, f"--iqa-gates={adopted}", "--iqa-no-cache"
    )
    result.assert_outcomes(failed=2, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cells = {c["strategy"]: c for c in json.loads(report.read_text())["cells"]}
    assert cells["standard"]["gate"]["source"].startswith(str(adopted))
