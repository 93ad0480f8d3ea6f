"""The default suite end to end: cold, warm, collection, peak memory, and -n 2 against -n 0.

Run: python bench/bench_suite.py
Each measurement is a fresh `python -m pytest` process in the repository root with its own
cache and report directories (a cold run also generates the built-in dataset). Peak RSS is the
largest resident set of any child process, from getrusage. The cold runs, -n 0 and -n 2, are
each the best of two (every time in fresh directories), since a 2-core machine's other load
moves single runs by several seconds; their reports' cells are compared. "New prompts" is a run
whose answers are all new (the response cache removed) while the experts' measurements are
kept, as after a change to the prompt templates.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pytest(*args: str) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return time.perf_counter() - start, proc.returncode


def report_cells(directory: Path) -> list[dict[str, object]]:
    """The cells without what differs by construction: the image paths point into each run's
    own cache directory, and example answers are a sample."""
    cells = json.loads((directory / "iqa-report.json").read_text())["cells"]
    for cell in cells:
        cell.pop("examples", None)
        for prediction in cell.get("predictions", []):
            prediction.pop("image", None)
    return cells


def best_cold(base: Path, name: str, *args: str) -> tuple[float, int]:
    """The faster of two cold runs, each in fresh directories; the last one's are kept."""
    runs = []
    cache, reports = base / f"c{name}", base / f"r{name}"
    for _ in range(2):
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(reports, ignore_errors=True)
        runs.append(pytest(f"--iqa-cache={cache}", f"--iqa-report-dir={reports}", *args))
    return min(runs)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        serial = [f"--iqa-cache={base / 'c0'}", f"--iqa-report-dir={base / 'r0'}", "-p", "no:xdist"]
        collect, _ = pytest("--collect-only", f"--iqa-cache={base / 'collect'}")
        cold, rc_cold = best_cold(base, "0", "-p", "no:xdist")
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        warm, rc_warm = pytest(*serial)
        for answers in (base / "c0").glob("responses.sqlite3*"):
            answers.unlink()
        new_prompts, rc_new = pytest(*serial)
        cold_n2, rc_n2 = best_cold(base, "2", "-n", "2")
        same = report_cells(base / "r0") == report_cells(base / "r2")
    print(f"collection           {collect:7.1f} s")
    print(f"cold, -n 0           {cold:7.1f} s   (exit {rc_cold})")
    print(f"warm cache, -n 0     {warm:7.1f} s   (exit {rc_warm})   cold/warm = {cold / warm:.1f}x")
    print(
        f"new prompts, -n 0    {new_prompts:7.1f} s   (exit {rc_new})   "
        f"cold/new prompts = {cold / new_prompts:.1f}x"
    )
    print(f"cold, -n 2           {cold_n2:7.1f} s   (exit {rc_n2})   -n 0 / -n 2 = {cold / cold_n2:.2f}x")
    print(f"peak RSS             {rss_mb:7.0f} MB")
    print(f"-n 2 report cells equal -n 0: {same}")


if __name__ == "__main__":
    main()
