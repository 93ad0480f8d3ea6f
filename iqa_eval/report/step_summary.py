"""The run as Markdown for a CI job's summary page (GitHub Actions' ``GITHUB_STEP_SUMMARY``).

What a reviewer of a blocked deployment needs on the job's page: which run this was, how many
cells ended how, the stage-1 grid (attribute × prompting system) of the primary metric with
pass/fail marks, and every failed, error or regressed cell with its reason. The full record
stays in the JSON and HTML reports.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iqa_eval.report.html import state
from iqa_eval.report.reasons import failure_reasons
from iqa_eval.report.summary import totals

ENV = "GITHUB_STEP_SUMMARY"
MARKS = {"passed": "✅", "failed": "❌", "known gap": "⚠️ gap", "error": "💥", "skipped": "–"}


def _md(text: str) -> str:
    """Text shown as text: no HTML, no table breaks, no Markdown emphasis or links."""
    escaped = html.escape(text, quote=False).replace("\n", " ")
    for char in "\\`*_[]|#":
        escaped = escaped.replace(char, "\\" + char)
    return escaped


def _code(text: str) -> str:
    """Text in a code span (which shows backslashes as they are, so it is not escaped)."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def _regressed(cell: Mapping[str, Any]) -> bool:
    return bool((cell.get("baseline") or {}).get("regressed"))


def _mark(cell: Mapping[str, Any]) -> str:
    name = cell.get("primary_metric")
    value = ((cell.get("metrics") or {}).get(name) or {}).get("value")
    number = "n/a" if value is None else f"{value:.3f}"
    return f"{number} {MARKS.get(state(cell)[0], '?')}" + (" 📉" if _regressed(cell) else "")


def _run_line(run: Mapping[str, Any]) -> str:
    commit = str(run.get("git_commit") or "no commit")[:12] + (" (dirty)" if run.get("git_dirty") else "")
    parts = [
        f"iqa-eval {run.get('suite_version', '?')}",
        "models " + ", ".join(_code(str(m)) for m in run.get("model_specs") or []),
        f"commit {commit}",
        f"seed {run.get('seed')}",
    ]
    if run.get("shard"):
        parts.append(f"shard {run['shard']}")
    if run.get("merged_from"):
        parts.append(f"merged from {len(run['merged_from'])} reports")
    if run.get("baseline"):
        parts.append("baseline " + _code(Path(str(run["baseline"])).name))
    if run.get("partial"):
        parts.append("**cut short**")
    return " · ".join(parts)


def _grids(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """One table per model and dataset: a row per setting_attribute, a column per stage-1
    prompting system, and the stage-2 cell (the model's best system) last."""
    lines: list[str] = []
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for cell in cells:
        if cell["stage"] == 2 or cell.get("subset") != "metamorphic":
            groups.setdefault((cell["model"], cell["dataset"]), []).append(cell)
    for (model, dataset), group in sorted(groups.items()):
        metric = next((c["primary_metric"] for c in group if c.get("primary_metric")), "metric")
        columns = sorted({f"{c['protocol']}/{c['strategy']}" for c in group if c["stage"] == 1})
        if any(c["stage"] == 2 for c in group):
            columns.append("stage 2")
        table: dict[str, dict[str, str]] = {}
        for cell in group:
            column = "stage 2" if cell["stage"] == 2 else f"{cell['protocol']}/{cell['strategy']}"
            table.setdefault(f"{cell['setting']}_{cell['attribute']}", {})[column] = _mark(cell)
        lines += ["", f"**{_md(model)} · {_md(dataset)}** ({_md(metric)})", ""]
        lines.append("| | " + " | ".join(columns) + " |")
        lines.append("|---|" + "---|" * len(columns))
        for row in sorted(table):
            lines.append(f"| {row} | " + " | ".join(table[row].get(c, "") for c in columns) + " |")
    return lines


def _problems(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for cell in cells:
        label = state(cell)[0]
        if label not in ("failed", "error") and not _regressed(cell):
            continue
        line = f"- {_code(str(cell['id']))} **{label}**" + (" (regressed)" if _regressed(cell) else "")
        line += f": {_md(str(cell.get('message') or ''))}"
        why = failure_reasons(cell)
        if why:
            line += f"<br>{_md(why)}"
        lines.append(line)
    return lines


def step_summary(report: Mapping[str, Any]) -> str:
    """The report as the Markdown of a job summary."""
    cells = report["cells"]
    lines = ["## iqa-eval", "", _run_line(report["run"]), "", totals(cells)]
    lines += _grids(cells)
    problems = _problems(cells)
    if problems:
        lines += ["", "### Failed, error and regressed cells", "", *problems]
    return "\n".join(lines) + "\n"


def append_step_summary(report: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> Path | None:
    """Append the summary to the file ``GITHUB_STEP_SUMMARY`` names (the jobs' steps share it),
    and return its path; None when the variable is unset or empty."""
    target = environ.get(ENV)
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as out:
        out.write(step_summary(report))
    return path
