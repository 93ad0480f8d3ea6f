"""Assembling and writing the run's reports from the cell records the tests produced."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iqa_eval.report.html import write_html
from iqa_eval.report.records import SCHEMA_VERSION
from iqa_eval.report.run_info import git_commit, package_versions, platform_info

JSON_NAME = "iqa-report.json"
HTML_NAME = "iqa-report.html"


def build_report(records: Sequence[dict[str, Any]], run: dict[str, Any], root: Path) -> dict[str, Any]:
    cells = sorted(records, key=lambda r: (r["stage"], r["id"]))
    models = sorted({(r["model"], r.get("fingerprint", "")) for r in cells})
    datasets = sorted({(r["dataset"], r.get("dataset_digest", "")) for r in cells})
    run = {
        **run,
        "models": [{"spec": m, "fingerprint": f} for m, f in models],
        "datasets": [{"name": d, "digest": g} for d, g in datasets],
        "git_commit": git_commit(root),
        "packages": package_versions(),
        "platform": platform_info(),
        "outcomes": _count(r["outcome"] for r in cells),
    }
    return {"schema_version": SCHEMA_VERSION, "run": run, "cells": cells}


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))


def write_reports(report: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / JSON_NAME, directory / HTML_NAME
    _atomic_write(json_path, json.dumps(report, indent=1, allow_nan=False))
    write_html(html_path, report)
    return json_path, html_path


def _atomic_write(path: Path, text: str) -> None:
    """Readers (CI steps, the trend command) never see a half-written report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
