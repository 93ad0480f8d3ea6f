"""The study's two tables from the cells of one or more reports, side by side for every model.

Stage 1: a row per model and prompting system, a column per dataset, setting and attribute,
SRCC (and PLCC on request) with its interval; each model's best system (the one stage 2 used)
is marked. Stage 2: a row per model with the system it was judged with, a column per difficult
subset. A number that does not mean what it seems is marked, never dropped: coverage under the
gate's minimum, or invented answers (the study's random fill, paper mode only). A cell of a
dataset that an ``--iqa-study`` run lacked reads ``missing``, with the command that adds the
dataset under the table, so a study that shrank shows where. Tables from one
run with several models equal the tables of one run per model: cells are keyed by their id,
and the same cell with other numbers in two reports is an error naming both.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iqa_eval.types import ATTRIBUTES, PROTOCOLS, SETTINGS, STRATEGIES

FORMATS = ("md", "csv", "latex")
LOW_COVERAGE = "†"
INVENTED = "‡"
BEST = "*"
MISSING = "missing"
LEGEND = (
    f"Marks: {BEST} the model's best system (chosen by mean stage-1 SRCC, used in stage 2); "
    f"{LOW_COVERAGE} coverage under the gate's minimum; {INVENTED} includes invented (random-fill) answers; "
    "— not run"
)


class TablesError(ValueError):
    """Reports that cannot be tabled together; the message names the files."""


@dataclass(frozen=True)
class Column:
    dataset: str
    setting: str
    attribute: str
    subset: str

    @property
    def title(self) -> str:
        return f"{self.dataset} {self.setting.upper()} {self.attribute}"


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]
    """(row label, one formatted value per column)."""
    missing: tuple[str, ...] = ()
    """One line per dataset the run lacked: its name and what adds it."""


@dataclass(frozen=True)
class Missing:
    """Cells of datasets an ``--iqa-study`` run lacked (skipped, by key) and what adds each dataset."""

    cells: frozenset[str] = frozenset()
    add: tuple[tuple[str, str], ...] = ()

    def lines(self, cells: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
        shown = {c["dataset"] for c in cells if _key(c) in self.cells}
        return tuple(f"{MISSING}: {name}: {add}" for name, add in self.add if name in shown)


def missing_cells(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> Missing:
    """The skipped cells of each report whose dataset that report's study run lacked."""
    keys: set[str] = set()
    add: dict[str, str] = {}
    for _, report in reports:
        lacked = {m["dataset"]: m["add"] for m in (report["run"].get("study") or {}).get("missing", [])}
        add.update(lacked)
        keys |= {_key(c) for c in report["cells"] if c["outcome"] == "skipped" and c["dataset"] in lacked}
    return Missing(frozenset(keys), tuple(sorted(add.items())))


def collect(reports: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    """Every cell of the reports once; the same cell with other numbers twice is an error."""
    seen: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for source, report in reports:
        for cell in report["cells"]:
            if "test" in cell:
                continue  # a user's own test's cell: not one of the study's
            key = _key(cell)
            if key in seen:
                other_source, other = seen[key]
                if other.get("metrics") != cell.get("metrics"):
                    raise TablesError(
                        f"{cell['id']} is in {other_source} and in {source} with other numbers; "
                        "table runs that measured each cell once"
                    )
                continue
            seen[key] = (source, cell)
    return [cell for _, cell in seen.values()]


def _key(cell: Mapping[str, Any]) -> str:
    if cell["stage"] == 2:
        return (
            f"{cell['model']}/{cell['dataset']}/{cell['setting']}_{cell['attribute']}/stage2/{cell['subset']}"
        )
    return str(cell["id"])


def _columns(cells: Sequence[Mapping[str, Any]]) -> tuple[Column, ...]:
    found = {Column(c["dataset"], c["setting"], c["attribute"], c["subset"]) for c in cells}

    def order(col: Column) -> tuple[str, int, int, str]:
        return (col.dataset, SETTINGS.index(col.setting), ATTRIBUTES.index(col.attribute), col.subset)

    return tuple(sorted(found, key=order))


def _value(cell: Mapping[str, Any] | None, metric: str, plcc: bool) -> str:
    if cell is None:
        return "—"
    text = _metric(cell, metric)
    if plcc:
        text += " / " + _metric(cell, "plcc")
    marks = ""
    gate = cell.get("gate") or {}
    if gate.get("min_coverage") is not None and cell["coverage"] < gate["min_coverage"]:
        marks += LOW_COVERAGE
    if any("random-fill" in str((m or {}).get("note", "")) for m in cell["metrics"].values()):
        marks += INVENTED
    return text + marks


def _metric(cell: Mapping[str, Any], name: str) -> str:
    metric = cell["metrics"].get(name)
    if metric is None or metric.get("value") is None:
        return "n/a"
    low, high = metric.get("ci") or (None, None)
    interval = "" if low is None or high is None else f" [{low:.2f}, {high:.2f}]"
    return f"{metric['value']:.3f}{interval}"


def _best_systems(cells: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], str]:
    """(model, dataset, setting) -> the system stage 2 used, from the stage-2 cells' records."""
    best = {}
    for cell in cells:
        if cell["stage"] == 2 and cell.get("outcome") != "skipped":
            best[(cell["model"], cell["dataset"], cell["setting"])] = f"{cell['protocol']}/{cell['strategy']}"
    return best


def _system_label(protocol: str, strategy: str) -> str:
    return f"{protocol.upper()} {strategy}"


def _shown(cell: Mapping[str, Any], missing: Missing) -> bool:
    """Measured cells, and the cells of a dataset the run lacked; other skipped cells are not in
    the tables (a model that cannot take a cell has no number for it)."""
    return cell["outcome"] != "skipped" or _key(cell) in missing.cells


def _cell_value(cell: Mapping[str, Any] | None, plcc: bool, missing: Missing) -> str:
    if cell is not None and _key(cell) in missing.cells:
        return MISSING
    return _value(cell, "srcc", plcc)


def stage1(cells: Sequence[Mapping[str, Any]], *, plcc: bool = False, missing: Missing = Missing()) -> Table:
    first = [c for c in cells if c["stage"] == 1 and c["subset"] != "metamorphic" and _shown(c, missing)]
    columns = _columns(first)
    best = _best_systems(cells)
    by_key = {(c["model"], c["protocol"], c["strategy"], Column(c["dataset"], c["setting"], c["attribute"],
                                                                 c["subset"])): c for c in first}  # fmt: skip
    rows = []
    for model in sorted({c["model"] for c in first}):
        for protocol in PROTOCOLS:
            for strategy in STRATEGIES:
                if not any((model, protocol, strategy, col) in by_key for col in columns):
                    continue
                values = []
                for col in columns:
                    cell = by_key.get((model, protocol, strategy, col))
                    value = _cell_value(cell, plcc, missing)
                    if (
                        cell is not None
                        and best.get((model, col.dataset, col.setting)) == f"{protocol}/{strategy}"
                    ):
                        value += BEST
                    values.append(value)
                rows.append((f"{model} · {_system_label(protocol, strategy)}", tuple(values)))
    metric = "SRCC / PLCC" if plcc else "SRCC"
    title = f"Stage 1: every prompting system, uniform samples ({metric}, 95% CI)"
    return Table(title, columns, tuple(rows), missing.lines(first))


def stage2(cells: Sequence[Mapping[str, Any]], *, plcc: bool = False, missing: Missing = Missing()) -> Table:
    second = [c for c in cells if c["stage"] == 2 and _shown(c, missing)]
    columns = _columns(second)
    by_key = {
        (c["model"], Column(c["dataset"], c["setting"], c["attribute"], c["subset"])): c for c in second
    }
    rows = []
    experts = sorted({c["model"] for c in second if str(c["model"]).startswith("expert")})
    others = sorted({c["model"] for c in second} - set(experts))
    for model in (*experts, *others):
        systems = sorted(
            {
                _system_label(c["protocol"], c["strategy"])
                for c in second
                if c["model"] == model and c["protocol"] and _key(c) not in missing.cells
            }
        )
        label = f"{model} · {', '.join(systems)}" if systems else model
        values = tuple(_cell_value(by_key.get((model, col)), plcc, missing) for col in columns)
        rows.append((label, values))
    metric = "SRCC / PLCC" if plcc else "SRCC"
    title = f"Stage 2: each model's best system on the difficult subsets ({metric}, 95% CI)"
    return Table(title, tuple(columns), tuple(rows), missing.lines(second))


def titles(table: Table) -> list[str]:
    """The table's column titles, its row labels' first."""
    return ["model · system", *(_column_title(c) for c in table.columns)]


def render(table: Table, fmt: str) -> str:
    """A wide table as Markdown or LaTeX (CSV is the long form of :func:`long_csv`)."""
    header = titles(table)
    if fmt == "md":
        lines = [f"**{table.title}**", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join([label, *values]) + " |" for label, values in table.rows]
        return "\n".join([*lines, "", LEGEND, *(f"- {line}" for line in table.missing), ""])
    spec = "l" + "r" * len(table.columns)
    body = [" & ".join(_latex(x) for x in [label, *values]) + r" \\" for label, values in table.rows]
    return "\n".join(
        [
            r"\begin{table}",
            r"\centering",
            rf"\caption{{{_latex(table.title)}}}",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            " & ".join(_latex(h) for h in header) + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            rf"\par\footnotesize {_latex(LEGEND)}",
            *(rf"\par\footnotesize {_latex(line)}" for line in table.missing),
            r"\end{table}",
            "",
        ]
    )


def _column_title(col: Column) -> str:
    return col.title if col.subset in ("uniform",) else f"{col.title} ({col.subset})"


_LATEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "·": r"$\cdot$", "—": "---",
    "†": r"$^\dagger$", "‡": r"$^\ddagger$", "*": r"$^*$",
}  # fmt: skip


def _latex(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


CSV_COLUMNS = (
    "stage", "model", "protocol", "strategy", "best_system", "dataset", "setting", "attribute", "subset",
    "srcc", "srcc_low", "srcc_high", "plcc", "plcc_low", "plcc_high", "coverage", "min_coverage",
    "invented_answers", "outcome",
)  # fmt: skip


def long_csv(cells: Sequence[Mapping[str, Any]], missing: Missing = Missing()) -> str:
    """Both tables in one long CSV, a row per cell: what a spreadsheet or pandas wants to pivot;
    a cell of a dataset the run lacked has the outcome ``missing`` and no numbers."""
    best = _best_systems(cells)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    chosen = [c for c in cells if c["subset"] != "metamorphic" and _shown(c, missing)]
    for c in sorted(chosen, key=lambda c: (c["stage"], c["model"], c["id"])):
        system = f"{c['protocol']}/{c['strategy']}"
        numbers = []
        for name in ("srcc", "plcc"):
            metric = c["metrics"].get(name) or {}
            low, high = metric.get("ci") or (None, None)
            numbers += [metric.get("value"), low, high]
        invented = any("random-fill" in str((m or {}).get("note", "")) for m in c["metrics"].values())
        row = [
            c["stage"], c["model"], c["protocol"], c["strategy"],
            c["stage"] == 2 or best.get((c["model"], c["dataset"], c["setting"])) == system,
            c["dataset"], c["setting"], c["attribute"], c["subset"], *numbers, c["coverage"],
            (c.get("gate") or {}).get("min_coverage"), invented,
            MISSING if _key(c) in missing.cells else c["outcome"],
        ]  # fmt: skip
        writer.writerow("" if v is None else v for v in row)
    return out.getvalue()


def tables(reports: Iterable[tuple[str, Mapping[str, Any]]], fmt: str = "md", *, plcc: bool = False) -> str:
    """Both tables of the reports' cells, in ``fmt``."""
    if fmt not in FORMATS:
        raise TablesError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    given = list(reports)
    cells = collect(given)
    missing = missing_cells(given)
    if fmt == "csv":
        return long_csv(cells, missing)
    parts = [render(stage1(cells, plcc=plcc, missing=missing), fmt)]
    second = stage2(cells, plcc=plcc, missing=missing)
    if second.rows:
        parts.append(render(second, fmt))
    return "\n".join(parts)
