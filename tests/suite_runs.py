"""Running the suite as a user does, for the tests that interrupt a run, kill it, or read
everything it wrote: a cache directory of its own, a child process, and output checks."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iqa_eval.datasets.builtin import BuiltinDataset

SYSTEMS = ("test_protocols/test_systems.py", "-p", "no:randomly")
"""The stage-1 systems only, so tests others add to the suite do not change the counts."""

_TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)"  # Python's own
    r"|^\S+\.py:\d+: in \S"  # a frame of pytest's long report
    r"|^E\s+[\w.]+(?:Error|Exception)\b",  # the exception line of pytest's report
    re.MULTILINE,
)


def fresh_cache(builtin: BuiltinDataset, directory: Path) -> Path:
    """A cache directory holding only the built-in dataset (copied: generating it takes seconds),
    so a run's answers can be counted, and its database checked after a kill, on their own."""
    shutil.copytree(builtin.root, directory / builtin.root.relative_to(builtin.root.parents[1]))
    return directory


def answered(cache: Path) -> int:
    """Rows in a cache's database, read as another process would while a run writes it."""
    path = cache / "responses.sqlite3"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    except sqlite3.OperationalError:  # the run has not created the table yet
        return 0
    finally:
        db.close()


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child run: none of this run's pytest, xdist or OpenAI settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "OPENAI_"))}
    return {**env, **extra}


def start_suite(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *SYSTEMS, *args],
        cwd=cwd,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a signal for the child never reaches this process
    )


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Poll until ``condition`` holds, failing (not hanging) if the child ends first or never
    gets there."""
    deadline = time.monotonic() + 120
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            stop(proc)
            raise AssertionError(f"the run never reached {what}")
        time.sleep(0.01)


def finish(proc: subprocess.Popen[str], sig: int | None = None) -> tuple[str, str]:
    """Send ``sig`` (if any), then collect the child's output; a child that hangs is killed."""
    if sig is not None:
        proc.send_signal(sig)
    try:
        return proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def assert_no_traceback(output: str) -> None:
    match = _TRACEBACK.search(output)
    assert match is None, f"a traceback reached the user: {match.group(0)!r} in\n{output}"


def report(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "reports" / "iqa-report.json").read_text(encoding="utf-8"))
    return data
