"""A user's own tests: the ``iqa_model`` and ``iqa_evaluate`` fixtures, the example in
``examples/custom`` run as a user runs it (against the expert default and an API server), and
what such tests leave in the reports and the history."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_openai import ExpertResponder, constant
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy.ndimage import gaussian_filter
from suite_runs import child_env
from test_report_schema import make_cell, make_report, validate_history_line, validate_report

from iqa_eval.evaluation.adhoc import Asker, JudgementFailed
from iqa_eval.evaluation.config import RunConfig
from iqa_eval.evaluation.gates_init import profile_text
from iqa_eval.evaluation.suite import Suite, Unsupported
from iqa_eval.images import pixel_hash
from iqa_eval.report import tables
from iqa_eval.report.junit import judgement_text
from iqa_eval.report.merge import merge_reports
from iqa_eval.report.writer import assemble

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "custom"
EXAMPLE_TESTS = {
    "test_a_blurred_photo_scores_below_the_sharp_one": ["score", "score"],
    "test_the_sharp_photo_is_preferred_in_either_order": ["preference", "preference"],
    "test_the_sharp_photo_is_ranked_first_among_its_blurred_versions": ["ranking"],
    "test_heavier_noise_is_further_from_the_reference": ["score", "score"],
    "test_our_photos_are_judged_like_our_raters_judged_them": [],
}


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example without its images: its conftest makes them as on a fresh clone."""
    folder = tmp_path_factory.mktemp("example") / "custom"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("images", "__pycache__"))
    return folder


def run_example(
    folder: Path, out: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(folder), "-p", "no:cacheprovider", "-p", "no:randomly",
         "--iqa-data", f"products={folder}", "--iqa-report-dir", str(out / "reports"),
         "--iqa-cache", str(out / "cache"), *args],
        cwd=folder.parent, env=child_env(), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    path = out / "reports" / "iqa-report.json"
    return proc, json.loads(path.read_text()) if path.exists() else {}


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["test"].split("::")[1].split("[")[0]: t for t in report["tests"]}


def test_the_example_passes_on_the_expert_default_and_reports_every_judgement(example, tmp_path):
    proc, report = run_example(example, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout
    # The declared cell went out before the tests ran, in the run's one dispatch.
    assert "iqa-eval: 1 cells, 12 unique queries" in proc.stdout
    # The committed labels.csv is what the image script makes.
    assert (example / "labels.csv").read_text() == (EXAMPLE / "labels.csv").read_text()

    validate_report(report)
    tests = by_name(report)
    assert set(tests) == set(EXAMPLE_TESTS)
    for name, kinds in EXAMPLE_TESTS.items():
        test = tests[name]
        assert test["outcome"] == "passed" and test["test"].endswith("[expert]")
        assert [j["kind"] for j in test["judgements"]] == kinds
        assert all(j["failure"] is None and j["value"] is not None for j in test["judgements"])
    noise = tests["test_heavier_noise_is_further_from_the_reference"]["judgements"]
    assert {j["setting"] for j in noise} == {"fr"} and all(j["reference"] for j in noise)
    # Arrays made in the test were written once, named by their pixels, beside the cache.
    written = [Path(j["images"][0]["path"]) for j in noise]
    assert all(p.parent == tmp_path / "cache" / "adhoc" and p.exists() for p in written)

    (cell,) = report["cells"]
    evaluated = tests["test_our_photos_are_judged_like_our_raters_judged_them"]
    assert cell["test"] == evaluated["test"] and cell["id"] == evaluated["cells"][0]
    assert cell["id"] == f"{evaluated['test']}::expert/products/nr_structure/ss/standard/uniform"
    assert cell["outcome"] == "passed" and cell["n_items"] == 12  # the rocket rows are demonstrations
    assert cell["metrics"]["srcc"]["value"] > 0.5

    html = (tmp_path / "reports" / "iqa-report.html").read_text()
    assert "Your tests" in html and all(name in html for name in EXAMPLE_TESTS)
    line = json.loads((tmp_path / "reports" / "history.jsonl").read_text().splitlines()[-1])
    validate_history_line(line)
    assert {t["test"] for t in line["tests"]} == {t["test"] for t in report["tests"]}
    assert [c["test"] for c in line["cells"]] == [cell["test"]]

    # A second run asks nothing: every judgement and the cell's answers come from the cache.
    again, second = run_example(example, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(j["cached"] for t in second["tests"] for j in t["judgements"])
    assert second["run"]["usage"]["sent"] == 0


def test_the_example_passes_against_an_api_model_under_two_workers(example, tmp_path, fake_openai):
    server = fake_openai(responder=ExpertResponder(tmp_path / "model", "expert"))
    api = ("--iqa-model", "openai:panel", "--iqa-base-url", server.url)
    proc, report = run_example(example, tmp_path, *api, "-n", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout
    validate_report(report)
    assert all(t["test"].endswith("[openai:panel]") for t in report["tests"])
    # 7 judgements and the cell's 12 items, of which the two coffee photos' scores are the
    # same queries as their items' in the cell: 17 distinct. Two workers may ask one of them at
    # the same moment (only the cache is shared), never more often.
    assert len(server.asked) == 7 + 12 - 2
    assert max(server.asked.values()) <= 2
    assert sum(server.asked.values()) == report["run"]["usage"]["sent"]
    assert report["run"]["models"][0]["identity"]["key"]


def test_a_judgement_the_model_did_not_give_fails_its_test_with_the_reason(example, tmp_path, fake_openai):
    server = fake_openai(responder=constant("It is a nice photo of a coffee cup."))
    proc, report = run_example(
        example, tmp_path, "--iqa-model", "openai:m", "--iqa-base-url", server.url,
        "-k", "blurred_photo_scores",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "JudgementFailed: openai:m gave no score: " in proc.stdout
    assert "It is a nice photo" in proc.stdout
    (test,) = report["tests"]
    assert test["outcome"] == "failed" and "gave no score" in test["message"]
    assert test["judgements"][0]["failure"] and test["judgements"][0]["value"] is None


def test_an_unreachable_model_leaves_the_tests_unmeasured(example, tmp_path):
    proc, report = run_example(
        example, tmp_path, "--iqa-model", "openai:m", "--iqa-base-url", "http://127.0.0.1:9/v1",
        "-k", "blurred_photo_scores or judged_like_our_raters",
    )  # fmt: skip
    assert proc.returncode == 75, proc.stdout + proc.stderr
    assert {t["outcome"] for t in report["tests"]} == {"failed"}
    assert report["cells"][0]["outcome"] == "error"


OWN_TEST = """
import numpy as np
from iqa_eval.evaluation.gates import Gate

def test_scores(iqa_model):
    flat = np.full((128, 128, 3), 128, np.uint8)
    busy = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    assert iqa_model.ask_score(busy, reference=flat).score >= 0

def test_cell(iqa_evaluate):
    result = iqa_evaluate(setting="fr", attribute="color", protocol="ss", gate=Gate(threshold=1.0))
    assert result.outcome == "failed" and "srcc too low" in result.verdict
    result.check()

def test_unknown_dataset(iqa_evaluate):
    iqa_evaluate(dataset="nowhere", setting="nr", attribute="color")
"""


def test_each_model_of_the_run_is_under_test_in_turn(pytester, shared_cache):
    pytester.makepyfile(test_own=OWN_TEST)
    result = pytester.runpytest(
        "--iqa-model", "expert", "--iqa-model", "expert:psnr", f"--iqa-cache={shared_cache}",
        f"--iqa-report-dir={pytester.path / 'reports'}", "-k", "scores", "-p", "no:randomly", "-v",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_scores?expert? PASSED*", "*test_scores?expert:psnr? PASSED*"])


def test_a_question_the_model_cannot_take_skips_with_the_reason(pytester, shared_cache):
    pytester.makepyfile(
        test_own="""
import numpy as np
def test_nr(iqa_model):
    iqa_model.ask_score(np.zeros((64, 64, 3), np.uint8))
"""
    )
    result = pytester.runpytest("--iqa-model", "expert:psnr", f"--iqa-cache={shared_cache}", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*expert:psnr answers only FR queries*"])


def test_a_cell_of_ones_own_is_gated_by_the_gate_it_names(pytester, shared_cache):
    pytester.makepyfile(test_own=OWN_TEST)
    result = pytester.runpytest(
        f"--iqa-cache={shared_cache}",
        f"--iqa-report-dir={pytester.path / 'reports'}",
        "-k",
        "cell or unknown",
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*expert/builtin/fr_color/ss/standard/uniform failed: srcc too low*",
            "*iqa-eval error: unknown dataset 'nowhere'; this run has builtin*",
        ]
    )
    report = json.loads((pytester.path / "reports" / "iqa-report.json").read_text())
    (cell,) = report["cells"]
    assert cell["outcome"] == "failed" and cell["gate"]["threshold"] == 1.0


# -- the asker on its own -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    root = tmp_path_factory.mktemp("asker")
    run = Suite(RunConfig(root=root, models=("expert",), cache_dir=root / "cache", progress=False))
    yield run
    run.close()


@pytest.fixture
def asker(suite: Suite, tmp_path: Path) -> Asker:
    return Asker(suite, "expert", tmp_path / "adhoc")


def test_images_in_memory_become_one_file_per_pixel_content(asker, tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    first = asker.score(rgb)
    second = asker.score(Image.fromarray(rgb))
    assert first.images == second.images
    assert [p.name for p in (tmp_path / "adhoc").iterdir()] == [f"{pixel_hash(rgb)[:32]}.png"]
    grey = asker.score(rgb[:, :, 0])
    assert grey.images[0].sha256 == pixel_hash(np.repeat(rgb[:, :, :1], 3, axis=2))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8, 3), np.float32), "must be uint8 (0–255), not float32"),
        (np.zeros((8, 8, 4), np.uint8), "H×W×3 (RGB) or H×W (grey), not of shape (8, 8, 4)"),
        (np.zeros((0, 8, 3), np.uint8), "holds no pixels"),
        (Image.new("RGBA", (8, 8)), "a PIL image of mode 'RGBA'"),
    ],
)
def test_an_image_a_model_could_not_be_shown_is_a_clear_error(asker, image, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        asker.score(image)


def test_bad_questions_are_clear_errors(asker, tmp_path):
    with pytest.raises(TypeError, match="not list"):
        asker.score([[0, 0, 0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ranks exactly 4 images, .* got 3"):
        asker.ranking([np.zeros((8, 8, 3), np.uint8)] * 3)
    with pytest.raises(ValueError, match="got one image"):
        asker.ranking(tmp_path / "one.png")  # type: ignore[arg-type]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), sigma=st.floats(0.5, 4.0))
def test_a_preference_names_the_image_and_mirrors_when_the_order_swaps(suite, seed, sigma):
    asker = Asker(suite, "expert", Path(suite.config.root) / "adhoc")
    busy = np.random.default_rng(seed).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    soft = gaussian_filter(busy, sigma=(sigma, sigma, 0))
    forward, backward = asker.preference(busy, soft), asker.preference(soft, busy)
    assert forward.preference == {1: "a", 0: "b", 2: "same"}[int(forward.values[0])]
    # The panel measures each image on its own: the same two images in the other order.
    assert backward.preference == {"a": "b", "b": "a", "same": "same"}[forward.preference]
    with pytest.raises(TypeError, match="a preference judgement has no score"):
        _ = forward.score


def test_a_failed_answer_names_its_reason_when_read(tmp_path, shared_cache):
    config = RunConfig(root=tmp_path, models=("mute",), cache_dir=tmp_path / "cache", progress=False)
    from iqa_eval.models.base import Capabilities, ModelClient
    from iqa_eval.types import Answer

    class Prose(ModelClient):
        """A model that answers every query with prose and no score."""

        spec = "mute"
        fingerprint = "mute@1"
        capabilities = Capabilities()

        async def answer(self, query):  # type: ignore[no-untyped-def]
            return Answer("What a lovely picture.")

    suite = Suite(config, lambda spec, store: Prose())
    try:
        judgement = Asker(suite, "mute", tmp_path / "adhoc").score(np.zeros((16, 16, 3), np.uint8))
    finally:
        suite.close()
    assert not judgement.ok and judgement.failure
    with pytest.raises(JudgementFailed, match=r"mute gave no score: .*What a lovely picture"):
        _ = judgement.score


def test_an_nr_only_model_asked_with_a_reference_is_unsupported(tmp_path):
    config = RunConfig(root=tmp_path, models=("expert:niqe",), cache_dir=tmp_path / "cache", progress=False)
    suite = Suite(config)
    try:
        image = np.zeros((16, 16, 3), np.uint8)
        with pytest.raises(Unsupported, match="answers only NR"):
            Asker(suite, "expert:niqe", tmp_path).score(image, reference=image)
    finally:
        suite.close()


# -- what the report tools make of a user's tests ------------------------------------------------

TEST_ID = "tests/test_mine.py::test_cell[m]"


def custom_report() -> dict[str, Any]:
    own = {**make_cell(outcome="failed"), "test": TEST_ID}
    own["id"] = f"{TEST_ID}::{own['id']}"
    judgement = {
        "kind": "preference", "model": "m", "setting": "nr", "images": [], "reference": None, "query": "q",
        "values": [0.0], "value": "b", "failure": None, "detail": "", "answer": "Score: 0", "cached": False,
    }  # fmt: skip
    test = {
        "test": TEST_ID,
        "outcome": "failed",
        "message": "",
        "judgements": [judgement],
        "cells": [own["id"]],
    }
    return assemble([make_cell(), own], make_report([])["run"], [test])


def test_tables_and_gates_init_leave_a_users_cells_to_the_user():
    report = custom_report()
    validate_report(report)
    assert [c["id"] for c in tables.collect([("r.json", report)])] == [
        "m/builtin/fr_color/ss/standard/uniform"
    ]
    profile = profile_text(report, "r.json")
    assert f"#   {TEST_ID}::" in profile and "gated by the test itself" in profile
    assert profile.count("[[gate]]") == 1


def test_merging_shards_keeps_every_users_test_once():
    report = custom_report()
    other = {**report, "cells": [report["cells"][0]], "tests": []}
    merged = merge_reports([("a.json", report), ("b.json", other)])
    validate_report(merged)
    assert [t["test"] for t in merged["tests"]] == [TEST_ID]


def test_a_judgement_is_one_scalar_junit_property():
    assert judgement_text({"kind": "score", "value": 72.5}) == "score 72.5"
    assert judgement_text({"kind": "preference", "value": "a"}) == "preference a"
    assert judgement_text({"kind": "ranking", "value": [0, 3, 1, 2]}) == "ranking 0,3,1,2"
    assert (
        judgement_text({"kind": "score", "value": None, "failure": "parse_error"})
        == "score failed: parse_error"
    )


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        (
            'dataset="nowhere", setting="nr", attribute="color"',
            "unknown dataset 'nowhere'; this run has builtin",
        ),
        ('setting="nr"', "(...) needs attribute; it takes attribute, dataset, protocol"),
        ('setting="nr", attribute="color", model="x"', "(...) has no model"),
        ('setting="nr", attribute="color", protocol="ms", strategy="think"', "ms takes the strategies"),
        (
            'setting="nr", attribute="color", subset="hard"',
            "no subset 'hard'; builtin has uniform and finegrained",
        ),
    ],
)
def test_a_declared_cell_that_cannot_be_evaluated_is_a_usage_error(pytester, shared_cache, mark, message):
    pytester.makepyfile(
        test_own=f"""
import pytest
@pytest.mark.iqa_evaluate({mark})
def test_cell(iqa_evaluate):
    pass
"""
    )
    result = pytester.runpytest(f"--iqa-cache={shared_cache}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*test_own.py::test_cell?expert?: @pytest.mark.iqa_evaluate*{message}*"])
