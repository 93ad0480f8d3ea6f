"""The baseline gate: a paired bootstrap of the metric difference, tested by simulation and in a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_report_schema import make_cell, make_report, validate_report

from iqa_eval.cli import main
from iqa_eval.evaluation.baseline import (
    Baseline,
    BaselineError,
    PairedSample,
    _group_values,
    compare_cells,
    paired_bootstrap,
)
from iqa_eval.evaluation.gates import GateError, GateProfile
from iqa_eval.metrics import correlation
from iqa_eval.protocols.base import PlanRequest
from iqa_eval.protocols.ss import SS
from iqa_eval.types import CellSpec, Item, Judgement, Stimulus

GROUPS, PER_GROUP = 16, 5  # the shape of a built-in FR cell: 16 references x 5 levels


def _local_truth():
    truth = np.tile(np.arange(PER_GROUP, dtype=float), GROUPS)
    return truth, np.repeat([f"g{g}" for g in range(GROUPS)], PER_GROUP)


def _simulate(rng, noise_now, noise_base, local, seed, n_resamples=400):
    if local:
        truth, groups = _local_truth()
    else:
        truth, groups = rng.normal(size=60), None
    now = truth + rng.normal(scale=noise_now, size=truth.size)
    base = truth + rng.normal(scale=noise_base, size=truth.size)
    sample = PairedSample(truth, now, base, groups)
    return paired_bootstrap("srcc", sample, tolerance=0.0, seed=seed, n_resamples=n_resamples)


@pytest.mark.parametrize(("local", "runs", "ceiling"), [(True, 800, 0.045), (False, 200, 0.05)])
def test_false_alarm_rate_under_the_null_is_near_the_nominal_one_sided_level(local, runs, ceiling):
    """Two equally good runs, nominal level 2.5%: the rate must be close to it, not far above."""
    rng = np.random.default_rng(7)
    alarms = [_simulate(rng, 1.0, 1.0, local, seed).regressed for seed in range(runs)]
    assert np.mean(alarms) <= ceiling
    assert np.mean(alarms) > 0  # an interval that never alarms would be too wide to detect anything


@pytest.mark.parametrize("local", [True, False])
def test_a_known_regression_is_detected(local):
    rng = np.random.default_rng(11)
    hits = [_simulate(rng, 3.0, 0.5, local, seed).regressed for seed in range(40)]
    assert np.mean(hits) >= 0.9
    improvements = [_simulate(rng, 0.5, 3.0, local, seed) for seed in range(10)]
    assert not any(c.regressed for c in improvements) and all(c.delta > 0 for c in improvements)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    local=st.booleans(),
    tolerance=st.sampled_from([0.0, 0.02]),
    metric=st.sampled_from(["srcc", "krcc"]),
)
def test_identical_runs_are_never_flagged(seed, local, tolerance, metric):
    rng = np.random.default_rng(seed)
    truth, groups = _local_truth() if local else (rng.normal(size=30), None)
    predicted = truth + rng.normal(size=truth.size)
    sample = PairedSample(truth, predicted, predicted.copy(), groups)
    result = paired_bootstrap(metric, sample, tolerance=tolerance, seed=seed, n_resamples=100)
    assert not result.regressed and result.delta == 0.0 and result.ci == (0.0, 0.0) and result.p_value == 1.0


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=40)
)
def test_grouped_spearman_equals_the_cells_own_local_mean_per_group(data):
    x = np.array([float(a) for a, _, _ in data])
    y = np.array([float(b) for _, b, _ in data])
    labels = np.array([f"g{g}" for _, _, g in data])
    expected = []
    for g in np.unique(labels):
        member = labels == g
        expected.append(correlation("srcc", x[member], y[member], [g] * int(member.sum()))[0])
    np.testing.assert_allclose(_group_values("srcc", x, y, labels), expected, equal_nan=True)


@pytest.mark.parametrize("local", [True, False])
@pytest.mark.parametrize("name", ["srcc", "krcc", "plcc"])
def test_the_baseline_recomputes_the_very_value_the_cell_reported(name, local):
    """A cell compared with itself: the baseline's value of it is the cell's own, to the bit.

    The ratings are coarse (ties), one group has constant truth and one constant prediction, so
    every convention of the local mean is on the path."""
    rng = np.random.default_rng(3)
    items, judged = [], []
    for g in range(6):
        for k in range(5):
            truth = 1.0 if g == 0 else float(k) + rng.normal(scale=0.3)
            stimulus = Stimulus(f"g{g}/{k}.png", f"g{g}/{k}", 8, 8)
            items.append(Item(f"g{g}/{k}", "t", "nr", "structure", stimulus, truth, True, f"g{g}"))
    plan = SS.plan(PlanRequest(items, "nr", "standard", local=local, seed=0))
    for pq in plan.queries:
        g, k = (int(part.lstrip("g")) for part in pq.item_ids[0].split("/"))
        rating = 50.0 if g == 1 else float(np.clip(20 * k + rng.integers(-15, 16), 0, 100))
        judged.append((pq, Judgement((rating,))))
    result = SS.aggregate(plan, judged, seed=0, n_resamples=50)
    metric = result.metrics[name]
    cell = make_cell(
        primary_metric=name,
        metrics={name: {"value": metric.value, "aggregation": metric.aggregation}},
        predictions=[
            {"item": p.item_id, "truth": p.truth, "predicted": p.predicted, "group": p.group, "image": None}
            for p in result.predictions
        ],
    )
    comparison = compare_cells(cell, cell, tolerance=0.02, seed=0, n_resamples=50)
    assert comparison.unit == ("groups" if local else "items")
    assert comparison.now_value == comparison.baseline_value == result.metrics[name].value


def _shifted(cell, **changes):
    """The cell with some predictions changed, as another run of it might have them."""
    predictions = [dict(p) for p in cell["predictions"]]
    for item, predicted in changes.items():
        next(p for p in predictions if p["item"] == item)["predicted"] = predicted
    return {**cell, "predictions": predictions}


def test_only_items_both_runs_judged_with_the_same_truth_are_compared():
    base = make_cell()
    now = _shifted(base)
    now["predictions"] = [*now["predictions"][1:], {**now["predictions"][0], "truth": 99.0}]
    now["predictions"].append({"item": "new", "truth": 1.0, "predicted": 1.0, "group": "g0", "image": None})
    result = compare_cells(now, base, tolerance=0.02, seed=0)
    assert "1 item(s) left out: their ground truth differs" in result.note
    assert "1 item(s) judged in only one of the runs left out" in result.note


def test_missing_cell_and_incomparable_metric_are_named_not_failed():
    cell = make_cell()
    missing = compare_cells(cell, None, tolerance=0.02, seed=0)
    assert missing.note == "the baseline has no such cell" and missing.status == "no baseline"
    assert missing.to_record()["status"] == "no baseline" and not missing.regressed
    accuracy = make_cell(primary_metric="accuracy")
    result = compare_cells(accuracy, accuracy, tolerance=0.02, seed=0)
    assert not result.regressed and result.delta is None and "cannot be recomputed" in result.note
    assert result.status == "not comparable"
    changed = compare_cells(make_cell(primary_metric="krcc"), cell, tolerance=0.02, seed=0)
    assert changed.status == "not comparable" and "changed from 'srcc' to 'krcc'" in changed.note


def test_stage_two_cells_are_found_even_when_the_best_system_changed():
    old = make_cell(stage=2, protocol="ds", strategy="cot", subset="finegrained")
    new = make_cell(stage=2, protocol="ss", strategy="standard", subset="finegrained")
    baseline = Baseline([old], "b.json")
    assert baseline.find(new) is old
    assert "best system changed: baseline ds/cot" in compare_cells(new, old, tolerance=0.02, seed=0).note


def test_bad_baseline_files_name_the_file(tmp_path):
    with pytest.raises(BaselineError, match=r"missing\.json: baseline not found"):
        Baseline.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"cells": [{"id": "x"}]}')
    with pytest.raises(BaselineError, match=r"bad\.json: cell #0 lacks"):
        Baseline.load(tmp_path / "bad.json")


def test_gate_profiles_set_the_baseline_tolerance(tmp_path):
    path = tmp_path / "gates.toml"
    path.write_text(
        '[defaults]\nbaseline_tolerance = 0.05\n[[gate]]\nselect = "nr"\nbaseline_tolerance = 0.1\n'
    )
    profile = GateProfile.load(path)
    spec = CellSpec("m", "d", "fr", "color", "ss", "standard", "uniform")
    assert profile.gate_for(spec).baseline_tolerance == 0.05
    assert (
        profile.gate_for(CellSpec("m", "d", "nr", "color", "ss", "standard", "uniform")).baseline_tolerance
        == 0.1
    )
    path.write_text("[defaults]\nbaseline_tolerance = -1\n")
    with pytest.raises(GateError, match="baseline_tolerance must be >= 0"):
        GateProfile.load(path)


# ------------------------------------------------------------------------------ commands


def test_bless_stores_the_report_without_answers_where_runs_look_for_it(tmp_path, monkeypatch, capsys):
    report = make_report([make_cell(model="openai:gpt-4o")], model_specs=["openai:gpt-4o"])
    (tmp_path / "r.json").write_text(json.dumps(report))
    monkeypatch.chdir(tmp_path)
    assert main(["baseline", "bless", "r.json"]) == 0
    blessed = json.loads((tmp_path / "fixtures/baselines/openai-gpt-4o.json").read_text())
    validate_report(blessed)
    assert blessed["cells"][0]["examples"] == [] and blessed["cells"][0]["predictions"]
    assert main(["baseline", "bless", "r.json", "--to", "elsewhere/b.json"]) == 0
    assert (tmp_path / "elsewhere/b.json").is_file()
    (tmp_path / "p.json").write_text(json.dumps({**report, "run": {**report["run"], "shard": "1/2"}}))
    assert main(["baseline", "bless", "p.json"]) == 2
    assert "shard 1/2; bless the report of a whole run" in capsys.readouterr().err


def test_compare_prints_the_shared_cells_with_paired_deltas(tmp_path, capsys):
    before = make_cell(predictions=[p | {"predicted": p["truth"]} for p in make_cell()["predictions"]])
    worse = _shifted(before, **{"g0/0": 2.0, "g0/2": 0.0, "g1/0": 2.0, "g1/2": 0.0})
    worse["metrics"] = {"srcc": {**before["metrics"]["srcc"], "value": -1.0}}
    (tmp_path / "a.json").write_text(json.dumps(make_report([before, make_cell(strategy="cot")])))
    (tmp_path / "b.json").write_text(json.dumps(make_report([worse])))
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "m/builtin/fr_color/ss/standard/uniform" in out and "-1.900" in out
    assert "1 shared cells; 1 only in A" in out
    argv = ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--fail-on-regression"]
    assert main(argv) == 1


# ---------------------------------------------------------------------------- in a run

CONSTANT_MODEL = """
from iqa_eval.models.base import ModelClient
from iqa_eval.types import Answer

class Constant(ModelClient):
    spec = "expert"
    fingerprint = "constant@1"

    async def answer(self, query):
        return Answer("Score: 50")

def pytest_iqa_make_model(spec, store):
    if spec == "expert":
        return Constant()
"""


def test_a_run_fails_a_cell_that_regressed_against_the_blessed_baseline(suite_dir, shared_cache, capsys):
    select = ("-p", "no:randomly", "-m", "fr_color and ss and standard", "-k", "not metamorphic")
    run = lambda *args: suite_dir.runpytest(f"--iqa-cache={shared_cache}", *select, *args)  # noqa: E731
    run().assert_outcomes(passed=1)
    assert (
        main(["baseline", "bless", str(suite_dir.path / "reports/iqa-report.json"), "--to", "base.json"]) == 0
    )

    result = run("--iqa-baseline=base.json")
    result.assert_outcomes(passed=1)
    report = json.loads((suite_dir.path / "reports/iqa-report.json").read_text())
    (cell,) = report["cells"]
    assert cell["baseline"]["delta"] == 0.0 and cell["baseline"]["regressed"] is False
    assert report["run"]["baseline"].endswith("base.json")

    suite_dir.makeconftest(CONSTANT_MODEL)
    (suite_dir.path / "lenient.toml").write_text('[defaults]\nthreshold = -2\nbound = "point"\n')
    result = run("--iqa-baseline=base.json", "--iqa-gates=lenient.toml")
    result.assert_outcomes(failed=1)
    expected = (
        "*baseline REGRESSED: srcc baseline 1.000, now 0.000, delta -1.000 (95% CI [[]-1.000, -1.000[]], p=*"
    )
    result.stdout.fnmatch_lines([expected])
    report = json.loads((suite_dir.path / "reports/iqa-report.json").read_text())
    validate_report(report)
    (cell,) = report["cells"]
    assert cell["outcome"] == "failed" and cell["baseline"]["regressed"] is True
    assert report["run"]["regressed"] == 1
    result.stdout.fnmatch_lines(["*1 cell: 1 failed, 1 regressed vs baseline"])
    capsys.readouterr()


def test_an_unreadable_baseline_is_one_clear_error(suite_dir, shared_cache):
    result = suite_dir.runpytest(f"--iqa-cache={shared_cache}", "--iqa-baseline=nope.json", "--collect-only")
    assert result.ret != 0 and "nope.json: baseline not found" in result.stderr.str()


# ------------------------------------------------------------------ rates (metamorphic cells)


def _rate_cell(value, n):
    metric = {"value": value, "ci": [None, None], "n": n, "aggregation": "rate", "note": ""}
    return make_cell(primary_metric="invariance", subset="metamorphic", metrics={"invariance": metric})


def test_a_collapsed_invariance_rate_regresses():
    """The drop that used to pass unnoticed: an MS permutation invariance of 1.000 -> 0.167."""
    result = compare_cells(_rate_cell(2 / 12, 12), _rate_cell(1.0, 12), tolerance=0.02, seed=0)
    assert result.status == "compared" and result.unit == "cases" and result.regressed
    assert result.delta == pytest.approx(2 / 12 - 1.0) and result.p_value < 0.001
    assert result.ci[1] < -0.02


def test_equal_rates_do_not_regress_and_tiny_samples_are_not_proof():
    assert not compare_cells(_rate_cell(0.9, 30), _rate_cell(0.9, 30), tolerance=0.02, seed=0).regressed
    assert not compare_cells(_rate_cell(0.5, 2), _rate_cell(1.0, 2), tolerance=0.02, seed=0).regressed


def test_the_rate_interval_is_newcombes_hybrid_score_interval():
    """Newcombe (1998), Table II, example (a): 56/70 against 48/80 gives [0.0524, 0.3339]."""
    from iqa_eval.evaluation.baseline import _newcombe

    low, high = _newcombe(56, 70, 48, 80, 1.959964)
    assert low == pytest.approx(0.0524, abs=1e-4) and high == pytest.approx(0.3339, abs=1e-4)


def test_rate_regressions_are_false_alarms_at_most_at_the_nominal_rate():
    """Same true rate in both runs: the one-sided test may cry regression in ~2.5% of runs."""
    rng = np.random.default_rng(11)
    alarms = 0
    runs = 4000
    for _ in range(runs):
        n = 24
        p = rng.choice([0.7, 0.85, 0.95])
        now, base = rng.binomial(n, p) / n, rng.binomial(n, p) / n
        alarms += compare_cells(_rate_cell(now, n), _rate_cell(base, n), tolerance=0.0, seed=0).regressed
    assert alarms / runs < 0.035


def test_the_rate_p_value_and_the_interval_make_the_same_decision():
    for k_now in range(0, 25):
        result = compare_cells(_rate_cell(k_now / 24, 24), _rate_cell(22 / 24, 24), tolerance=0.02, seed=0)
        assert result.regressed == (result.p_value < 0.025)
