"""Run usage (what was asked, sent and spent) summed over the processes that made a run.

Each process with an engine reports its own usage: one pytest process, every pytest-xdist
worker, every shard of a sharded run. The report's usage must be the run's, not the first
process's or none at all, so the parts are added up. Budgets add up too: a worker's budget is
its share of the run's (see the plugin), a shard's is whatever that shard was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_COUNTS = (
    "queries",
    "unique",
    "cached",
    "sent",
    "requests",
    "failed",
    "retries",
    "rate_limited",
    "prompt_tokens",
    "completion_tokens",
)


def combine_usage(parts: Iterable[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """The sum of the parts that sent anything (None parts are processes without an engine);
    None when there are none. ``unique`` and ``cached`` are per process, summed."""
    present = [part for part in parts if part is not None]
    if not present:
        return None
    failures: dict[str, int] = {}
    notes: dict[str, str] = {}
    for part in present:
        for reason, n in part.get("failures", {}).items():
            failures[reason] = failures.get(reason, 0) + int(n)
        notes.update(part.get("price_notes", {}))
    budgets = [part.get("budget_usd") for part in present]
    budget = None if None in budgets else round(sum(float(b) for b in budgets if b is not None), 6)
    caps = [part.get("max_requests") for part in present]
    max_requests = None if None in caps else sum(int(c) for c in caps if c is not None)
    stopped = [str(part["stopped_by"]) for part in present if part.get("stopped_by")]
    return {
        **{name: sum(int(part.get(name, 0)) for part in present) for name in _COUNTS},
        "failures": failures,
        "cost_usd": round(sum(float(part.get("cost_usd", 0.0)) for part in present), 6),
        "budget_usd": budget,
        "budget_exhausted": any(bool(part.get("budget_exhausted")) for part in present),
        "max_requests": max_requests,
        "stopped_by": stopped[0] if stopped else None,
        "price_notes": notes,
    }
