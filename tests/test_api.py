"""``iqa_eval.evaluate()``: one cell from Python, gated as in a run, and nothing left running."""

from __future__ import annotations

import json

import pytest

from iqa_eval import evaluate
from iqa_eval.evaluation.gates import Gate


def test_a_cell_comes_back_gated_and_leaves_nothing_behind(shared_cache):
    result = evaluate(model="expert:psnr", setting="fr", attribute="structure", cache_dir=shared_cache)
    assert result.outcome == "passed" and "srcc lower bound" in result.verdict
    result.check()
    assert result.metrics["srcc"].value > 0.9


def test_a_first_uncached_call_prints_no_warning(tmp_path, builtin):
    """In a process of its own: the warning came when the interpreter collected the loop the
    call had left open, after the call had returned."""
    code = (
        "import gc, sys\n"
        "from iqa_eval import evaluate\n"
        f"r = evaluate(model='expert:psnr', setting='fr', attribute='color', cache_dir={str(tmp_path)!r})\n"
        "gc.collect()\n"
        "print(r.outcome)\n"
    )
    import subprocess
    import sys

    from suite_runs import fresh_cache

    fresh_cache(builtin, tmp_path)  # the built-in set, not the answers
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "passed", done.stderr
    assert "Warning" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def test_a_missed_gate_is_a_failed_outcome_that_check_asserts(shared_cache, tmp_path):
    strict = Gate(threshold=1.5, bound="point")
    result = evaluate(
        model="expert:psnr", setting="fr", attribute="structure", cache_dir=shared_cache, gate=strict
    )
    assert result.outcome == "failed" and "srcc too low" in result.verdict
    with pytest.raises(AssertionError, match="fr_structure/ss/standard/uniform failed: srcc too low"):
        result.check()
    profile = tmp_path / "gates.toml"
    profile.write_text('[[gate]]\nmodels = "expert:*"\nselect = "fr"\nthreshold = 1.5\nbound = "point"\n')
    by_profile = evaluate(
        model="expert:psnr", setting="fr", attribute="structure", cache_dir=shared_cache, gate=profile
    )
    assert by_profile.outcome == "failed" and "must exceed 1.5" in by_profile.verdict


def test_a_cell_that_could_not_be_measured_is_an_error(shared_cache, tmp_path):
    replay = tmp_path / "other.jsonl"
    replay.write_text(
        json.dumps({"model": "openai:m", "key": "not-a-query-of-this-cell", "text": "Score: 1"}) + "\n"
    )
    result = evaluate(model=f"replay:{replay}", setting="fr", attribute="structure", cache_dir=shared_cache)
    assert result.outcome == "error" and "could not be measured" in result.verdict
    with pytest.raises(AssertionError, match="error: could not be measured"):
        result.check()


def test_a_cell_nobody_gated_says_so():
    from iqa_eval.types import CellResult, CellSpec

    bare = CellResult(CellSpec("m", "d", "fr", "color", "ss", "standard", "uniform"), 0, 0, {}, {}, "srcc")
    with pytest.raises(ValueError, match="no gate has judged"):
        bare.check()
