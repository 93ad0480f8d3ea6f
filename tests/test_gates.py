"""Gate profiles: rule matching, judging on the confidence bound, coverage, and clear errors."""

import pytest

from iqa_eval.evaluation.gates import Gate, GateError, GateProfile, judge
from iqa_eval.types import CellResult, CellSpec, MetricValue

FR_COLOR = CellSpec("openai:gpt-x", "builtin", "fr", "color", "ds", "cot", "uniform")
NR_STRUCT = CellSpec("expert", "builtin", "nr", "structure", "ss", "standard", "uniform")


def write(tmp_path, text):
    path = tmp_path / "gates.toml"
    path.write_text(text)
    return path


def result(spec=FR_COLOR, value=0.5, low=0.3, high=0.7, failed=0, queries=100):
    metric = MetricValue(value, low, high, 16, "local_mean")
    return CellResult(spec, 80, queries, {"no_score": failed} if failed else {}, {"srcc": metric}, "srcc")


def test_default_gate_is_better_than_chance_with_confidence():
    gate = GateProfile(Gate(), (), "x").gate_for(FR_COLOR)
    assert judge(result(low=0.01), gate).passed
    verdict = judge(result(low=-0.01), gate)
    assert not verdict.passed
    for part in (
        "srcc too low",
        "lower bound -0.010",
        "value 0.500",
        "[-0.010, 0.700]",
        "n=16 groups",
        "must exceed 0",
        "coverage 100.0% of 100 queries",
    ):
        assert part in verdict.message


def test_coverage_is_gated():
    gate = Gate(min_coverage=0.9)
    verdict = judge(result(failed=11), gate)
    assert not verdict.passed and "coverage too low" in verdict.message
    assert judge(result(failed=10), gate).passed


def test_point_bound_and_undefined_metric():
    assert judge(result(value=0.5, low=-0.2), Gate(bound="point", threshold=0.4)).passed
    verdict = judge(result(value=None, low=None, high=None), Gate())
    assert not verdict.passed and "undefined" in verdict.message


def test_rules_match_models_and_marker_expressions_last_wins(tmp_path):
    profile = GateProfile.load(
        write(
            tmp_path,
            """
[defaults]
threshold = 0.0
[[gate]]
models = "openai:*"
select = "fr and (color or texture)"
threshold = 0.5
[[gate]]
models = "openai:*"
select = "fr and not ss and cot"
min_coverage = 0.99
""",
        )
    )
    gate = profile.gate_for(FR_COLOR)
    assert (gate.threshold, gate.min_coverage) == (0.5, 0.99)
    assert profile.gate_for(NR_STRUCT) == Gate()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[gate]]\nselect = 'fr and colour'\n", "unknown marker 'colour'"),
        ("[[gate]]\nselect = 'fr and'\n", "is not a marker expression"),
        ("[[gate]]\nselect = '__import__(\"os\")'\n", "may only use marker names"),
        ("[[gate]]\nthreshold = 'high'\n", "threshold must be a number"),
        ("[[gate]]\nbound = 'upper'\n", "bound must be 'lower' or 'point'"),
        ("[[gate]]\nmin_coverage = 2\n", "min_coverage must lie in [0, 1]"),
        ("[[gate]]\nthresold = 0.3\n", "unknown key(s) ['thresold']"),
        ("[defaults]\nmetric = 'plcc'\n", "metric and known_gap belong in [[gate]] rules"),
        ("[[gate]]\nknown_gap = 3\n", "known_gap must be a string"),
        ("[gates]\n", "unknown section(s) ['gates']"),
        ("threshold = = 1\n", "not valid TOML"),
    ],
)
def test_bad_profiles_name_the_file_and_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(GateError) as err:
        GateProfile.load(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_missing_profile(tmp_path):
    with pytest.raises(GateError, match="gate profile not found"):
        GateProfile.load(tmp_path / "nope.toml")


def test_shipped_default_profile_loads():
    from pathlib import Path

    profile = GateProfile.load(Path(__file__).parents[1] / "fixtures" / "gates" / "default.toml")
    assert profile.defaults.min_coverage == 0.9


def test_a_profile_gating_on_the_old_bias_name_gates_position_balance(tmp_path):
    path = write(tmp_path, '[[gate]]\nmodels = "*"\nmetric = "bias"\nthreshold = 0.8\n')
    with pytest.warns(FutureWarning, match="'bias' is now called 'position_balance'"):
        profile = GateProfile.load(path)
    gate = profile.gate_for(FR_COLOR)
    assert gate.metric == "position_balance"
    balanced = MetricValue(0.95, 0.9, 1.0, 80, "rate")
    cell = CellResult(FR_COLOR, 80, 100, {}, {"srcc": balanced, "position_balance": balanced}, "srcc")
    assert judge(cell, gate).passed
