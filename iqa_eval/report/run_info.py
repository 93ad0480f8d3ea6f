"""What a reader needs to reproduce a run: versions, commit, seed; never a secret.

The commit is the one of the project the run was started in (pytest's rootdir): run from a model
team's repository, it names their version, and the suite's own version is recorded apart
(``suite_version``), so ``trend`` tells the runs of one model's versions apart.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path

PACKAGES = (
    "iqa-eval",
    "numpy",
    "scipy",
    "pillow",
    "scikit-image",
    "pandas",
    "openai",
    "transformers",
    "torch",
    "pytest",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _git(root: Path, *args: str) -> str | None:
    """Git's output in ``root``, or None outside a repository or without git."""
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit(root: Path) -> str | None:
    out = _git(root, "rev-parse", "HEAD")
    return out.strip() or None if out is not None else None


def git_dirty(root: Path) -> bool | None:
    """Whether tracked files differ from the commit (the run measured something uncommitted);
    None outside a repository."""
    out = _git(root, "status", "--porcelain", "--untracked-files=no")
    return None if out is None else bool(out.strip())


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def platform_info() -> dict[str, str]:
    return {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()}
