"""A cell's JSON record: the public contract other people's scripts read.

Floats that are undefined (nan) become null, never a number, so a JSON consumer cannot mistake
"no valid judgements" for a correlation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iqa_eval.types import CellResult, Item, MetricValue

SCHEMA_VERSION = "1.2"
"""The minor number grows with every field added (1.1: a cell's ``noise_ceiling``; 1.2: model
identities, a baseline comparison's ``status``, the run's notices and exit status, a cell's
``format_compliance``, DS ``position_balance`` for ``bias``); readers of 1.x
keep working, so only a change they could misread raises the major number."""


def metric_record(metric: MetricValue) -> dict[str, Any]:
    return {
        "value": metric.value,
        "ci": [metric.low, metric.high],
        "n": metric.n,
        "aggregation": metric.aggregation,
        "note": metric.note,
    }


def cell_record(
    result: CellResult,
    stage: int,
    gate: dict[str, object] | None,
    message: str,
    items: Sequence[Item] = (),
) -> dict[str, Any]:
    """The record of an evaluated cell; ``items`` give each prediction its stimulus path, so the
    HTML report can show the worst-judged images without the dataset at hand (None: unknown)."""
    spec = result.spec
    paths = {item.id: item.image.path for item in items}
    return {
        "id": spec.id,
        "stage": stage,
        "model": spec.model,
        "dataset": spec.dataset,
        "setting": spec.setting,
        "attribute": spec.attribute,
        "protocol": spec.protocol,
        "strategy": spec.strategy,
        "subset": spec.subset,
        "n_items": result.n_items,
        "n_queries": result.n_queries,
        "n_failed": dict(result.n_failed),
        "coverage": round(result.coverage, 6),
        "format_compliance": (
            None if result.format_compliance is None else round(result.format_compliance, 6)
        ),
        "primary_metric": result.primary_metric,
        "metrics": {name: metric_record(m) for name, m in result.metrics.items()},
        "gate": gate,
        "outcome": None,
        "message": message,
        "notes": list(result.notes),
        "predictions": [
            {
                "item": p.item_id,
                "truth": p.truth,
                "predicted": p.predicted,
                "group": p.group,
                "image": paths.get(p.item_id),
            }
            for p in result.predictions
        ],
        "examples": [
            {"query": e.query_key, "items": list(e.item_ids), "text": e.text, "failure": e.failure}
            for e in result.examples
        ],
    }
