"""Joining the reports of shards (or of separate partial runs) into the report of one run.

Merging is only honest when the parts measured the same thing: the same seed (same pairings,
order swaps and bootstrap draws), the same models (same fingerprints), the same data (same
digests) and the same code. Anything else is refused with the file that differs, rather than
producing a report that mixes two runs under one heading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from iqa_eval.execution.usage import combine_usage
from iqa_eval.report.writer import assemble


class MergeError(ValueError):
    """Reports that cannot be one run; the message names the files."""


def _same(
    reports: Sequence[tuple[str, Mapping[str, Any]]], what: str, value: Any, allow_missing: bool = False
) -> None:
    seen: dict[str, str] = {}
    for source, report in reports:
        v = value(report["run"])
        if v is None and allow_missing:
            continue
        text = json.dumps(v, sort_keys=True)
        seen.setdefault(text, source)
    if len(seen) > 1:
        parts = "; ".join(f"{source}: {text}" for text, source in seen.items())
        raise MergeError(f"the reports differ in {what}, so they are not parts of one run ({parts})")


def _consistent(reports: Sequence[tuple[str, Mapping[str, Any]]], key: str, name: str, field: str) -> None:
    """A model (dataset) carries one fingerprint (digest) across all parts."""
    seen: dict[str, tuple[str, str]] = {}
    for source, report in reports:
        for entry in report["run"].get(key, []):
            first = seen.setdefault(entry[name], (entry[field], source))
            if first[0] != entry[field]:
                raise MergeError(
                    f"{key[:-1]} {entry[name]!r} has {field} {first[0]!r} in {first[1]} "
                    f"but {entry[field]!r} in {source}"
                )


def _missing_shards(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """A note naming the shards of the split that none of the reports is ("" when complete)."""
    labels = [str(r["run"]["shard"]) for _, r in reports if r["run"].get("shard")]
    if not labels:
        return ""
    counts = {label.split("/")[1] for label in labels}
    if len(counts) > 1:
        raise MergeError(f"the reports are shards of different splits: {', '.join(sorted(set(labels)))}")
    count = int(counts.pop())
    missing = sorted(set(range(1, count + 1)) - {int(label.split("/")[0]) for label in labels})
    return f"shard(s) {', '.join(f'{k}/{count}' for k in missing)} missing" if missing else ""


def merge_reports(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """One report from several, given as (source name, report) pairs."""
    if not reports:
        raise MergeError("nothing to merge")
    _same(reports, "seed", lambda run: run.get("seed"))
    _same(reports, "configured models", lambda run: run.get("model_specs"), allow_missing=True)
    _same(reports, "git commit", lambda run: run.get("git_commit"), allow_missing=True)
    _consistent(reports, "models", "spec", "fingerprint")
    _consistent(reports, "datasets", "name", "digest")
    cells: dict[str, tuple[Mapping[str, Any], str]] = {}
    for source, report in reports:
        for cell in report["cells"]:
            known = cells.setdefault(cell["id"], (cell, source))
            if known[0] != cell:
                raise MergeError(f"cell {cell['id']} differs between {known[1]} and {source}")
    tests: dict[str, Mapping[str, Any]] = {}
    for _, report in reports:
        for test in report.get("tests", []):
            # Under sharding each of a user's tests runs in one shard; the same test in two
            # reports (a re-run) keeps the later report's.
            tests[str(test["test"])] = test
    missing = _missing_shards(reports)
    runs = [r["run"] for _, r in reports]
    first = runs[0]
    run = {
        **{k: v for k, v in first.items() if k not in ("shard", "notes")},
        "started": min(str(r["started"]) for r in runs),
        "finished": max(str(r["finished"]) for r in runs),
        "partial": any(bool(r.get("partial")) for r in runs) or bool(missing),
        "shard": None,
        "usage": combine_usage(r.get("usage") for r in runs),
        "merged_from": [
            {
                "source": source,
                "shard": r["run"].get("shard"),
                "started": r["run"]["started"],
                "cells": len(r["cells"]),
            }
            for source, r in reports
        ],
    }
    if missing:
        run["notes"] = [missing]
    return assemble([cell for cell, _ in cells.values()], run, list(tests.values()))
