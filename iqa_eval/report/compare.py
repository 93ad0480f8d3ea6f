"""Cell-by-cell differences between two reports, for the cells both measured.

Each shared cell gets the same paired bootstrap as the baseline gate, so a reader sees at once
which deltas are beyond the noise of the items and which are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from iqa_eval.evaluation.baseline import compare_cells, index_cells


def compare_reports(
    before: Mapping[str, Any], after: Mapping[str, Any], *, tolerance: float, seed: int = 0
) -> tuple[pd.DataFrame, list[str]]:
    """A table of the shared cells (largest drop first) and a summary of what was not shared."""
    old, new = index_cells(before["cells"]), index_cells(after["cells"])
    rows = []
    for key in sorted(set(old) & set(new)):
        a, b = old[key], new[key]
        metric = b.get("primary_metric") or ""
        va = ((a["metrics"].get(metric) or {}).get("value")) if metric else None
        vb = ((b["metrics"].get(metric) or {}).get("value")) if metric else None
        paired = compare_cells(b, a, tolerance=tolerance, seed=seed)
        lo, hi = paired.ci
        rows.append(
            {
                "cell": b["id"] if a["id"] == b["id"] else f"{b['id']} (was {a['protocol']}/{a['strategy']})",
                "metric": metric,
                "A": va,
                "B": vb,
                "delta": None if va is None or vb is None else vb - va,
                "paired 95% CI": "" if lo is None or hi is None else f"[{lo:+.3f}, {hi:+.3f}]",
                "p": paired.p_value,
                "regressed": paired.regressed,
                "outcome": f"{a['outcome']} -> {b['outcome']}"
                if a["outcome"] != b["outcome"]
                else b["outcome"],
            }
        )
    table = pd.DataFrame(
        rows, columns=["cell", "metric", "A", "B", "delta", "paired 95% CI", "p", "regressed", "outcome"]
    )
    table = table.sort_values("delta", na_position="last", kind="stable").reset_index(drop=True)
    notes = [f"{len(rows)} shared cells"]
    if set(old) - set(new):
        notes.append(f"{len(set(old) - set(new))} only in A")
    if set(new) - set(old):
        notes.append(f"{len(set(new) - set(old))} only in B")
    return table, notes
