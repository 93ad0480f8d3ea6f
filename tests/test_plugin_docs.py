"""What the plugin offers is documented where users look: ``pytest --fixtures`` and the README."""

from __future__ import annotations

from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_fixture_of_the_plugin_has_a_docstring(pytester):
    output = pytester.runpytest("--fixtures").stdout.str()
    sections = output.split("fixtures defined from ")
    ours = [s for s in sections if s.startswith("iqa_eval.plugin")]
    assert ours, output
    names = [line.split(" -- ")[0] for s in ours for line in s.splitlines() if " -- " in line]
    assert {"iqa_cell", "iqa_metamorphic", "iqa_model", "iqa_evaluate"} <= set(names)
    assert all("no docstring available" not in s for s in ours), ours


def test_the_markers_a_suite_test_needs_are_in_the_readme(pytester):
    lines = pytester.runpytest("--markers").stdout.lines
    required = {line.split(":")[0].removeprefix("@pytest.mark.").split("(")[0] for line in lines}
    for marker in ("iqa_stage", "iqa_relation"):
        assert marker in required
        assert f"@pytest.mark.{marker}(" in README, marker


def test_the_readme_example_of_the_suite_fixtures_runs(suite_dir, shared_cache):
    """The README's block with ``iqa_cell`` and ``iqa_metamorphic``, run as a user's test file
    beside the suite: both fixtures and both markers work as written there."""
    blocks = README.split("```python\n")[1:]
    (example,) = [b.split("\n```")[0] for b in blocks if '@pytest.mark.iqa_relation("ds", cases=' in b]
    suite_dir.makepyfile(test_readme_example=example)
    result = suite_dir.runpytest(
        f"--iqa-cache={shared_cache}", "-p", "no:randomly", "test_readme_example.py", "-m", "fr_structure"
    )
    # Nine stage-1 systems of FR structure and the DS relation, all passing for the expert panel.
    result.assert_outcomes(passed=10)
