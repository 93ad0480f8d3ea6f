"""The pytest plugin, driven as a user drives it: selection by markers, gates, reports, errors."""

from __future__ import annotations

import json

import pytest


def run(pytester, shared_cache, *args):
    return pytester.runpytest(f"--iqa-cache={shared_cache}", "-p", "no:randomly", *args)


def report(pytester):
    return json.loads((pytester.path / "reports" / "iqa-report.json").read_text())


def collected(pytester, shared_cache, expression):
    result = run(pytester, shared_cache, "--collect-only", "-q", "-m", expression)
    return [line for line in result.outlines if "::" in line]


def test_markers_select_the_systems_they_name(suite_dir, shared_cache):
    ids = collected(suite_dir, shared_cache, "fr and ds and cot")
    assert len(ids) == 4
    assert all("/ds/cot/" in i and "/fr_" in i for i in ids)


@pytest.mark.parametrize(
    ("expression", "count", "part"),
    [
        ("fr_color", 9 + 1 + 3, "fr_color"),
        ("nr_structure", 9 + 1 + 3, "nr_structure"),
        ("geometry", 2 * (9 + 1 + 3), "_geometry"),
        ("ss and icl", 8, "/ss/icl/"),
        ("metamorphic and ds", 8, "/ds/standard/metamorphic"),
    ],
)
def test_setting_attribute_markers(suite_dir, shared_cache, expression, count, part):
    ids = collected(suite_dir, shared_cache, expression)
    assert len(ids) == count and all(part in i for i in ids)


def test_fr_color_runs_passes_and_writes_both_reports(suite_dir, shared_cache):
    result = run(suite_dir, shared_cache, "-m", "fr_color and ss and not metamorphic")
    result.assert_outcomes(passed=3)
    data = report(suite_dir)
    assert data["schema_version"] == "1.3"
    assert {c["id"] for c in data["cells"]} == {
        f"expert/builtin/fr_color/ss/{s}/uniform" for s in ("standard", "icl", "cot")
    }
    for cell in data["cells"]:
        assert cell["outcome"] == "passed" and cell["n_items"] == 80 and cell["n_queries"] == 80
        assert set(cell["metrics"]) == {"srcc", "plcc", "krcc"}
        assert cell["metrics"]["srcc"]["aggregation"] == "local_mean"
        assert cell["gate"]["threshold"] == 0.7
    assert data["run"]["models"][0]["fingerprint"].startswith("expert:panel@")
    html = (suite_dir.path / "reports" / "iqa-report.html").read_text()
    assert "expert/builtin/fr_color/ss/cot/uniform" in html


def test_a_model_that_ranks_backwards_fails_its_gates(suite_dir, shared_cache):
    suite_dir.makeconftest(
        """
from iqa_eval.models.expert import make_expert

def pytest_iqa_make_model(spec, store):
    if spec == "backwards":
        return make_expert("expert", store, reverse=True)
"""
    )
    result = run(
        suite_dir,
        shared_cache,
        "--iqa-model",
        "backwards",
        "-m",
        "fr_structure and ss and standard and not metamorphic",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*srcc too low: srcc lower bound -1.000*must exceed 0*coverage 100.0%*"])
    (cell,) = report(suite_dir)["cells"]
    assert cell["outcome"] == "failed" and cell["metrics"]["srcc"]["value"] < -0.9


def test_known_gap_is_an_expected_failure_recorded_as_failed(suite_dir, shared_cache):
    result = run(suite_dir, shared_cache, "-m", "nr_color and ss and standard and not metamorphic")
    result.assert_outcomes(xfailed=1)
    (cell,) = report(suite_dir)["cells"]
    assert cell["outcome"] == "failed" and "hue rotation" in cell["gate"]["known_gap"]


def test_a_known_gap_that_passes_fails_strictly(suite_dir, shared_cache):
    (suite_dir.path / "gates.toml").write_text('[[gate]]\nselect = "fr"\nknown_gap = "pretend"\n')
    result = run(
        suite_dir,
        shared_cache,
        "--iqa-gates",
        "gates.toml",
        "-m",
        "fr_color and ss and standard and not metamorphic",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*known gap no longer holds (pretend)*"])


def test_a_model_without_the_setting_is_skipped_with_the_reason(suite_dir, shared_cache):
    result = run(
        suite_dir,
        shared_cache,
        "--iqa-model",
        "expert:ssim",
        "-m",
        "nr_color and ss and standard and not metamorphic",
    )
    result.assert_outcomes(skipped=1)
    (cell,) = report(suite_dir)["cells"]
    assert cell["outcome"] == "skipped" and "answers only FR" in cell["message"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--iqa-model", "gpt-9"], "unknown model spec 'gpt-9'"),
        (["--iqa-model", "expert:vif"], "unknown expert spec 'expert:vif'"),
        (["--iqa-gates", "missing.toml"], "missing.toml: gate profile not found"),
        (["--iqa-concurrency", "0"], "concurrency must be at least 1"),
        (["--iqa-seed", "x"], "--iqa-seed: seed = 'x' is not a valid int"),
    ],
)
def test_bad_configuration_is_one_clear_error(suite_dir, shared_cache, args, message):
    result = run(suite_dir, shared_cache, *args, "-m", "fr_color and ss and standard and not metamorphic")
    assert result.ret != 0
    assert message in (result.stdout.str() + result.stderr.str())
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_pyproject_section_sets_options(suite_dir, shared_cache):
    suite_dir.makepyprojecttoml('[tool.iqa_eval]\nreport_dir = "out"\nseed = 3\n')
    run(suite_dir, shared_cache, "-m", "fr_color and ss and standard and not metamorphic").assert_outcomes(
        passed=1
    )
    data = json.loads((suite_dir.path / "out" / "iqa-report.json").read_text())
    assert data["run"]["seed"] == 3


def test_unknown_pyproject_key_is_rejected(suite_dir, shared_cache):
    suite_dir.makepyprojecttoml('[tool.iqa_eval]\nmodels = ["expert"]\n')
    result = run(suite_dir, shared_cache, "-m", "fr_color and ss and standard and not metamorphic")
    assert result.ret != 0 and "unknown key(s) ['models']" in result.stderr.str()


def test_the_projects_own_tests_write_no_report(pytester, shared_cache):
    pytester.makepyfile("def test_x():\n    assert True\n")
    run(pytester, shared_cache).assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()


def test_a_model_that_always_prefers_the_first_image_fails_order_invariance(suite_dir, shared_cache):
    suite_dir.makeconftest(
        """
from iqa_eval.models.base import ModelClient
from iqa_eval.types import Answer

class FirstAlways(ModelClient):
    spec = fingerprint = "first-always"

    async def answer(self, query):
        return Answer("Score: 1")

def pytest_iqa_make_model(spec, store):
    if spec == "first-always":
        return FirstAlways()
"""
    )
    args = ("--iqa-model", "first-always", "-m", "metamorphic and ds and fr_structure")
    result = run(suite_dir, shared_cache, *args)
    result.assert_outcomes(failed=1)
    (cell,) = report(suite_dir)["cells"]
    assert cell["metrics"]["invariance"]["value"] == 0.0 and cell["gate"]["threshold"] == 0.5


COUNTING = """
import pytest

from iqa_eval.models.base import ModelClient
from iqa_eval.types import Answer

ASKED = {"before": 0, "during": 0}
RUNNING = []


class Counting(ModelClient):
    def __init__(self, spec):
        self.spec = self.fingerprint = spec

    async def answer(self, query):
        ASKED["during" if RUNNING else "before"] += 1
        return Answer("Score: 1")


def pytest_iqa_make_model(spec, store):
    if spec.startswith("counting"):
        return Counting(spec)


def pytest_runtest_setup(item):
    RUNNING.append(item.nodeid)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"asked before tests: {ASKED['before']}, during: {ASKED['during']}")
"""


def test_metamorphic_cases_are_drawn_and_asked_with_the_cells_before_any_test_runs(suite_dir, shared_cache):
    suite_dir.makeconftest(COUNTING)
    args = ("--iqa-model", "counting-up-front", "-m", "metamorphic and fr_structure")
    result = run(suite_dir, shared_cache, *args)
    # "Score: 1" for everything: no DS verdict survives a swap, no MS answer is a ranking, every
    # SS score survives re-encoding.
    result.assert_outcomes(failed=2, passed=1)
    (dispatch,) = [line for line in result.outlines if line.startswith("iqa-eval: 3 cells, ")]
    unique = int(dispatch.split(", ")[1].split()[0])
    assert f"(0 cached, {unique} asked, 0 failed)" in dispatch
    (line,) = [line for line in result.outlines if line.startswith("asked before tests")]
    assert line == f"asked before tests: {unique}, during: 0"
    # 24 cases of two queries each per relation, every answer there when its test ran; a DS
    # pair drawn in both orders shares its queries, asked once.
    cells = report(suite_dir)["cells"]
    assert [cell["n_queries"] for cell in cells] == [48, 48, 48] and unique <= 144


def test_a_test_that_draws_its_own_cases_asks_them_when_it_runs(suite_dir, shared_cache):
    suite_dir.makeconftest(COUNTING)
    suite_dir.makepyfile(
        test_own_relation="""
import pytest
from iqa_eval.evaluation.metamorphic import Case

@pytest.mark.iqa_relation("ss")
def test_first_of_each_group(iqa_metamorphic):
    iqa_metamorphic.check_cases([Case((group[0],)) for group in iqa_metamorphic.groups])
"""
    )
    args = ("test_own_relation.py", "--iqa-model", "counting-own", "-m", "fr_structure")
    result = run(suite_dir, shared_cache, *args)
    result.assert_outcomes(passed=1)  # the same pixels re-encoded: "Score: 1" both times
    result.stdout.fnmatch_lines(["asked before tests: 0, during: *"])
    (cell,) = report(suite_dir)["cells"]
    assert cell["metrics"]["invariance"]["value"] == 1.0


def test_check_needs_the_strategy_its_marker_names(suite_dir, shared_cache):
    suite_dir.makepyfile(
        test_own_relation="""
import pytest

@pytest.mark.iqa_relation("ss")
def test_no_strategy(iqa_metamorphic):
    iqa_metamorphic.check()
"""
    )
    result = run(suite_dir, shared_cache, "test_own_relation.py", "-m", "fr_structure")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*check() draws from @pytest.mark.iqa_relation(protocol, cases=STRATEGY)*"])
    suite_dir.makepyfile(
        test_own_relation="""
import pytest

@pytest.mark.iqa_relation("ds", cases=[])
def test_not_a_strategy(iqa_metamorphic):
    iqa_metamorphic.check()
"""
    )
    result = run(suite_dir, shared_cache, "test_own_relation.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED and "plugin/cells.py" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*test_not_a_strategy: @pytest.mark.iqa_relation(..., cases=) takes a function*list"]
    )


def test_a_cell_test_without_its_stage_is_a_collection_error_saying_so(suite_dir, shared_cache):
    suite_dir.makepyfile(
        test_own_cells="""
def test_cells(iqa_cell):
    iqa_cell.check()
"""
    )
    result = run(suite_dir, shared_cache, "test_own_cells.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED and "plugin/cells.py" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*test_cells: a test using iqa_cell needs @pytest.mark.iqa_stage(1|2)"])
