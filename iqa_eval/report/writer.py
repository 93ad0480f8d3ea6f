"""Assembling and writing the run's reports from the cell records the tests produced."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from iqa_eval.report.files import atomic_write
from iqa_eval.report.html import state, write_html
from iqa_eval.report.records import SCHEMA_VERSION
from iqa_eval.report.run_info import git_commit, git_dirty, package_versions, platform_info
from iqa_eval.version import __version__

JSON_NAME = "iqa-report.json"
HTML_NAME = "iqa-report.html"
PARTIAL_JSON_NAME = "iqa-report.partial.json"
PARTIAL_HTML_NAME = "iqa-report.partial.html"


def assemble(
    cells: Sequence[Mapping[str, Any]], run: Mapping[str, Any], tests: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """A report from cells, the user's own tests and run metadata; what the run lists is derived
    from its cells, so a merged report cannot claim a model or a dataset digest that none of its
    cells carries."""
    ordered = sorted(cells, key=lambda r: (r["stage"], r["id"]))
    models = sorted({(r["model"], r.get("fingerprint", "")) for r in ordered})
    identities = {r["model"]: r["identity"] for r in ordered if r.get("identity")}
    datasets = sorted({(r["dataset"], r.get("dataset_digest", "")) for r in ordered})
    full_run = {
        **run,
        "models": [
            {"spec": m, "fingerprint": f, **({"identity": identities[m]} if m in identities else {})}
            for m, f in models
        ],
        "datasets": [{"name": d, "digest": g} for d, g in datasets],
        "outcomes": _count(r["outcome"] for r in ordered),
        "known_gaps": sum(state(r)[0] == "known gap" for r in ordered),
        "regressed": sum(bool((r.get("baseline") or {}).get("regressed")) for r in ordered),
    }
    report: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "run": full_run, "cells": ordered}
    if tests:
        report["tests"] = sorted(tests, key=lambda t: str(t["test"]))
    return report


def build_report(
    records: Sequence[dict[str, Any]],
    run: dict[str, Any],
    root: Path,
    *,
    tests: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return assemble(
        records,
        {
            **run,
            "git_commit": git_commit(root),
            "git_dirty": git_dirty(root),
            "suite_version": __version__,
            "packages": package_versions(),
            "platform": platform_info(),
        },
        tests,
    )


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    atomic_write(path, json.dumps(report, indent=1, allow_nan=False))


def write_reports(report: Mapping[str, Any], directory: Path, *, partial: bool = False) -> tuple[Path, Path]:
    """Write the JSON and HTML reports; a partial run's go beside the last complete ones, which a
    CI step may still be about to read, instead of over them."""
    directory.mkdir(parents=True, exist_ok=True)
    names = (PARTIAL_JSON_NAME, PARTIAL_HTML_NAME) if partial else (JSON_NAME, HTML_NAME)
    json_path, html_path = directory / names[0], directory / names[1]
    write_json(json_path, report)
    write_html(html_path, report)
    return json_path, html_path


def remove_partial(directory: Path) -> None:
    """A complete run supersedes the partial report of an interrupted one."""
    for name in (PARTIAL_JSON_NAME, PARTIAL_HTML_NAME):
        (directory / name).unlink(missing_ok=True)
