"""examples/ci: the sharded workflow's own scripts, run here against the fake server.

The GitHub Actions workflow calls examples/ci/run-shard.sh in each matrix job and
examples/ci/merge.sh in the final one; running the scripts locally is running what CI runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fake_openai import constant
from suite_runs import child_env, fresh_cache

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "ci"
SELECTION = ("-m", "ss and standard and (fr_structure or nr_structure or fr_color) and not metamorphic")


def script(name: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["bash", str(EXAMPLES / name), *(SELECTION if name == "run-shard.sh" else ())],
        cwd=cwd,
        env=child_env(PATH=path, **env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_workflow_calls_the_scripts_this_test_runs():
    workflow = (EXAMPLES / "iqa-gate.yml").read_text()
    assert "bash examples/ci/run-shard.sh" in workflow and "bash examples/ci/merge.sh" in workflow
    assert "secrets.OPENAI_API_KEY" in workflow and "actions/upload-artifact" in workflow
    assert "openai:mymodel@${{ github.sha }}" in workflow  # a pinned revision per deployment


def test_shards_then_merge_give_one_report_and_summary_of_the_whole_run(builtin, fake_openai, tmp_path):
    repo = tmp_path / "model-repo"
    repo.mkdir()
    fresh_cache(builtin, repo / ".iqa_cache")
    server = fake_openai(responder=constant("Score: 50"))
    summary = tmp_path / "summary.md"
    env = {"IQA_MODEL": "openai:ci", "IQA_BASE_URL": server.url, "GITHUB_STEP_SUMMARY": str(summary)}
    for shard in ("1/2", "2/2"):
        done = script("run-shard.sh", repo, SHARD=shard, **env)
        # A constant score ranks nothing: its cells fail their gates (1), or the shard holds none (0).
        assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    final = tmp_path / "final-summary.md"
    merged = script("merge.sh", repo, **{**env, "GITHUB_STEP_SUMMARY": str(final)})
    assert merged.returncode == 0, merged.stdout + merged.stderr
    report = json.loads((repo / "reports" / "merged" / "iqa-report.json").read_text())
    ids = sorted(cell["id"] for cell in report["cells"])
    assert ids == sorted(
        f"openai:ci/builtin/{cell}/ss/standard/uniform"
        for cell in ("fr_structure", "nr_structure", "fr_color")
    )
    assert server.requests == 3 * 80  # every query once, over both shards
    assert (repo / "reports" / "merged" / "iqa-report.html").is_file()
    assert "shard 1/2" in summary.read_text() or "shard 2/2" in summary.read_text()  # each job's own
    text = final.read_text()  # the final job's summary covers the whole run
    assert "merged from 2 reports" in text and "3 cells: 3 failed" in text
    for cell_id in ids:
        assert f"`{cell_id}` **failed**" in text


def test_merge_without_shard_reports_says_so(tmp_path):
    done = script("merge.sh", tmp_path)
    assert done.returncode == 2 and "no reports/shard-*/iqa-report.json" in done.stderr
