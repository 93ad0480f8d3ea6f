"""The main job itself: the whole suite on the embedded default, as the README's first command runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_default_suite_runs_end_to_end_and_reports_every_cell(shared_cache, tmp_path):
    out = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         f"--iqa-cache={shared_cache}", f"--iqa-report-dir={out}"],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "iqa-report.json").read_text())
    cells = report["cells"]
    stage1 = [c for c in cells if c["stage"] == 1 and c["subset"] == "uniform"]
    stage2 = [c for c in cells if c["stage"] == 2]
    metamorphic = [c for c in cells if c["subset"] == "metamorphic"]
    assert len(stage1) == 8 * 9 and len(stage2) == 8 and len(metamorphic) == 8 * 3
    # The expert is a function of the pixels, so only exact ties (NR measures blind to a hue
    # change, broken by position in MS) can keep a relation from holding.
    assert all(c["metrics"]["invariance"]["value"] >= 0.8 for c in metamorphic)
    assert all(c["metrics"]["invariance"]["value"] == 1.0 for c in metamorphic if c["setting"] == "fr")
    systems = Counter((c["setting"], c["attribute"]) for c in stage1)
    assert set(systems.values()) == {9}
    for cell in cells:
        assert cell["coverage"] == 1.0 and cell["n_failed"] == {}
        assert cell["outcome"] == "passed" or (cell["outcome"] == "failed" and cell["gate"]["known_gap"])
    for cell in stage2:
        assert cell["subset"] == "finegrained" and cell["selected_by"]["ranking"]
    ds = next(c for c in stage1 if c["protocol"] == "ds")
    assert {"srcc", "plcc", "accuracy", "consistency", "position_balance"} <= set(ds["metrics"])
    ms = next(c for c in stage1 if c["protocol"] == "ms")
    assert {"srcc", "plcc", "krcc"} <= set(ms["metrics"])
    assert (out / "iqa-report.html").read_text().count("<h2") == len(cells)
