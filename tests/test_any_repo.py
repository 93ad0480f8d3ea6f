"""The suite run from another repository: ``pytest --pyargs iqa_eval.suite`` and ``iqa-eval run``
from a folder of the user's, with their settings and hooks, their reports and cache, and their
commit in the run's record."""

from __future__ import annotations

import json
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from suite_runs import child_env, fresh_cache

from iqa_eval.evaluation.config import OPTIONS, PACKAGED_GATES, build

REPO = Path(__file__).resolve().parents[1]
ONE_CELL = ("-m", "fr_structure and ss and standard and not metamorphic", "-p", "no:cacheprovider")

USER_CONFTEST = '''
from iqa_eval.models.base import ModelOptions
from iqa_eval.models.openai_api import OpenAIModel


def pytest_iqa_make_model(spec, store):
    """The team's own spec: team:NAME is their deployment, behind their gateway."""
    if spec.startswith("team:"):
        return OpenAIModel("openai:" + spec[5:], store, ModelOptions(base_urls=({url!r},)))
    return None
'''


def _cell_ids(output: str) -> set[str]:
    return set(re.findall(r"\[([^\]]+/[^\]]+)\]$", output, re.MULTILINE))


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=folder, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


def test_pyargs_from_another_folder_collects_the_cells_of_a_run_in_the_repository(tmp_path):
    """The shipped suite is the repository's suite: the same cells, not a copy that drifts."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ("--collect-only", "-q", "-p", "no:cacheprovider", f"--iqa-cache={tmp_path / 'cache'}")
    here = subprocess.run(
        [sys.executable, "-m", "pytest", *args], cwd=REPO, env=child_env(), capture_output=True, text=True
    )
    there = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "iqa_eval.suite", *args],
        cwd=elsewhere, env=child_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert here.returncode == there.returncode == 0, here.stdout + here.stderr + there.stdout + there.stderr
    cells = _cell_ids(here.stdout)
    assert (
        len(cells) > 50 and any("/best/best/" in c for c in cells) and any("metamorphic" in c for c in cells)
    )
    assert _cell_ids(there.stdout) == cells


def test_a_project_without_a_gate_profile_gets_the_one_the_package_ships(tmp_path):
    defaults = {name: default for name, (_, default, _) in OPTIONS.items()}
    assert build(tmp_path, defaults).gates == PACKAGED_GATES
    assert PACKAGED_GATES.read_text() == (REPO / "fixtures/gates/default.toml").read_text()
    (tmp_path / "fixtures/gates").mkdir(parents=True)
    (tmp_path / "fixtures/gates/default.toml").write_text("[defaults]\n")
    assert build(tmp_path, defaults).gates == Path("fixtures/gates/default.toml")


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A venv outside the repository holding iqa-eval from a wheel built from this checkout.

    Offline and quick: the wheel is built without build isolation and installed without its
    dependencies, which the venv sees in this environment's site-packages (a .pth line: that
    directory's own .pth files, such as the editable install's finder, are not run from there).
    """
    source = tmp_path / "source"
    shutil.copytree(
        REPO, source, symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", "tests", "bench", "reports", "build", "*.egg-info",
                                      ".iqa_cache", ".hypothesis", "__pycache__", ".*_cache"),
    )  # fmt: skip
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, source],
                   check=True, capture_output=True)  # fmt: skip
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", python, "install", "--no-deps", "--no-index", *wheels.glob("*.whl")],
                   check=True, capture_output=True)  # fmt: skip
    own = subprocess.run(
        [python, "-c", "import site; print(site.getsitepackages()[0])"],
        check=True,
        capture_output=True,
        text=True,
    )
    Path(own.stdout.strip(), "project-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv


def test_the_installed_wheel_runs_the_suite_from_an_empty_folder(
    installed, tmp_path, builtin, fake_openai, accurate_responder
):
    server = fake_openai(responder=accurate_responder)
    project = tmp_path / "model-repo"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.iqa_eval]\nmodel = ["team:mymodel"]\nreport_dir = "out"\n')
    (project / "conftest.py").write_text(USER_CONFTEST.format(url=server.url))
    _git(project, "init", "-q")
    _git(project, "add", ".")
    _git(project, "commit", "-q", "-m", "model v1")
    commit = _git(project, "rev-parse", "HEAD")
    fresh_cache(builtin, project / ".iqa_cache")
    env = child_env()
    env.pop("PYTHONPATH", None)
    python = installed / "bin" / "python"

    where = subprocess.run([python, "-c", "import iqa_eval; print(iqa_eval.__file__)"],
                           cwd=project, env=env, capture_output=True, text=True, check=True)  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout

    by_pytest = subprocess.run([python, "-m", "pytest", "--pyargs", "iqa_eval.suite", *ONE_CELL],
                               cwd=project, env=env, capture_output=True, text=True)  # fmt: skip
    assert by_pytest.returncode == 0, by_pytest.stdout + by_pytest.stderr
    assert "1 passed" in by_pytest.stdout
    report = json.loads((project / "out" / "iqa-report.json").read_text())
    assert [c["model"] for c in report["cells"]] == ["team:mymodel"]  # the table and the hook applied
    run = report["run"]
    assert (run["git_commit"], run["git_dirty"], run["suite_version"]) == (commit, False, "0.1.0")
    assert Path(run["gates"]).is_relative_to(installed)  # no profile of its own: the shipped one
    assert (project / "out" / "history.jsonl").is_file()
    assert (project / ".iqa_cache" / "responses.sqlite3").is_file()
    asked = server.requests

    (project / "conftest.py").write_text((project / "conftest.py").read_text() + "\n# edited\n")
    by_command = subprocess.run([installed / "bin" / "iqa-eval", "run", *ONE_CELL],
                                cwd=project, env=env, capture_output=True, text=True)  # fmt: skip
    assert by_command.returncode == 0, by_command.stdout + by_command.stderr
    assert "1 passed" in by_command.stdout
    assert server.requests == asked  # answered from the cache in this folder
    history = (project / "out" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2 and json.loads(history[-1])["run"]["git_dirty"] is True
