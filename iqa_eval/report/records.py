"""A cell's JSON record: the public contract other people's scripts read.

Floats that are undefined (nan) become null, never a number, so a JSON consumer cannot mistake
"no valid judgements" for a correlation.
"""

from __future__ import annotations

from typing import Any

from iqa_eval.types import CellResult, MetricValue

SCHEMA_VERSION = "1.0"


def metric_record(metric: MetricValue) -> dict[str, Any]:
    return {
        "value": metric.value,
        "ci": [metric.low, metric.high],
        "n": metric.n,
        "aggregation": metric.aggregation,
        "note": metric.note,
    }


def cell_record(
    result: CellResult, stage: int, gate: dict[str, object] | None, message: str
) -> dict[str, Any]:
    spec = result.spec
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
        "primary_metric": result.primary_metric,
        "metrics": {name: metric_record(m) for name, m in result.metrics.items()},
        "gate": gate,
        "outcome": None,
        "message": message,
        "notes": list(result.notes),
        "predictions": [
            {"item": p.item_id, "truth": p.truth, "predicted": p.predicted, "group": p.group}
            for p in result.predictions
        ],
        "examples": [
            {"query": e.query_key, "items": list(e.item_ids), "text": e.text, "failure": e.failure}
            for e in result.examples
        ],
    }
